"""Blurring diffusion: with no blur it is the Gaussian process; with blur its marginal is the heat
operator applied to the signal."""

import chex
import jax
import jax.numpy as jnp
from absl.testing import absltest

from diffjax.core import blurring
from diffjax.core import heat
from diffjax.core import schedules


class BlurringTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.schedule = schedules.make("cosine")
    key = jax.random.key(0)
    self.x = jax.random.normal(key, (3, 8, 8, 2))
    self.eps = jax.random.normal(jax.random.fold_in(key, 1), (3, 8, 8, 2))
    self.t = jnp.array([0.1, 0.5, 0.9])

  def test_zero_blur_is_the_gaussian_process(self):
    """σ_B,max = 0, d_min = 0: z_t = α_t x + σ_t ε, and the posterior step is DDPM's
    q(z_s | z_t, x̂₀) (Ho et al. 2020, Eq. 7) in the VP frame."""
    proc = blurring.BlurringProcess(self.schedule, blur_sigma_max=0.0, d_min=0.0)
    alpha, sigma = self.schedule.alpha_sigma(self.t)
    b = lambda v: v[:, None, None, None]
    chex.assert_trees_all_close(
        jax.jit(proc.diffuse)(self.x, self.t, self.eps),
        b(alpha) * self.x + b(sigma) * self.eps,
        atol=1e-5,
    )
    s = self.t - 0.05
    z_t = b(alpha) * self.x + b(sigma) * self.eps
    mean, var = jax.jit(proc.posterior)(z_t, self.x, self.t, s)
    a_s, sig_s = self.schedule.alpha_sigma(s)
    abar_t, abar_s = alpha**2, a_s**2
    beta = 1 - abar_t / abar_s
    want_mean = (
        b(jnp.sqrt(abar_s) * beta / (1 - abar_t)) * self.x
        + b(jnp.sqrt(1 - beta) * (1 - abar_s) / (1 - abar_t)) * z_t
    )
    chex.assert_trees_all_close(mean, want_mean, atol=1e-5)
    chex.assert_trees_all_close(var[:, 0, 0, 0], (1 - abar_s) / (1 - abar_t) * beta, atol=1e-6)

  def test_signal_is_heat_dissipated(self):
    """ε = 0, d_min = 0: z_t = α_t F(τ_t) x with τ_t = σ_B(t)²/2, σ_B(t) = σ_B,max sin²(πt/2)
    (the paper's listing)."""
    proc = blurring.BlurringProcess(self.schedule, blur_sigma_max=3.0, d_min=0.0)
    alpha, _ = self.schedule.alpha_sigma(self.t)
    got = jax.jit(proc.diffuse)(self.x, self.t, jnp.zeros_like(self.x))
    tau = 0.5 * (3.0 * jnp.sin(0.5 * jnp.pi * self.t) ** 2) ** 2
    want = jax.jit(jax.vmap(lambda x, tau: heat.heat(x[None], tau)[0]))(self.x, tau)
    chex.assert_trees_all_close(got, alpha[:, None, None, None] * want, atol=1e-5)


if __name__ == "__main__":
  absltest.main()
