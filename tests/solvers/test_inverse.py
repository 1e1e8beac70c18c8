"""Inverse problems and classifier guidance against the exact linear-Gaussian posterior.

x₀ ~ N(μ, Σ) in 4 correlated dimensions with the exact denoiser (`gaussian_reference`); y = A x₀
(+ noise). Exact answers: the posterior denoiser E[x₀ | x, y] (Bayes in closed form), the
posterior N(m, C), and the exact conditional of a mask. Monte Carlo checks use 4000 samples
(standard error of a mean ≤ 0.016 here) and float64.
"""

import chex
import jax
import pytest
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from diffjax import solvers
from diffjax.core import gaussian_reference as gr

D = 4
_L = np.random.default_rng(0).normal(size=(D, D)) * 0.5
COV = _L @ _L.T + 0.3 * np.eye(D)  # eigenvalues 0.33 .. 2.6
MEAN = np.array([0.5, -0.3, 0.2, 0.0])
A = np.random.default_rng(1).normal(size=(2, D))
Y = np.array([0.7, -0.4])
NOISE_VAR = 0.1
N = 4000


class _MatrixOp:
  """y = A x for vectors (a test operator: `solvers.inverse` only needs `apply`)."""

  def __init__(self, a):
    self.a = a

  def apply(self, x):
    return x @ self.a.T


def _err(x, m, c):
  x = np.asarray(x)
  return float(np.abs(x.mean(0) - m).max()), float(np.abs(np.cov(x.T) - c).max())


def _x_init(num=N, seed=0):
  return 80.0 * jax.random.normal(jax.random.key(seed), (num, D), jnp.float64)


class ExactPosteriorTest(parameterized.TestCase):

  def test_guidance_by_exact_likelihood_is_the_posterior_denoiser(self):
    """D + σ² ∇log p(y | x, σ) = E[x₀ | x, y] (Bayes), at every σ: the exact answer DPS and
    classifier guidance approximate."""
    with jax.enable_x64(True):
      den = gr.full_denoiser(MEAN, COV)
      lp = gr.noisy_log_likelihood(MEAN, COV, A, Y, NOISE_VAR)
      guided = solvers.guidance.classifier(den, lp, 1.0)
      want = gr.posterior_denoiser(MEAN, COV, A, Y, NOISE_VAR)
      x = jax.random.normal(jax.random.key(3), (8, D), jnp.float64) * 2.0
      for sigma in (0.05, 0.7, 3.0, 40.0):
        s = jnp.full((8,), sigma)
        chex.assert_trees_all_close(guided(x, s), want(x, s), atol=1e-9)

  @parameterized.parameters(("heun", "score"), ("ddpm", "score"), ("ddpm", "mean"))
  def test_exact_guidance_samples_the_posterior(self, solver, mode):
    """Classifier guidance with the exact noisy likelihood, scale 1: condition_score (any
    solver) and condition_mean (ancestral) both sample N(m, C) on a 64-step grid. Measured
    covariance errors: Heun 0.03 (Monte Carlo level), DDPM 0.13 / 0.11 (score / mean; 0.085 / 0.077
    at 128 steps: the ancestral step's first-order error), hence the looser bound for it."""
    with jax.enable_x64(True):
      den = gr.full_denoiser(MEAN, COV)
      lp = gr.noisy_log_likelihood(MEAN, COV, A, Y, NOISE_VAR)
      m, c = gr.linear_posterior(MEAN, COV, A, Y, NOISE_VAR)
      sig = solvers.grid("karras", 64, schedule=None)
      if mode == "score":
        out = solvers.solve(
            solver, solvers.guidance.classifier(den, lp, 1.0), _x_init(), sig, key=jax.random.key(1)
        )
      else:
        out = solvers.solve(
            solver,
            den,
            _x_init(),
            sig,
            key=jax.random.key(1),
            mean_guidance=solvers.guidance.classifier_grad(lp),
        )
      mean_err, cov_err = _err(out, m, c)
      self.assertLess(mean_err, 0.06)
      self.assertLess(cov_err, 0.06 if solver == "heun" else 0.15)

  def test_dps_gradient_is_the_plug_in_likelihood_gradient(self):
    """∇ₓ[-‖y - A D(x)‖²/(2σ_y²)] = Jᵀ Aᵀ (y - A D)/σ_y², J = Σ(Σ + σ²I)⁻¹ (closed form), and each
    example's gradient ignores its batch mates (per-sample, unlike the official batch norm)."""
    with jax.enable_x64(True):
      den = gr.full_denoiser(MEAN, COV)
      fn = solvers.inverse.dps_grad(den, _MatrixOp(A), Y, "gaussian", float(np.sqrt(NOISE_VAR)))
      x = jax.random.normal(jax.random.key(4), (6, D), jnp.float64)
      s = jnp.full((6,), 0.8)
      d, g = fn(x, s)
      jac = COV @ np.linalg.inv(COV + 0.64 * np.eye(D))
      want = ((Y - np.asarray(d) @ A.T) @ A / NOISE_VAR) @ jac  # rows: (Jᵀ Aᵀ r)ᵀ = rᵀ A J
      chex.assert_trees_all_close(g, want, atol=1e-10)
      _, g2 = fn(x.at[1:].set(7.0), s)
      chex.assert_trees_all_close(g2[0], g[0], atol=1e-12)
      lp_norm = solvers.inverse.log_likelihood(_MatrixOp(A), Y, d, "norm")
      chex.assert_trees_all_close(lp_norm, -np.linalg.norm(Y - np.asarray(d) @ A.T, axis=1))

  def test_dps_deviation_from_the_exact_posterior(self):
    """DPS (Gaussian plug-in likelihood, scale 1) drops A Cov[x₀|x] Aᵀ from p(y | x): measured
    here on 64 Heun steps, posterior-mean error 0.33 and covariance error 0.11 (the exact
    likelihood: 0.017 / 0.029, Monte Carlo level); with DDPM steps 0.18 / 0.16. Asserted: DPS is
    biased well beyond Monte Carlo error, and stays within 0.5 of the exact posterior mean."""
    with jax.enable_x64(True):
      den = gr.full_denoiser(MEAN, COV)
      dps = solvers.inverse.dps(den, _MatrixOp(A), Y, 1.0, "gaussian", float(np.sqrt(NOISE_VAR)))
      m, c = gr.linear_posterior(MEAN, COV, A, Y, NOISE_VAR)
      out = solvers.solve("heun", dps, _x_init(), solvers.grid("karras", 64, schedule=None))
      mean_err, _ = _err(out, m, c)
      self.assertGreater(mean_err, 0.15)
      self.assertLess(mean_err, 0.5)


