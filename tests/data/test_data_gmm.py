"""Gaussian mixtures: density vs scipy, score vs autodiff, denoiser vs Tweedie and quadrature."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate
from scipy import special
from scipy import stats

from diffjax import data
from diffjax.data import gmm


def _scipy_log_prob(mix, x, sigma=0.0):
  """Brute force: log Σ_k w_k N(x; μ_k, C_k + σ² I) with scipy, float64 [n]."""
  comps = [
      np.log(w) + stats.multivariate_normal(m, c + sigma**2 * np.eye(mix.dim)).logpdf(x)
      for w, m, c in zip(mix.weights, mix.means, mix.covs)
  ]
  return special.logsumexp(np.stack(comps, -1).reshape(len(x), -1), axis=-1)


MIXTURES = dict(
    isotropic_1d=dict(seed=0, dim=1, num_components=3, covariance="isotropic"),
    diag_3d=dict(seed=1, dim=3, num_components=4, covariance="diag", random_weights=True),
    full_2d=dict(seed=2, dim=2, num_components=5, covariance="full"),
    full_4d=dict(seed=3, dim=4, num_components=2, covariance="full", random_weights=True),
)


def _mix(name):
  kw = dict(MIXTURES[name])
  return gmm.random_mixture(kw.pop("seed"), kw.pop("dim"), kw.pop("num_components"), **kw)


def _points(mix, n=11, seed=0):
  return gmm.sample(mix, np.random.default_rng(seed), n) + np.random.default_rng(
      seed + 1
  ).standard_normal((n, mix.dim))


class DensityTest(chex.TestCase):

  @parameterized.product(name=list(MIXTURES), sigma=[0.0, 0.3, 2.0])
  def test_log_prob_matches_scipy(self, name, sigma):
    mix = _mix(name)
    x = _points(mix)
    want = _scipy_log_prob(mix, x, sigma)
    np.testing.assert_allclose(gmm.log_prob(mix, x, sigma, xp=np), want, rtol=1e-10, atol=1e-10)
    got = jax.jit(lambda x: gmm.log_prob(mix, x, sigma))(jnp.asarray(x, jnp.float32))
    chex.assert_shape(got, (len(x),))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

  @parameterized.product(name=list(MIXTURES), sigma=[0.0, 0.5])
  def test_score_matches_autodiff_and_finite_differences(self, name, sigma):
    mix = _mix(name)
    x = _points(mix, n=5)
    grad = jax.jit(jax.vmap(jax.grad(lambda xi: gmm.log_prob(mix, xi, sigma))))(jnp.asarray(x))
    got = jax.jit(lambda x: gmm.score(mix, x, sigma))(jnp.asarray(x))
    chex.assert_shape(got, x.shape)
    np.testing.assert_allclose(got, grad, rtol=1e-4, atol=1e-4)
    h = 1e-5  # central differences of the scipy density (float64)
    fd = np.stack(
        [
            (_scipy_log_prob(mix, x + h * e, sigma) - _scipy_log_prob(mix, x - h * e, sigma))
            / (2 * h)
            for e in np.eye(mix.dim)
        ],
        axis=-1,
    )
    np.testing.assert_allclose(gmm.score(mix, x, sigma, xp=np), fd, rtol=1e-5, atol=1e-6)

  def test_per_example_sigma_and_batch_dims(self):
    mix = _mix("diag_3d")
    x = _points(mix, n=6)
    sigma = np.array([0.0, 0.1, 0.5, 1.0, 3.0, 10.0])
    got = gmm.log_prob(mix, x, sigma, xp=np)
    want = [_scipy_log_prob(mix, x[i : i + 1], s)[0] for i, s in enumerate(sigma)]
    np.testing.assert_allclose(got, want, rtol=1e-10)
    x3 = x.reshape(2, 3, 3)
    chex.assert_shape(gmm.denoise(mix, x3, sigma.reshape(2, 3), xp=np), (2, 3, 3))
    np.testing.assert_allclose(
        gmm.denoise(mix, x3, sigma.reshape(2, 3), xp=np).reshape(6, 3),
        gmm.denoise(mix, x, sigma, xp=np),
        rtol=1e-12,
    )


class DenoiserTest(chex.TestCase):

  @parameterized.product(name=list(MIXTURES), sigma=[0.05, 0.7, 5.0])
  def test_denoiser_is_tweedie(self, name, sigma):
    # E[x0 | x] = x + σ² ∇ log p_σ(x) (Tweedie): an independent route through the score.
    mix = _mix(name)
    x = _points(mix, n=7)
    tweedie = x + sigma**2 * gmm.score(mix, x, sigma, xp=np)
    np.testing.assert_allclose(gmm.denoise(mix, x, sigma, xp=np), tweedie, rtol=1e-9, atol=1e-9)
    got = jax.jit(gmm.denoise, static_argnums=0)(
        mix, jnp.asarray(x, jnp.float32), jnp.full((7,), sigma, jnp.float32)
    )
    np.testing.assert_allclose(got, tweedie, rtol=2e-4, atol=2e-4)

  @parameterized.parameters(0.3, 1.5)
  def test_denoiser_matches_quadrature_in_1d(self, sigma):
    # E[x0 | x] = ∫ x0 p(x0) N(x; x0, σ²) dx0 / ∫ p(x0) N(x; x0, σ²) dx0, by quadrature.
    mix = _mix("isotropic_1d")
    prior = lambda x0: float(np.exp(_scipy_log_prob(mix, np.array([[x0]]))[0]))
    for x in (-3.0, 0.2, 4.0):
      # Integrate over each prior component's ±12 std window (where the integrand lives).
      windows = [
          (m[0] - 12 * np.sqrt(c[0, 0]), m[0] + 12 * np.sqrt(c[0, 0]))
          for m, c in zip(mix.means, mix.covs)
      ]
      lik = lambda x0: stats.norm.pdf(x, loc=x0, scale=sigma)
      lo, hi = min(w[0] for w in windows), max(w[1] for w in windows)
      breaks = sorted({b for w in windows for b in w} | {float(m[0]) for m in mix.means})
      num = integrate.quad(
          lambda x0: x0 * prior(x0) * lik(x0), lo, hi, points=breaks, limit=500, epsabs=1e-13
      )[0]
      den = integrate.quad(
          lambda x0: prior(x0) * lik(x0), lo, hi, points=breaks, limit=500, epsabs=1e-13
      )[0]
      self.assertAlmostEqual(
          float(gmm.denoise(mix, np.array([[x]]), sigma, xp=np)[0, 0]), num / den, places=7
      )

  def test_denoiser_limits(self):
    mix = _mix("full_2d")
    x = _points(mix, n=4)
    np.testing.assert_allclose(gmm.denoise(mix, x, 1e-6, xp=np), x, atol=1e-8)  # σ → 0: x
    np.testing.assert_allclose(
        gmm.denoise(mix, x, 1e6, xp=np),  # σ → ∞: the prior mean
        np.broadcast_to(mix.mean(), x.shape),
        atol=1e-6,
    )


class MixtureTest(chex.TestCase):

  @parameterized.parameters(*MIXTURES)
  def test_samples_match_mixture_moments(self, name):
    mix = _mix(name)
    x = gmm.sample(mix, np.random.default_rng(0), 100_000)
    cov = mix.covariance()
    # Law of total covariance vs an independent sum over components.
    brute = sum(
        w * (c + np.outer(m - mix.mean(), m - mix.mean()))
        for w, m, c in zip(mix.weights, mix.means, mix.covs)
    )
    np.testing.assert_allclose(cov, brute, rtol=1e-12, atol=1e-12)
    se = np.sqrt(np.diag(cov) / len(x))
    np.testing.assert_array_less(np.abs(x.mean(0) - mix.mean()), 5 * se)
    np.testing.assert_allclose(
        np.cov(x.T).reshape(cov.shape),
        cov,
        atol=5 * np.sqrt(2 * np.max(np.diag(cov)) ** 2 * 4 / len(x)),
    )

  def test_random_mixture_structure(self):
    for kind in gmm.COVARIANCE_KINDS:
      mix = gmm.random_mixture(4, 3, 5, covariance=kind, std_range=(0.2, 0.6))
      chex.assert_shape([mix.weights, mix.means, mix.covs], [(5,), (5, 3), (5, 3, 3)])
      np.testing.assert_allclose(mix.weights.sum(), 1.0)
      s = np.linalg.eigvalsh(mix.covs)
      self.assertTrue(np.all((s > 0.2**2 - 1e-12) & (s < 0.6**2 + 1e-12)))
      off = mix.covs - np.einsum("kii->ki", mix.covs)[:, :, None] * np.eye(3)
      if kind == "full":
        self.assertGreater(np.abs(off).max(), 1e-3)
      else:
        np.testing.assert_array_equal(off, 0)
      if kind == "isotropic":
        diag = np.einsum("kii->ki", mix.covs)
        np.testing.assert_allclose(diag, diag[:, :1] * np.ones(3))
    a, b = gmm.random_mixture(9, 2, 3), gmm.random_mixture(9, 2, 3)
    np.testing.assert_array_equal(a.means, b.means)
    self.assertFalse(np.array_equal(a.means, gmm.random_mixture(10, 2, 3).means))

  def test_explicit_mixture_through_make(self):
    means = [[0.0, 0.0], [3.0, -1.0]]
    for covs, full in (
        ([0.25, 1.0], [np.eye(2) * 0.25, np.eye(2)]),
        ([[0.25, 0.5], [1.0, 2.0]], [np.diag([0.25, 0.5]), np.diag([1.0, 2.0])]),
        ([[[1.0, 0.5], [0.5, 1.0]], np.eye(2)], [[[1.0, 0.5], [0.5, 1.0]], np.eye(2)]),
    ):
      ds = data.make(
          dict(name="gmm", batch_size=4, weights=[1.0, 3.0], means=means, covs=covs), seed=0
      )
      np.testing.assert_allclose(ds.mixture.weights, [0.25, 0.75])
      np.testing.assert_allclose(ds.mixture.covs, np.asarray(full))
      self.assertEqual(ds.element_shape, (2,))

  def test_dataset_samples_the_exposed_mixture_independent_of_seed(self):
    cfg = dict(name="gmm", batch_size=4096, dim=2, num_components=3, mixture_seed=5)
    ds = data.make(cfg, seed=0)
    np.testing.assert_array_equal(ds.mixture.means, data.make(cfg, seed=1).mixture.means)
    x = np.concatenate([ds.batch(s)["x"] for s in range(5)]).astype(np.float64)
    se = np.sqrt(np.diag(ds.mixture.covariance()) / len(x))
    np.testing.assert_array_less(np.abs(x.mean(0) - ds.mixture.mean()), 5 * se)
    # Mean log-likelihood of its own samples ≈ -entropy; vs fresh samples of the same mixture.
    own = gmm.log_prob(ds.mixture, x, xp=np).mean()
    ref = gmm.log_prob(ds.mixture, gmm.sample(ds.mixture, np.random.default_rng(9), 200_000), xp=np)
    self.assertAlmostEqual(own, ref.mean(), delta=5 * ref.std() / np.sqrt(len(x)))

  @parameterized.parameters(
      (dict(means=[[0.0]], covs=[[[-1.0]]]), "data.covs"),
      (dict(means=[[0.0], [1.0]], covs=[1.0, 1.0, 1.0]), "data.covs"),
      (dict(means=[[0.0]], weights=[-1.0], covs=[1.0]), "data.weights"),
      (dict(means=[0.0, 1.0], covs=[1.0, 1.0]), "data.means"),
      (dict(means=[[0.0]]), "data.covs"),
      (dict(covs=[1.0]), "data.means"),
      (dict(covariance="banana"), "data.covariance"),
      (dict(std_range=(0.5, 0.1)), "data.std_range"),
  )
  def test_bad_parameters_name_the_key(self, kwargs, key):
    with self.assertRaisesRegex(ValueError, key.replace(".", r"\.")):
      data.make(dict(name="gmm", batch_size=2, **kwargs), seed=0)


if __name__ == "__main__":
  absltest.main()
