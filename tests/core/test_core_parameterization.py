"""Parameterisations convert exactly, under every schedule, and match the papers' formulas."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules

SCHEDULES = [
    dict(kind="vp"),
    dict(kind="sub_vp"),
    dict(kind="ddpm"),
    dict(kind="iddpm_cosine"),
    dict(kind="cosine"),
    dict(kind="shifted_cosine", resolution=128.0),
    dict(kind="interpolated_cosine"),
    dict(kind="ve"),
    dict(kind="edm"),
    dict(kind="flow"),
    dict(kind="flow", sigma_min=1e-3),
    dict(kind="shifted_flow", shift=3.0),
    dict(kind="zero_terminal_snr", base=dict(kind="cosine")),
    dict(kind="input_scaled", base=dict(kind="vp"), scale=0.5, normalize=False),
]
KINDS = ["eps", "x0", "v", "edm", "flow"]
# Every parameterisation, plus flow matching with σ_min > 0 (Lipman et al.'s OT path).
PARAMS = [dict(kind=k) for k in KINDS] + [dict(kind="flow", sigma_min=0.1)]


def _draw(seed, shape=(6, 4, 4, 3)):
  kx, ke, kt, kr = jax.random.split(jax.random.key(seed), 4)
  x = jax.random.normal(kx, shape)
  eps = jax.random.normal(ke, shape)
  t = jax.random.uniform(kt, shape[:1], minval=0.05, maxval=0.95)
  raw = jax.random.normal(kr, shape)
  return x, eps, t, raw


class ConversionTest(parameterized.TestCase):

  @parameterized.parameters(*PARAMS)
  def test_round_trip_under_every_schedule(self, **spec):
    param = parameterization.make(**spec)
    for i, cfg in enumerate(SCHEDULES):
      schedule = schedules.make(**cfg)
      x, eps, t, raw = _draw(i)
      alpha, sigma = schedule.alpha_sigma(t)
      z = alpha[:, None, None, None] * x + sigma[:, None, None, None] * eps
      target = param.raw_target(x, eps, alpha, sigma)
      x0_hat, eps_hat = param.x0_eps(target, z, alpha, sigma)
      # σ-frame scale: x̂₀ errors are amplified by 1/α for VE-type z; compare relative to z/α.
      scale = 1.0 + jnp.abs(z / alpha[:, None, None, None])
      np.testing.assert_allclose(x0_hat / scale, x / scale, atol=1e-5, err_msg=str(cfg))
      np.testing.assert_allclose(eps_hat / scale, eps / scale, atol=1e-5, err_msg=str(cfg))
      # ε̂ is affine in raw with slope eps_scale: ‖ε - ε̂‖² = b² ‖raw - target‖².
      _, eps_hat_raw = param.x0_eps(raw, z, alpha, sigma)
      lhs = jnp.sum(jnp.square(eps - eps_hat_raw), axis=(1, 2, 3))
      rhs = jnp.square(param.eps_scale(alpha, sigma)) * jnp.sum(
          jnp.square(raw - target), axis=(1, 2, 3)
      )
      np.testing.assert_allclose(lhs, rhs, rtol=2e-4, err_msg=str(cfg))

  def test_every_pair_converts(self):
    # raw_A -> (x̂₀, ε̂) -> raw_B = B.raw_target(x̂₀, ε̂) -> (x̂₀, ε̂) again, for any network output.
    for i, cfg in enumerate((dict(kind="vp"), dict(kind="edm"), dict(kind="flow"))):
      schedule = schedules.make(**cfg)
      x, eps, t, raw = _draw(10 + i, (6, 5))
      alpha, sigma = schedule.alpha_sigma(t)
      z = alpha[:, None] * x + sigma[:, None] * eps
      scale = 1.0 + jnp.abs(z / alpha[:, None])
      for spec_a in PARAMS:
        x0_a, eps_a = parameterization.make(**spec_a).x0_eps(raw, z, alpha, sigma)
        for spec_b in PARAMS:
          param_b = parameterization.make(**spec_b)
          x0_b, eps_b = param_b.x0_eps(
              param_b.raw_target(x0_a, eps_a, alpha, sigma), z, alpha, sigma
          )
          msg = f"{spec_a}->{spec_b} on {cfg}"
          np.testing.assert_allclose(x0_b / scale, x0_a / scale, atol=1e-5, err_msg=msg)
          np.testing.assert_allclose(eps_b / scale, eps_a / scale, atol=1e-5, err_msg=msg)

  @parameterized.parameters(*KINDS)
  def test_noise_cond_inverts(self, kind):
    param = parameterization.make(kind)
    for cfg in (dict(kind="vp"), dict(kind="edm"), dict(kind="cosine")):
      schedule = schedules.make(**cfg)
      t = jnp.linspace(0.05, 0.95, 7)
      alpha, sigma = schedule.alpha_sigma(t)
      z = jnp.ones((7, 2))
      _, nc = param.net_inputs(z, t, alpha, sigma)
      np.testing.assert_allclose(param.t_from_noise_cond(nc, schedule), t, atol=2e-5)


class PaperFormulaTest(absltest.TestCase):

  def test_v_is_salimans_ho_on_vp(self):
    x, eps, t, _ = _draw(0, (5, 3))
    alpha, sigma = schedules.make("cosine").alpha_sigma(t)
    v = parameterization.make("v").raw_target(x, eps, alpha, sigma)
    np.testing.assert_allclose(v, alpha[:, None] * eps - sigma[:, None] * x, atol=1e-6)

  def test_flow_is_velocity_of_the_path(self):
    x, eps, t, _ = _draw(1, (5, 3))
    schedule = schedules.make("flow")
    u = parameterization.make("flow").raw_target(x, eps, *schedule.alpha_sigma(t))
    path = lambda t: (1 - t)[:, None] * x + t[:, None] * eps
    dz_dt = jax.jvp(path, (t,), (jnp.ones_like(t),))[1]
    np.testing.assert_allclose(u, dz_dt, atol=1e-6)

  def test_flow_sigma_min_is_velocity_of_the_ot_path(self):
    """Lipman et al. 2023's OT path (σ_min > 0): u = (1 - σ_min) ε - x = dz/dt of the schedule,
    by central differences of z_t = α_t x + σ_t ε in float64 (exact up to rounding: z is linear
    in t). With σ_min = 0 the target ε - x misses the velocity by σ_min ε."""
    with jax.enable_x64(True):
      x, eps, t, _ = (jnp.asarray(a, jnp.float64) for a in _draw(2, (5, 3)))
      for sigma_min in (1e-4, 0.1, 0.5):
        schedule = schedules.make("flow", sigma_min=sigma_min)
        param = parameterization.make("flow", sigma_min=sigma_min)
        alpha, sigma = schedule.alpha_sigma(t)
        self.assertEqual(alpha.dtype, jnp.float64)
        u = param.raw_target(x, eps, alpha, sigma)
        np.testing.assert_allclose(u, (1.0 - sigma_min) * eps - x, rtol=0, atol=1e-15)
        z = lambda t: losses.noisy(x, eps, *schedule.alpha_sigma(t))
        h = 1e-4
        dz_dt = (z(t + h) - z(t - h)) / (2 * h)
        np.testing.assert_allclose(u, dz_dt, rtol=0, atol=1e-9, err_msg=f"σ_min={sigma_min}")
        u_rf = parameterization.make("flow").raw_target(x, eps, alpha, sigma)
        np.testing.assert_allclose(u_rf - dz_dt, sigma_min * eps, rtol=0, atol=1e-9)

  def test_flow_sigma_min_inverts_exactly(self):
    """x0_eps ∘ raw_target = id, and raw_target ∘ x0_eps = id with z = α x̂₀ + σ ε̂, for σ_min > 0
    (float64, so 'exactly' means to rounding); ‖ε - ε̂‖² = b² ‖û - u‖² with b = eps_scale."""
    with jax.enable_x64(True):
      x, eps, t, raw = (jnp.asarray(a, jnp.float64) for a in _draw(3, (6, 4)))
      for sigma_min in (1e-4, 0.1, 0.5):
        schedule = schedules.make("flow", sigma_min=sigma_min)
        param = parameterization.make("flow", sigma_min=sigma_min)
        alpha, sigma = schedule.alpha_sigma(t)
        z = losses.noisy(x, eps, alpha, sigma)
        x0_hat, eps_hat = param.x0_eps(param.raw_target(x, eps, alpha, sigma), z, alpha, sigma)
        np.testing.assert_allclose(x0_hat, x, rtol=0, atol=1e-13)
        np.testing.assert_allclose(eps_hat, eps, rtol=0, atol=1e-13)
        # Any network output: the (x̂₀, ε̂) it implies lie on z and reproduce it as the target.
        x0_r, eps_r = param.x0_eps(raw, z, alpha, sigma)
        np.testing.assert_allclose(losses.noisy(x0_r, eps_r, alpha, sigma), z, atol=1e-13)
        np.testing.assert_allclose(param.raw_target(x0_r, eps_r, alpha, sigma), raw, atol=1e-13)
        b = param.eps_scale(alpha, sigma)[:, None]
        np.testing.assert_allclose(
            eps_r - eps, b * (raw - param.raw_target(x, eps, alpha, sigma)), atol=1e-13
        )

  def test_flow_sigma_min_zero_is_bit_identical_to_rectified_flow(self):
    """σ_min = 0 (the default) keeps the rectified-flow formulas bit for bit, in and out of jit."""
    x, eps, t, raw = _draw(4, (6, 4))
    schedule = schedules.make("flow")
    alpha, sigma = schedule.alpha_sigma(t)
    z = losses.noisy(x, eps, alpha, sigma)
    a, s = alpha[:, None], sigma[:, None]
    for param in (parameterization.make("flow"), parameterization.make("flow", sigma_min=0.0)):
      for fn in (lambda f: f, jax.jit):
        np.testing.assert_array_equal(fn(param.raw_target)(x, eps, alpha, sigma), eps - x)
        x0_hat, eps_hat = fn(param.x0_eps)(raw, z, alpha, sigma)
        np.testing.assert_array_equal(x0_hat, (z - s * raw) / (a + s))
        np.testing.assert_array_equal(eps_hat, (z + a * raw) / (a + s))
        np.testing.assert_array_equal(fn(param.eps_scale)(alpha, sigma), alpha / (alpha + sigma))

  def test_edm_coefficients_table_1(self):
    sigma = np.array([0.002, 0.1, 0.5, 2.0, 80.0])
    sd = 0.5
    param = parameterization.make("edm", sigma_data=sd)
    c_skip, c_out, c_in, c_noise = param.coefficients(jnp.ones(5), jnp.asarray(sigma))
    np.testing.assert_allclose(c_skip, sd**2 / (sigma**2 + sd**2), rtol=1e-6)
    np.testing.assert_allclose(c_out, sigma * sd / np.sqrt(sigma**2 + sd**2), rtol=1e-6)
    np.testing.assert_allclose(c_in, 1 / np.sqrt(sigma**2 + sd**2), rtol=1e-6)
    np.testing.assert_allclose(c_noise, np.log(sigma) / 4, rtol=1e-6)
    z = jnp.ones((5, 2))
    z_in, nc = param.net_inputs(z, jnp.zeros(5), jnp.ones(5), jnp.asarray(sigma))
    np.testing.assert_allclose(z_in[:, 0], c_in, rtol=1e-6)
    np.testing.assert_allclose(nc, c_noise, rtol=1e-6)

  def test_edm_on_vp_uses_sigma_frame(self):
    # On a VP schedule, EDM's c_in acts on x̃ = z/α with σ̃ = σ/α (Karras et al., Table 1 "VP").
    t = jnp.asarray([0.3, 0.7])
    alpha, sigma = schedules.make("vp").alpha_sigma(t)
    param = parameterization.make("edm")
    z = jnp.ones((2, 1))
    z_in, _ = param.net_inputs(z, t, alpha, sigma)
    st = np.asarray(sigma / alpha)
    np.testing.assert_allclose(
        z_in[:, 0], (1 / np.asarray(alpha)) / np.sqrt(st**2 + 0.25), rtol=1e-5
    )

  def test_ddpm_noise_cond_is_step_index(self):
    param = parameterization.make("eps")
    _, nc = param.net_inputs(jnp.ones((2, 1)), jnp.asarray([0.0, 1.0]), jnp.ones(2), jnp.ones(2))
    np.testing.assert_allclose(nc, [0.0, 1000.0])


class ErrorAndTransformTest(chex.TestCase):

  def test_unknown_kind_and_kwarg(self):
    with self.assertRaisesRegex(ValueError, "kind"):
      parameterization.make("score")
    with self.assertRaisesRegex(ValueError, "sigma_dat"):
      parameterization.make("edm", sigma_dat=0.5)
    with self.assertRaisesRegex(ValueError, "noise_cond"):
      parameterization.make("eps", noise_cond="index")
    for bad in (-0.1, 1.0):
      with self.assertRaisesRegex(ValueError, "sigma_min"):
        parameterization.make("flow", sigma_min=bad)

  def test_mismatched_shapes(self):
    with self.assertRaisesRegex(ValueError, "per-example"):
      parameterization.make("eps").x0_eps(
          jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.ones(3), jnp.ones(3)
      )

  @chex.variants(with_jit=True, without_jit=True)
  def test_jit_vmap(self):
    param = parameterization.make("v")
    x, eps, t, raw = _draw(3, (4, 3))
    alpha, sigma = schedules.make("cosine").alpha_sigma(t)
    z = alpha[:, None] * x + sigma[:, None] * eps
    out = self.variant(param.x0_eps)(raw, z, alpha, sigma)
    per = jax.vmap(lambda r, z, a, s: param.x0_eps(r[None], z[None], a[None], s[None]))(
        raw, z, alpha, sigma
    )
    chex.assert_trees_all_close(out, jax.tree.map(lambda u: u[:, 0], per), atol=1e-6)


if __name__ == "__main__":
  absltest.main()
