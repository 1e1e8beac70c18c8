"""Exact identities between samplers, adapters and guidance (float64 unless a core schedule is
involved: core schedules compute in float32)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import solvers
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.solvers import testing

GMM = testing.GaussianMixture(
    np.array([[-2.0, 0.5], [1.5, -1.0]]), np.array([[0.3, 0.8], [0.6, 0.4]]), np.array([0.4, 0.6])
)


def _x_init(sigma_max, dtype=jnp.float64, batch=16):
  return sigma_max * jax.random.normal(jax.random.key(0), (batch, 2), dtype)


class SamplerIdentityTest(parameterized.TestCase):

  def test_ddim_eta1_is_ddpm_step_for_step(self):
    """DDIM η = 1 (σ-frame ancestral form) = DDPM ancestral with β̃ (VP posterior form) = SEEDS-1,
    same noise, on the VP schedule's own grid: every single step from a common state, then the
    whole trajectory."""
    sigmas = solvers.grid("uniform_t", 12, schedule=schedules.make("vp"))
    with jax.enable_x64(True):
      x = _x_init(sigmas[0])
      key = jax.random.key(7)
      x_step = x
      for i in range(len(sigmas) - 1):
        pair, key_i = sigmas[i : i + 2], jax.random.fold_in(key, i)
        a = solvers.solve("ddim", GMM.denoiser, x_step, pair, key=key_i, eta=1.0)
        b = solvers.solve("ddpm", GMM.denoiser, x_step, pair, key=key_i)
        c = solvers.solve("seeds_1", GMM.denoiser, x_step, pair, key=key_i)
        chex.assert_trees_all_close(a, b, atol=1e-11, rtol=1e-11)
        chex.assert_trees_all_close(a, c, atol=1e-11, rtol=1e-11)
        x_step = a
      a = solvers.solve("ddim", GMM.denoiser, x, sigmas, key=key, eta=1.0)
      b = solvers.solve("ddpm", GMM.denoiser, x, sigmas, key=key)
      chex.assert_trees_all_close(a, b, atol=1e-11, rtol=1e-11)

  def test_ddpm_beta_variance_differs_from_beta_tilde(self):
    sigmas = solvers.grid("uniform_t", 6, schedule=schedules.make("vp"))
    with jax.enable_x64(True):
      x, key = _x_init(sigmas[0]), jax.random.key(7)
      a = solvers.solve("ddpm", GMM.denoiser, x, sigmas[:-1], key=key)
      b = solvers.solve("ddpm", GMM.denoiser, x, sigmas[:-1], key=key, variance="beta")
      self.assertGreater(float(jnp.max(jnp.abs(a - b))), 1e-3)

  def test_euler_is_ddim_eta0(self):
    sigmas = solvers.grid("karras", 10, schedule=None, sigma_max=20.0)
    with jax.enable_x64(True):
      x = _x_init(sigmas[0])
      chex.assert_trees_all_close(
          solvers.solve("euler", GMM.denoiser, x, sigmas),
          solvers.solve("ddim", GMM.denoiser, x, sigmas),
          atol=1e-12,
      )

  @parameterized.parameters(0.5, 1.0)
  def test_euler_ancestral_is_ddim_eta(self, eta):
    sigmas = solvers.grid("karras", 10, schedule=None, sigma_max=20.0)
    with jax.enable_x64(True):
      x, key = _x_init(sigmas[0]), jax.random.key(3)
      chex.assert_trees_all_close(
          solvers.solve("euler_ancestral", GMM.denoiser, x, sigmas, key=key, eta=eta),
          solvers.solve("ddim", GMM.denoiser, x, sigmas, key=key, eta=eta),
          atol=1e-12,
      )

  def test_edm_stochastic_without_churn_is_heun(self):
    sigmas = solvers.grid("karras", 8, schedule=None, sigma_max=20.0)
    with jax.enable_x64(True):
      x = _x_init(sigmas[0])
      chex.assert_trees_all_close(
          solvers.solve("edm_stochastic", GMM.denoiser, x, sigmas, key=jax.random.key(0)),
          solvers.solve("heun", GMM.denoiser, x, sigmas),
          atol=1e-12,
      )

  def test_edm_churn_gamma_and_window(self):
    """EDM Alg. 2: γ = min(S_churn/N, √2 - 1) only for S_tmin ≤ σ ≤ S_tmax, x̂ = x + √(σ̂² - σ²)
    S_noise z. With D ≡ 0 the ODE is dx/dσ = x/σ and both Euler and Heun map x̂ at σ̂ to
    x̂ σ_next/σ̂ exactly, so the result is known in closed form."""
    zero = lambda x, sigma: jnp.zeros_like(x)
    sigmas = np.array([4.0, 1.0, 0.25])  # N = 2 steps
    with jax.enable_x64(True):
      x, key = _x_init(1.0), jax.random.key(5)
      for s_churn, s_tmin, s_tmax in ((0.5, 2.0, 10.0), (5.0, 0.0, 10.0)):
        out = solvers.solve(
            "edm_stochastic",
            zero,
            x,
            sigmas,
            key=key,
            S_churn=s_churn,
            S_tmin=s_tmin,
            S_tmax=s_tmax,
            S_noise=1.1,
        )
        expected = x
        for i, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
          gamma = min(s_churn / 2, np.sqrt(2.0) - 1.0) if s_tmin <= s <= s_tmax else 0.0
          s_hat = s * (1.0 + gamma)
          z = jax.random.normal(jax.random.fold_in(key, i), x.shape, jnp.float64)
          x_hat = expected + np.sqrt(s_hat**2 - s**2) * 1.1 * z
          expected = x_hat * s_next / s_hat
        chex.assert_trees_all_close(out, expected, atol=1e-12)

  def test_sde_dpmpp_2m_eta0_is_dpmpp_2m(self):
    sigmas = solvers.grid("karras", 12, schedule=None, sigma_max=20.0)
    with jax.enable_x64(True):
      x = _x_init(sigmas[0])
      chex.assert_trees_all_close(
          solvers.solve("sde_dpmpp_2m", GMM.denoiser, x, sigmas, key=jax.random.key(0), eta=0.0),
          solvers.solve("dpmpp_2m", GMM.denoiser, x, sigmas),
          atol=1e-12,
      )

  def test_dpm_solver_2_is_log_midpoint_rule(self):
    """With r1 = ½, DPM-Solver-2 is x - (σ - σ_next) ε̂(x_mid, √(σσ_next)) (k-diffusion dpm_2)."""
    sigmas = np.array([5.0, 2.0, 0.7, 0.2])
    with jax.enable_x64(True):
      x = _x_init(sigmas[0])
      y = x
      for s, t in zip(sigmas[:-1], sigmas[1:]):
        eps = lambda v, sig: (v - GMM.denoiser(v, jnp.full((16,), sig))) / sig
        mid = np.sqrt(s * t)
        y = y - (s - t) * eps(y - (s - mid) * eps(y, s), mid)
      chex.assert_trees_all_close(
          solvers.solve("dpm_solver_2", GMM.denoiser, x, sigmas), y, atol=1e-12
      )

  def test_euler_on_flow_velocity_model_is_flow_euler(self):
    """Euler in the σ-frame on a flow-velocity model = Euler on dz/dt = u (z = (1-t)x + tε)."""
    mean, std = np.array([0.7, -1.2]), np.array([0.5, 1.5])
    schedule = schedules.make("flow")
    param = parameterization.make("flow")

    def velocity(z, t):  # exact u = ε̂ - x̂0 for x ~ N(mean, diag std²)
      a, s = (1.0 - t)[:, None], t[:, None]
      x0 = mean + a * std**2 / (a**2 * std**2 + s**2) * (z - a * mean)
      return (z - a * x0) / s - x0

    raw_fn = lambda z_in, noise_cond: velocity(z_in, noise_cond / param.noise_cond_scale)
    ts = np.linspace(0.95, 0.05, 9).astype(np.float32)
    z0 = jax.random.normal(jax.random.key(1), (16, 2), jnp.float32)
    z = z0
    for t, t_next in zip(ts[:-1], ts[1:]):
      z = z + (t_next - t) * velocity(z, jnp.full((16,), t))
    sigmas = ts / (1.0 - ts)  # σ̃ = σ/α
    denoiser = solvers.adapters.from_raw(raw_fn, schedule, param)
    x = solvers.solve("euler", denoiser, z0 / (1.0 - ts[0]), sigmas)
    chex.assert_trees_all_close(x * (1.0 - ts[-1]), z, atol=2e-5, rtol=2e-5)


class AdapterTest(parameterized.TestCase):
  """from_raw on an exact model equals the exact σ-frame denoiser, for schedules × parameterisations."""

  @parameterized.parameters(
      (dict(kind="vp"), dict(kind="eps")),
      (dict(kind="vp"), dict(kind="v")),
      (dict(kind="cosine"), dict(kind="x0")),
      (
          dict(kind="cosine"),
          dict(kind="eps", noise_cond="logsnr", noise_cond_scale=1.0, normalize_input=True),
      ),
      (dict(kind="edm"), dict(kind="edm")),
      (dict(kind="ve"), dict(kind="eps")),
      (dict(kind="flow"), dict(kind="flow")),
      (dict(kind="flow"), dict(kind="v")),
      (dict(kind="vp"), dict(kind="flow")),
  )
  def test_from_raw_is_exact_denoiser(self, schedule, param):
    schedule = schedules.make(**schedule)
    param = parameterization.make(**param)

    def raw_fn(z_in, noise_cond):  # an exact network: inverts the model's own input conventions
      t = param.t_from_noise_cond(noise_cond, schedule)
      alpha, sigma = schedule.alpha_sigma(t)
      z = z_in / param.input_scale(alpha, sigma)[:, None]
      x0 = GMM.denoiser(z / alpha[:, None], sigma / alpha)
      eps = (z - alpha[:, None] * x0) / sigma[:, None]
      return param.raw_target(x0, eps, alpha, sigma)

    denoiser = solvers.adapters.from_raw(raw_fn, schedule, param)
    x = jax.random.normal(jax.random.key(0), (16, 2), jnp.float32) * 3.0
    for sigma in (0.3, 1.0, 4.0):
      s = jnp.full((16,), sigma, jnp.float32)
      chex.assert_trees_all_close(denoiser(x + 0.0, s), GMM.denoiser(x, s), atol=2e-3, rtol=2e-3)


class GuidanceTest(parameterized.TestCase):

  def test_classifier_guidance_with_exact_classifier_is_conditional_denoiser(self):
    """D + σ² ∇log p(k | x) = D_k (Bayes: ∇log p(x | k) = ∇log p(x) + ∇log p(k | x))."""
    with jax.enable_x64(True):
      x = _x_init(3.0)
      for k in (0, 1):
        log_prob = lambda v, s, k=k: GMM.log_posterior(v, s)[:, k]
        guided = solvers.guidance.classifier(GMM.denoiser, log_prob, 1.0)
        for sigma in (0.2, 1.0, 5.0):
          s = jnp.full((16,), sigma)
          chex.assert_trees_all_close(guided(x, s), GMM.component_denoiser(k)(x, s), atol=1e-10)

  @parameterized.parameters(0.0, 1.0, 3.0)
  def test_cfg_equals_classifier_guidance_with_implicit_classifier(self, scale):
    with jax.enable_x64(True):
      x, s = _x_init(3.0), jnp.full((16,), 0.8)
      log_prob = lambda v, sig: GMM.log_posterior(v, sig)[:, 1]
      cfg = solvers.guidance.cfg(GMM.component_denoiser(1), GMM.denoiser, scale)
      cg = solvers.guidance.classifier(GMM.denoiser, log_prob, scale)
      chex.assert_trees_all_close(cfg(x, s), cg(x, s), atol=1e-10)
