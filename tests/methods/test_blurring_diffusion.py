"""Blurring diffusion against exact answers: the per-frequency posterior step against brute-force
Gaussian conditioning, zero blur against DDPM's ancestral sampler, and the sampler's output law
with Gaussian data and the exact ε-predictor against the data's."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft
from absl.testing import absltest

from diffjax import config_lib
from diffjax.core import blurring
from diffjax.core import gaussian_reference
from diffjax.core import schedules
from diffjax.methods import blurring_diffusion
from diffjax.solvers import sde

H = W = 4
D = H * W


def dct_matrix():
  """V [D, D]: flattened 4×4 image -> flattened orthonormal 2-D DCT-II coefficients (SciPy)."""
  basis = np.eye(D).reshape(D, H, W)
  return scipy.fft.dctn(basis, type=2, axes=(1, 2), norm="ortho").reshape(D, D).T


class BlurringDiffusionExactTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.schedule = schedules.make("cosine", truncate_logsnr_min=-10.0, truncate_logsnr_max=10.0)
    self.proc = blurring.BlurringProcess(self.schedule, blur_sigma_max=2.0, d_min=0.001)
    self.v = dct_matrix()

  def dense(self, per_freq):
    """Vᵀ diag(c) V for per-frequency c [1, H, W, 1]."""
    return self.v.T @ np.diag(np.asarray(per_freq, np.float64).reshape(D)) @ self.v

  def test_posterior_equals_gaussian_conditioning(self):
    """q(z_s | z_t, x₀) from the joint of z_s = A_s x₀ + σ_s ε₁ and the transition
    z_t = A_{t|s} z_s + Σ_{t|s}^{1/2} ε₂, conditioned by dense linear algebra."""
    t, s = jnp.array([0.6]), jnp.array([0.45])
    alpha_sigma = jax.jit(self.proc.alpha_sigma, static_argnums=1)  # one compile, not op by op
    a_t, sig_t = alpha_sigma(t, (H, W))
    a_s, sig_s = alpha_sigma(s, (H, W))
    sig_t, sig_s = float(sig_t.squeeze()), float(sig_s.squeeze())
    a_ts = np.asarray(a_t, np.float64) / np.asarray(a_s, np.float64)
    A_s, A_ts = self.dense(a_s), self.dense(a_ts)
    c_ss = sig_s**2 * np.eye(D)
    c_ts = A_ts @ c_ss
    c_tt = A_ts @ c_ss @ A_ts.T + self.dense(sig_t**2 - a_ts**2 * sig_s**2)
    # The transition composes to the marginal q(z_t | x₀) = N(A_t x₀, σ_t² I).
    chex.assert_trees_all_close(A_ts @ A_s, self.dense(a_t), atol=1e-5)
    chex.assert_trees_all_close(c_tt, sig_t**2 * np.eye(D), atol=1e-5)
    rng = np.random.default_rng(0)
    x0, z_t = rng.normal(size=D), rng.normal(size=D)
    gain = c_ts.T @ np.linalg.inv(c_tt)
    want_mean = A_s @ x0 + gain @ (z_t - A_ts @ A_s @ x0)
    want_cov = c_ss - gain @ c_ts
    img = lambda v: jnp.asarray(v, jnp.float32).reshape(1, H, W, 1)
    mean, var = jax.jit(self.proc.posterior)(img(z_t), img(x0), t, s)
    chex.assert_trees_all_close(np.asarray(mean).reshape(D), want_mean, atol=1e-4)
    chex.assert_trees_all_close(self.dense(var), want_cov, atol=1e-5)
    # ε-form: the ε that made z_t from x₀ gives the same step.
    eps = (z_t - self.dense(a_t) @ x0) / sig_t
    mean_eps, var_eps = jax.jit(self.proc.posterior_eps)(img(z_t), img(eps), t, s)
    chex.assert_trees_all_close(mean_eps, mean, atol=1e-4)
    chex.assert_trees_all_close(var_eps, var, atol=1e-7)

  def test_zero_blur_is_ddpm_ancestral(self):
    """σ_B,max = 0 with Gaussian data N(μ, diag v) and its exact denoiser: the chain from z_1 equals
    `sde.ddpm` on the σ̃ grid of the same t's from x = z_1/α_1 (same keys), up to z_0 = α_0 x."""
    proc = blurring.BlurringProcess(self.schedule, blur_sigma_max=0.0, d_min=0.001)
    mu = jnp.linspace(-0.5, 0.5, 64).reshape(1, 8, 8, 1)
    var = jnp.linspace(0.1, 1.5, 64).reshape(1, 8, 8, 1)

    def eps_fn(z, t):
      alpha, sigma = self.schedule.alpha_sigma(t)
      x0 = gaussian_reference.optimal_x0(z, alpha, sigma, mu, var)
      return (z - alpha[:, None, None, None] * x0) / sigma[:, None, None, None]

    num_steps, key = 10, jax.random.key(3)
    z1 = jax.random.normal(jax.random.key(1), (4, 8, 8, 1))
    chain = jax.jit(blurring_diffusion.sample_chain, static_argnums=(0, 1, 3))
    got = chain(eps_fn, proc, z1, num_steps, key)

    @jax.jit
    def ddpm(z1, key):
      ts = jnp.linspace(1.0, 0.0, num_steps + 1)
      alpha, sigma = self.schedule.alpha_sigma(ts)
      x = sde.ddpm(
          gaussian_reference.optimal_denoiser(mu, var), z1 / alpha[0], sigma / alpha, key=key
      )
      return alpha[-1] * x[0]

    chex.assert_trees_all_close(got, ddpm(z1, key), atol=2e-4)
    blurred = chain(eps_fn, self.proc, z1, num_steps, key)
    self.assertGreater(float(jnp.max(jnp.abs(blurred - got))), 0.01)  # blur does change it

  def test_sampler_law_with_exact_eps_is_the_data(self):
    """Gaussian data N(m, Σ) on 4×4, ε̂ = E[ε | z_t] exact: the chain is affine in (z, ξ), so its
    output mean and covariance follow exactly from the step's Jacobians. From N(0, I) the mean is the
    data's and the covariance converges to the data's at first order in 1/T (each ancestral step
    drops Cov[x₀ | z_t], as DDPM's does)."""
    rng = np.random.default_rng(0)
    m = jnp.asarray(rng.normal(size=D), jnp.float32)
    a = rng.normal(size=(D, D))
    cov_x = jnp.asarray(a @ a.T / D + 0.05 * np.eye(D), jnp.float32)
    v = jnp.asarray(self.v, jnp.float32)

    def eps_fn(z, t):
      a_t, sig_t = self.proc.alpha_sigma(t[:1], (H, W))
      A = v.T @ (a_t.reshape(D, 1) * v)
      s = sig_t.reshape(())
      flat = z.reshape(z.shape[0], D)
      gain = s * jnp.linalg.inv(A @ cov_x @ A.T + s**2 * jnp.eye(D))
      return ((flat - m @ A.T) @ gain.T).reshape(z.shape)

    def moments(T):
      ts = jnp.linspace(1.0, 0.0, T + 1)

      def body(carry, ts_pair):
        mean, cov = carry
        step = lambda z, xi: blurring_diffusion.ancestral_step(
            eps_fn, self.proc, z.reshape(1, H, W, 1), ts_pair[0], ts_pair[1], xi.reshape(1, H, W, 1)
        ).reshape(D)
        zero = jnp.zeros(D)
        jz, jxi = jax.jacfwd(step, argnums=(0, 1))(mean, zero)
        return (step(mean, zero), jz @ cov @ jz.T + jxi @ jxi.T), None

      init = (jnp.zeros(D), jnp.eye(D))
      return jax.lax.scan(body, init, (ts[:-1], ts[1:]))[0]

    errors = []
    for num_steps in (400, 800):
      mean, cov = jax.jit(moments, static_argnums=0)(num_steps)
      chex.assert_trees_all_close(mean, m, atol=1e-3)
      errors.append(float(jnp.max(jnp.abs(cov - cov_x))))
    # First order in 1/T towards the data's covariance (0.042 and 0.021 at T = 400, 800).
    self.assertLess(errors[1], 0.02 * float(jnp.max(cov_x)))
    self.assertBetween(errors[0] / errors[1], 1.8, 2.2)

  def test_config_errors(self):
    config = config_lib.load("configs/blurring_diffusion/fashion_mnist.py", "smoke")
    config.method.d_min = 0.0
    with self.assertRaisesRegex(ValueError, "method.d_min"):
      blurring_diffusion.BlurringDiffusion(config, element_shape=(8, 8, 1))
    config.method.d_min = 0.001
    config.schedule = dict(kind="edm")
    with self.assertRaisesRegex(ValueError, "schedule.kind"):
      blurring_diffusion.BlurringDiffusion(config, element_shape=(8, 8, 1))


if __name__ == "__main__":
  absltest.main()
