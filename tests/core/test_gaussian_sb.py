"""The closed-form Gaussian Schrödinger bridge: the issue's N(0, I) value and the Schrödinger
system (joint precision cross block −I/σ²) for random covariances."""

import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from diffjax.core import gaussian_sb


def _spd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T / d + 0.3 * np.eye(d)


class GaussianSBTest(parameterized.TestCase):

  def test_standard_normals_sigma_one(self):
    """N(0, I) → N(0, I), σ² = 1: C = (√5 − 1)/2·I (the root of c² + σ²c − 1 = 0)."""
    c = gaussian_sb.cross_covariance(np.eye(5), np.eye(5), 1.0)
    np.testing.assert_allclose(c, (np.sqrt(5.0) - 1.0) / 2.0 * np.eye(5), atol=1e-12)

  @parameterized.parameters((2, 0.5), (5, 1.0), (20, 2.0))
  def test_schrodinger_system(self, d, sigma):
    """π ∝ f(x) g(y) exp(−‖x − y‖²/(2σ²)) with Gaussian f, g: the precision's cross block is
    −I/σ², whatever the marginals."""
    rng = np.random.default_rng(d)
    joint = gaussian_sb.joint_covariance(_spd(rng, d), _spd(rng, d), sigma)
    self.assertGreater(np.linalg.eigvalsh(joint).min(), 0.0)
    prec = np.linalg.inv(joint)
    np.testing.assert_allclose(prec[:d, d:], -np.eye(d) / sigma**2, atol=1e-8)

  def test_small_sigma_tends_to_the_ot_map(self):
    """σ → 0: C → Σ₀^{1/2}(Σ₀^{1/2}Σ₁Σ₀^{1/2})^{1/2}Σ₀^{−1/2} (the Monge map's covariance)."""
    rng = np.random.default_rng(0)
    cov0, cov1 = _spd(rng, 3), _spd(rng, 3)
    s0 = gaussian_sb._sqrtm(cov0)  # pylint: disable=protected-access
    want = s0 @ gaussian_sb._sqrtm(s0 @ cov1 @ s0) @ np.linalg.inv(s0)  # pylint: disable=protected-access
    np.testing.assert_allclose(gaussian_sb.cross_covariance(cov0, cov1, 1e-4), want, atol=1e-6)

  def test_coupling_errors_of_exact_samples(self):
    rng = np.random.default_rng(1)
    d, n = 3, 200_000
    joint = gaussian_sb.joint_covariance(np.eye(d), np.eye(d), 1.0)
    xy = rng.multivariate_normal(np.r_[-0.1 * np.ones(d), 0.1 * np.ones(d)], joint, size=n)
    err = gaussian_sb.coupling_errors(
        xy[:, :d], xy[:, d:], -0.1 * np.ones(d), np.eye(d), 0.1 * np.ones(d), np.eye(d), 1.0
    )
    for key in ("mean0", "mean1", "cov0", "cov1", "cross_cov"):
      self.assertLess(err[key], 0.02, key)
    self.assertAlmostEqual(err["cross_cov_diag_mean"], (np.sqrt(5) - 1) / 2, delta=0.01)


if __name__ == "__main__":
  absltest.main()
