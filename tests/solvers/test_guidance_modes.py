"""Guidance interval and ADM's two classifier-guidance forms, exactly (float64); the DCT heat
operator against the analytic heat kernel."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from diffjax import solvers
from diffjax.core import heat
from diffjax.solvers import testing

GMM = testing.GaussianMixture(
    means=np.array([[-1.0, 0.5], [1.5, -0.5]]),
    stds=np.array([[0.4, 0.6], [0.7, 0.3]]),
    weights=np.array([0.4, 0.6]),
)


class GuidanceModesTest(parameterized.TestCase):

  def test_guidance_interval(self):
    """Inside (lo, hi] the CFG formula, outside the conditional denoiser."""
    with jax.enable_x64(True):
      cond, uncond = GMM.component_denoiser(1), GMM.denoiser
      guided = solvers.guidance.cfg(cond, uncond, 3.0, interval=(0.5, 2.0))
      x = jax.random.normal(jax.random.key(0), (5, 2), jnp.float64)
      sigma = jnp.array([0.3, 0.5, 1.0, 2.0, 4.0])
      d_c, d_u = cond(x, sigma), uncond(x, sigma)
      want = jnp.where(jnp.array([0, 0, 1, 1, 0], bool)[:, None], d_u + 3.0 * (d_c - d_u), d_c)
      chex.assert_trees_all_close(guided(x, sigma), want, atol=1e-12)

  @parameterized.parameters(0.3, 2.0, 10.0)
  def test_condition_mean_and_condition_score_shifts(self, sigma):
    """One DDPM (β̃) step σ → σ' with a gradient g: condition_score moves x by (σ² - σ'²) s g,
    condition_mean by σ'²(σ² - σ'²)/σ² √((1+σ²)/(1+σ'²)) s g (derived in `solvers.guidance`); the
    same noise is drawn, so the differences to the unguided step are exact."""
    with jax.enable_x64(True):
      sigma_next = 0.6 * sigma
      pair = jnp.array([sigma, sigma_next])
      x = jax.random.normal(jax.random.key(0), (4, 2), jnp.float64) * 2.0
      log_prob = lambda v, s: GMM.log_posterior(v, s)[:, 1]
      scale, key = 2.5, jax.random.key(1)
      g = solvers.guidance.classifier_grad(log_prob, scale)(x, jnp.full((4,), sigma))
      plain = solvers.solve("ddpm", GMM.denoiser, x, pair, key=key)
      score = solvers.solve(
          "ddpm", solvers.guidance.classifier(GMM.denoiser, log_prob, scale), x, pair, key=key
      )
      mean = solvers.solve(
          "ddpm",
          GMM.denoiser,
          x,
          pair,
          key=key,
          mean_guidance=solvers.guidance.classifier_grad(log_prob, scale),
      )
      dvar = sigma**2 - sigma_next**2
      chex.assert_trees_all_close(score - plain, dvar * g, atol=1e-10)
      ratio = (sigma_next / sigma) ** 2 * np.sqrt((1 + sigma**2) / (1 + sigma_next**2))
      chex.assert_trees_all_close(mean - plain, ratio * dvar * g, atol=1e-10)

  def test_mean_guidance_matches_score_guidance_on_fine_grids(self):
    """Both forms are the same guided reverse SDE in the limit: on GMM data with the exact
    classifier p(k=1 | x, σ) they sample component 1; with 400 steps the two sample means agree."""
    with jax.enable_x64(True):
      log_prob = lambda v, s: GMM.log_posterior(v, s)[:, 1]
      sig = solvers.grid("karras", 400, schedule=None, sigma_max=20.0)
      x0 = 20.0 * jax.random.normal(jax.random.key(2), (2000, 2), jnp.float64)
      key = jax.random.key(3)
      score = solvers.solve(
          "ddpm", solvers.guidance.classifier(GMM.denoiser, log_prob, 1.0), x0, sig, key=key
      )
      mean = solvers.solve(
          "ddpm",
          GMM.denoiser,
          x0,
          sig,
          key=key,
          mean_guidance=solvers.guidance.classifier_grad(log_prob),
      )
      for out in (score, mean):
        chex.assert_trees_all_close(jnp.mean(out, 0), GMM.means[1], atol=0.05)
        chex.assert_trees_all_close(jnp.std(out, 0), GMM.stds[1], atol=0.05)


class HeatTest(parameterized.TestCase):

  @parameterized.parameters(2.0, 4.5, 8.0)
  def test_dct_heat_is_the_reflected_gaussian_kernel(self, tau):
    """F(τ) applied to a unit impulse at pixel (i0, j0) equals the heat kernel of the square with
    reflecting borders, a Gaussian of variance 2τ plus its mirror images (method of images), at
    the cell centres; separable in H and W. Exact up to the kernel's spectrum above Nyquist,
    exp(-π²τ) ≤ 3e-9 here."""
    h, w, i0, j0 = 16, 12, 3, 9

    def kernel_1d(n, c):
      pos = np.arange(n) + 0.5
      src = c + 0.5
      total = np.zeros(n)
      for m in range(-3, 4):
        for image in (src + 2 * m * n, -src + 2 * m * n):
          total += np.exp(-((pos - image) ** 2) / (4 * tau)) / np.sqrt(4 * np.pi * tau)
      return total

    want = kernel_1d(h, i0)[:, None] * kernel_1d(w, j0)[None, :]
    x = np.zeros((1, h, w, 1), np.float32)
    x[0, i0, j0, 0] = 1.0
    got = np.asarray(heat.heat(jnp.asarray(x), tau))[0, :, :, 0]
    np.testing.assert_allclose(got, want, atol=2e-6)

  def test_heat_semigroup_and_mass(self):
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    chex.assert_trees_all_close(heat.heat(heat.heat(x, 1.0), 2.0), heat.heat(x, 3.0), atol=1e-5)
    chex.assert_trees_all_close(
        jnp.sum(heat.heat(x, 5.0), axis=(1, 2)), jnp.sum(x, axis=(1, 2)), atol=1e-4
    )


if __name__ == "__main__":
  absltest.main()