class InpaintingTest(absltest.TestCase):

  def test_replace_projects_onto_the_measurement(self):
    with jax.enable_x64(True):
      den = gr.full_denoiser(MEAN, COV)
      mask = jnp.array([1.0, 0.0, 1.0, 0.0])
      y = jnp.array([1.0, 0.0, -0.5, 0.0])
      rep = solvers.inverse.replace(den, solvers.inverse.Mask(mask), y)
      x, s = jax.random.normal(jax.random.key(0), (5, D), jnp.float64), jnp.full((5,), 0.5)
      out = rep(x, s)
      chex.assert_trees_all_close(out * mask, jnp.broadcast_to(y, (5, D)), atol=1e-12)
      chex.assert_trees_all_close(out * (1 - mask), den(x, s) * (1 - mask), atol=1e-12)

  @pytest.mark.slow  # runs in `-m ''`
  def test_repaint_resampling_approaches_the_exact_conditional(self):
    """Replacement inpainting (ancestral, 64 steps) is biased for correlated data: posterior-mean
    error 0.53 against the exact conditional x_u | x_o = y; RePaint resampling cuts it to 0.12
    (U = 10) and 0.07 (U = 30). Its covariance error grows with U (0.12 → 0.17 → 0.26): RePaint
    (jump length 1) is not exact, only closer in the mean."""
    with jax.enable_x64(True):
      den = gr.full_denoiser(MEAN, COV)
      obs = jnp.array([True, False, True, False])
      y = jnp.array([1.0, 0.0, -0.5, 0.0])
      m, c = gr.conditional(MEAN, COV, obs, y)
      rep = solvers.inverse.replace(den, solvers.inverse.Mask(obs.astype(jnp.float64)), y)
      sig = solvers.grid("karras", 64, schedule=None)
      key = jax.random.key(1)
      plain = _err(solvers.solve("ddpm", rep, _x_init(), sig, key=key), m, c)[0]
      resampled = _err(solvers.solve("repaint", rep, _x_init(), sig, key=key, resample=30), m, c)
      self.assertGreater(plain, 0.3)
      self.assertLess(resampled[0], 0.1)
      out = solvers.solve("repaint", rep, _x_init(64), sig, key=key, resample=2)
      chex.assert_trees_all_close(out[:, 0], jnp.full((64,), 1.0), atol=1e-9)  # observed = y

  def test_downsample_pinv_is_a_right_inverse(self):
    op = solvers.inverse.Downsample(2)
    y = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
    chex.assert_trees_all_close(op.apply(op.pinv(y)), y, atol=1e-6)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    chex.assert_trees_all_close(op.apply(x)[0, 0, 0, 0], jnp.mean(x[0, :2, :2, 0]), atol=1e-6)


if __name__ == "__main__":
  absltest.main()
