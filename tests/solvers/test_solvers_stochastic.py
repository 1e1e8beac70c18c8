"""Stochastic solvers against exact Gaussian mixtures (1-D and 2-D, exact denoisers).

Each run draws 10⁵ samples with a fixed seed, starting from an exact sample of p_σmax (x0 + σ_max ε
with x0 from the mixture), so every deviation is the solver's. Tolerances: the sampling standard
errors at n = 10⁵ are ≈ 0.006 (mean), ≈ 0.015 (variance), ≈ 0.0015 (P(x < 0)); the bounds below
allow those at ~4-5 standard errors plus a small discretisation bias. The two-sample
Kolmogorov–Smirnov statistic against an independent exact sample must stay below 0.012 (its
α = 10⁻³ critical value for pure sampling noise is 1.95·√(2/n) = 0.0087); with a deliberately
wrong noise scale (s_noise = 1.2) it fails, which `test_wrong_noise_scale_fails` shows.
The default suite runs a fast subset; `-m slow` runs every solver.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import stats

from diffjax import solvers
from diffjax.solvers import testing

N = 100_000
SIGMA_MAX = 20.0
GMM_1D = testing.GaussianMixture(
    np.array([[-2.0], [1.5]]), np.array([[0.3], [0.6]]), np.array([0.3, 0.7])
)
GMM_2D = testing.GaussianMixture(
    np.array([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]]),
    np.array([[0.3, 0.5], [0.6, 0.4], [0.5, 0.5]]),
    np.array([0.2, 0.5, 0.3]),
)
KS_BOUND = 0.012


def _p_below_zero(gmm):
  """Exact P(x₁ < 0) = Σ_k w_k Φ(-μ_k/s_k) (first coordinate)."""
  return float(np.sum(gmm.weights * stats.norm.cdf(-gmm.means[:, 0] / gmm.stds[:, 0])))


@functools.lru_cache(maxsize=None)
def _reference(dim):
  gmm = GMM_1D if dim == 1 else GMM_2D
  return np.asarray(gmm.sample(jax.random.key(2), N)[0])


def _run(gmm, name, num_steps, options):
  x0, _ = gmm.sample(jax.random.key(1), N)
  x_init = x0 + SIGMA_MAX * jax.random.normal(jax.random.key(3), x0.shape)
  sigmas = solvers.grid("karras", num_steps, schedule=None, sigma_min=0.002, sigma_max=SIGMA_MAX)
  out = solvers.solve(name, gmm.denoiser, x_init, sigmas, key=jax.random.key(4), **options)
  return np.asarray(out)


def _sliced_ks(a, b, num_directions=8):
  """max over fixed unit directions of the 1-D two-sample KS statistic."""
  angles = np.pi * np.arange(num_directions) / num_directions
  dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)
  return max(stats.ks_2samp(a @ d, b @ d).statistic for d in dirs)


def _check_wrong_noise(testcase, name, steps, options):
  samples = _run(GMM_1D, name, steps, options)
  ks = stats.ks_2samp(samples[:, 0], _reference(1)[:, 0]).statistic
  testcase.assertGreater(ks, 2 * KS_BOUND)
  with testcase.assertRaises(AssertionError):
    _check_1d(testcase, samples)


def _check_1d(testcase, samples):
  mean, var = GMM_1D.moments()
  y = samples[:, 0]
  testcase.assertLess(abs(y.mean() - mean[0]), 0.03)
  testcase.assertLess(abs(y.var() - var[0]), 0.06)
  testcase.assertLess(abs(np.mean(y < 0) - _p_below_zero(GMM_1D)), 0.01)
  testcase.assertLess(stats.ks_2samp(y, _reference(1)[:, 0]).statistic, KS_BOUND)


def _check_2d(testcase, samples):
  mean, var = GMM_2D.moments()
  np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 0.03)
  np.testing.assert_array_less(np.abs(samples.var(0) - var), 0.06)
  # Mixture weights: classify by the exact component posterior at σ = 0.002 (the components are
  # well separated, so the classifier's own error is the same for both samples and cancels).
  sigma = jnp.full((N,), 0.002)
  label = lambda s: np.asarray(jnp.argmax(GMM_2D.log_posterior(jnp.asarray(s), sigma), -1))
  frac = np.bincount(label(samples), minlength=3) / N
  frac_ref = np.bincount(label(_reference(2)), minlength=3) / N
  np.testing.assert_array_less(np.abs(frac - frac_ref), 0.01)
  testcase.assertLess(_sliced_ks(samples, _reference(2)), KS_BOUND)


EDM_CHURN = dict(S_churn=40.0, S_tmin=0.05, S_tmax=50.0)
# (name, steps, options): first-order ancestral/EM samplers need many more steps.
FAST = (
    ("seeds_2", 32, {}),
    ("sde_dpmpp_2m", 64, {}),
)
SLOW = (
    ("ddpm", 256, {}),
    ("ddpm", 512, {"variance": "beta"}),
    ("ddim", 256, {"eta": 1.0}),
    ("euler_ancestral", 256, {}),
    ("euler_maruyama", 256, {}),
    ("pc", 128, {}),
    ("seeds_1", 256, {}),
    ("seeds_3", 24, {}),
    ("edm_stochastic", 32, EDM_CHURN),
) + FAST


class DistributionTest(parameterized.TestCase):

  @parameterized.parameters(*FAST)
  def test_1d_fast(self, name, steps, options):
    _check_1d(self, _run(GMM_1D, name, steps, options))

  def test_2d_fast(self):
    _check_2d(self, _run(GMM_2D, "seeds_2", 32, {}))

  def test_wrong_noise_scale_fails(self):
    """The passing sde_dpmpp_2m run above, with 20% too much noise, is rejected."""
    _check_wrong_noise(self, "sde_dpmpp_2m", 64, {"s_noise": 1.2})


@pytest.mark.slow
class SlowDistributionTest(parameterized.TestCase):
  """Every stochastic solver, 1-D and 2-D (about 4 minutes on 2 CPU cores)."""

  @parameterized.parameters(*SLOW)
  def test_1d_all(self, name, steps, options):
    _check_1d(self, _run(GMM_1D, name, steps, options))

  @parameterized.parameters(*SLOW)
  def test_2d_all(self, name, steps, options):
    _check_2d(self, _run(GMM_2D, name, steps, options))

  def test_edm_wrong_noise_scale_fails(self):
    _check_wrong_noise(self, "edm_stochastic", 32, dict(EDM_CHURN, S_noise=1.2))
