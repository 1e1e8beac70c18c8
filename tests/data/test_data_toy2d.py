"""FFJORD 2-D toys against closed-form or quadrature moments (diffjax/data/toy2d.py).

Monte-Carlo checks use N = 40,000 fixed-seed draws and a 5-standard-error tolerance computed from
the exact standard deviation, so a wrong constant (scale, offset, noise) fails while the tests stay
deterministic.
"""

import math

from absl.testing import absltest
from absl.testing import parameterized
import chex
import numpy as np
from scipy import integrate

from diffjax import data
from diffjax.data import toy2d

N = 40_000


def _draw(name, n=N, seed=0):
  return toy2d.SAMPLERS[name](np.random.default_rng(seed), n).astype(np.float64)


def _curve_moments(curve, lo, hi):
  """Mean [2] and second moments E[x xᵀ] [2, 2] of curve(θ), θ ~ U[lo, hi], by quadrature."""
  mean = np.array([integrate.quad(lambda t, i=i: curve(t)[i], lo, hi)[0] for i in range(2)])
  second = np.array(
      [
          [
              integrate.quad(lambda t, i=i, j=j: curve(t)[i] * curve(t)[j], lo, hi)[0]
              for j in range(2)
          ]
          for i in range(2)
      ]
  )
  return mean / (hi - lo), second / (hi - lo)


class ToyTest(chex.TestCase):

  def assert_mean_cov(self, x, mean, cov, fourth_moment_bound=None):
    """Sample mean and covariance of x [N, 2] within 5 standard errors of the exact values."""
    se_mean = np.sqrt(np.diag(cov) / len(x))
    np.testing.assert_array_less(np.abs(x.mean(0) - mean), 5 * se_mean)
    # SE of a variance estimate ≈ sqrt((E(x-m)^4 - var²)/N) ≤ sqrt(bound/N); bound from the data.
    centred = x - mean
    bound = fourth_moment_bound or np.max(np.mean(centred**4, 0))
    np.testing.assert_array_less(np.abs(np.cov(x.T) - cov), 5 * np.sqrt(bound / len(x)))

  @parameterized.parameters(*toy2d.SAMPLERS)
  def test_shape_dtype_finite_and_deterministic(self, name):
    x = toy2d.SAMPLERS[name](np.random.default_rng(1), 17)
    chex.assert_shape(x, (17, 2))
    chex.assert_type(x, np.float32)
    chex.assert_tree_all_finite(x)
    np.testing.assert_array_equal(x, toy2d.SAMPLERS[name](np.random.default_rng(1), 17))
    ds = data.make(dict(name=name, batch_size=6), seed=0)
    self.assertEqual(ds.element_shape, (2,))
    self.assertEqual((ds.num_classes, ds.num_examples), (0, None))

  def test_checkerboard_lies_on_black_squares_with_uniform_marginals(self):
    x = _draw("checkerboard")
    parity = (np.floor(x[:, 0] / 2) + np.floor(x[:, 1] / 2)) % 2
    np.testing.assert_array_equal(parity, 0)
    self.assertTrue(np.all((x >= -4) & (x < 4)))
    # Exact moments by enumerating the 8 black 2x2 cells [2i, 2i+2) x [2j, 2j+2), i + j even,
    # each uniform with probability 1/8 (a uniform on a width-2 interval has variance 4/12).
    centres = np.array(
        [(2 * i + 1, 2 * j + 1) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0],
        dtype=np.float64,
    )
    self.assertLen(centres, 8)
    mean = centres.mean(0)
    cov = (centres.T @ centres) / 8 + np.eye(2) * 4 / 12 - np.outer(mean, mean)
    np.testing.assert_allclose(np.diag(cov), 64 / 12)  # each marginal is U[-4, 4)
    self.assert_mean_cov(x, mean, cov)
    # All 8 black squares equally likely (each 1/8).
    cells = np.floor(x / 2).astype(int) + 2
    counts = np.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    self.assertEqual(int(np.sum(counts > 0)), 8)
    np.testing.assert_allclose(counts[counts > 0] / N, 1 / 8, atol=5 * math.sqrt(1 / 8 * 7 / 8 / N))

  def test_eight_gaussians_modes(self):
    x = _draw("eight_gaussians")
    angles = np.arange(8) * math.pi / 4
    centres = 4.0 / 1.414 * np.stack([np.cos(angles), np.sin(angles)], 1)  # FFJORD's constants
    np.testing.assert_allclose(toy2d.eight_gaussians_means(), centres)
    k = np.argmin(((x[:, None] - centres) ** 2).sum(-1), axis=1)  # modes are 5.6σ apart
    std = 0.5 / 1.414
    for j in range(8):
      pts = x[k == j]
      self.assertAlmostEqual(len(pts) / N, 1 / 8, delta=5 * math.sqrt(1 / 8 * 7 / 8 / N))
      np.testing.assert_array_less(np.abs(pts.mean(0) - centres[j]), 5 * std / math.sqrt(len(pts)))
      np.testing.assert_allclose(pts.std(0), std, rtol=5 / math.sqrt(2 * len(pts)))

  def test_two_moons_moments_match_quadrature(self):
    # sklearn make_moons curves (noise 0.1), then 2·p + (-1, -0.2); each moon has probability ½.
    upper = _curve_moments(lambda t: (math.cos(t), math.sin(t)), 0, math.pi)
    lower = _curve_moments(lambda t: (1 - math.cos(t), 0.5 - math.sin(t)), 0, math.pi)
    mean = 0.5 * (upper[0] + lower[0])
    cov = 0.5 * (upper[1] + lower[1]) - np.outer(mean, mean) + 0.1**2 * np.eye(2)
    self.assert_mean_cov(_draw("two_moons"), 2 * mean + np.array([-1.0, -0.2]), 4 * cov)
    np.testing.assert_allclose(2 * mean + np.array([-1.0, -0.2]), [0.0, 0.3], atol=1e-12)

  def test_swiss_roll_moments_match_quadrature(self):
    # s ~ U[1.5π, 4.5π], (s cos s, s sin s) + N(0, I), all / 5.
    mean, second = _curve_moments(
        lambda s: (s * math.cos(s), s * math.sin(s)), 1.5 * math.pi, 4.5 * math.pi
    )
    cov = second - np.outer(mean, mean) + np.eye(2)
    self.assert_mean_cov(_draw("swiss_roll"), mean / 5, cov / 25)

  def test_rings_radii_and_moments(self):
    x = _draw("rings")
    radii = np.array([3.0, 2.25, 1.5, 0.75])
    r = np.linalg.norm(x, axis=1)
    ring = np.argmin(np.abs(r[:, None] - radii), axis=1)  # rings 0.75 apart, noise std 0.08
    np.testing.assert_allclose(np.bincount(ring) / N, 0.25, atol=5 * math.sqrt(3 / 16 / N))
    # Radial residual |x| - R ≈ the radial noise component, N(0, 0.08²) up to O(σ²/R) curvature.
    for j, radius in enumerate(radii):
      self.assertAlmostEqual(np.std(r[ring == j] - radius), 0.08, delta=0.08 * 0.02)
    # E|x|² = E r² + 2·0.08² (noise independent of the point on the circle); mean 0 by symmetry.
    second = np.mean(radii**2) + 2 * 0.08**2
    self.assertAlmostEqual(np.mean(r**2), second, delta=5 * np.std(r**2) / math.sqrt(N))
    self.assert_mean_cov(x, np.zeros(2), np.eye(2) * second / 2)

  def test_pinwheel_norm_and_symmetry(self):
    # |x| = 2 |f| with f = (1 + 0.3 ξ₁, 0.1 ξ₂): E|x|² = 4 (1 + 0.09 + 0.01) = 4.4. The 5 arms are
    # rotations of each other by 2π/5, so E[x] = 0 and Cov[x] = (E|x|²/2) I.
    x = _draw("pinwheel")
    sq = (x**2).sum(1)
    self.assertAlmostEqual(sq.mean(), 4.4, delta=5 * sq.std() / math.sqrt(N))
    self.assert_mean_cov(x, np.zeros(2), np.eye(2) * 2.2)
    # Radial distribution: |x|/2 = sqrt(f1² + f2²); compare its mean with 1-D quadrature over f1
    # (f2 small: E sqrt(f1² + f2²) by 2-D quadrature).
    density = lambda a, b: (
        np.exp(-0.5 * ((a - 1) / 0.3) ** 2 - 0.5 * (b / 0.1) ** 2) / (2 * math.pi * 0.03)
    )
    mean_norm = integrate.dblquad(
        lambda b, a: math.hypot(a, b) * density(a, b), -1.0, 3.0, -1.0, 1.0
    )[0]
    norm = np.sqrt(sq) / 2
    self.assertAlmostEqual(norm.mean(), mean_norm, delta=5 * norm.std() / math.sqrt(N))


if __name__ == "__main__":
  absltest.main()
