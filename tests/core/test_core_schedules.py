"""Schedules against independent NumPy float64 formulas written from the papers."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from diffjax.core import schedules


# ---- NumPy float64 references, one per paper formula ---------------------------------------------
def _logit(p):
  return np.log(p) - np.log1p(-p)


def ref_vp(t, beta_min=0.1, beta_max=20.0, t_min=1e-5):
  s = t_min + (1 - t_min) * t
  log_abar = -(beta_min * s + 0.5 * (beta_max - beta_min) * s**2)  # Song et al. 2021, eq. 33
  abar = np.exp(log_abar)
  return _logit(abar), np.sqrt(abar), np.sqrt(1 - abar)


def ref_subvp(t):
  _, a, _ = ref_vp(t)
  abar = a**2
  return np.log(abar) - 2 * np.log(1 - abar), a, 1 - abar  # std 1 - ᾱ (Song et al. eq. 29)


def _ddpm_abar(num=1000):
  betas = np.linspace(1e-4, 0.02, num)  # Ho et al. 2020, §4
  return np.cumprod(1 - betas)


def _iddpm_abar(num=1000, s=0.008):
  f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2  # Nichol & Dhariwal 2021, eq. 17
  i = np.arange(1, num + 1)
  betas = np.minimum(1 - f(i / num) / f((i - 1) / num), 0.999)
  return np.cumprod(1 - betas)


def _interp_nodes(t, abar):
  lam = _logit(abar)
  return np.interp(t * (len(abar) - 1), np.arange(len(abar)), lam)


def ref_ddpm(t):
  lam = _interp_nodes(t, _ddpm_abar())
  return lam, np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def ref_iddpm(t):
  lam = _interp_nodes(t, _iddpm_abar())
  return lam, np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def ref_cosine(t, lo=-15.0, hi=15.0, shift=0.0):
  a, b = np.arctan(np.exp(-0.5 * hi)), np.arctan(np.exp(-0.5 * lo))
  lam = -2 * np.log(np.tan(a + t * (b - a))) + shift  # Hoogeboom et al. 2023, listing 1
  return lam, np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def ref_cosine_s(t, s=0.008, lo=-15.0, hi=15.0):
  # Truncate IDDPM's continuous ᾱ(u) to λ ∈ [lo, hi] by solving for the end points numerically.
  f = lambda u: np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
  lam_u = lambda u: _logit(f(u) / f(0.0))
  us = np.linspace(1e-9, 1 - 1e-9, 2_000_001)
  lams = lam_u(us)
  u_lo = np.interp(-hi, -lams, us)
  u_hi = np.interp(-lo, -lams, us)
  lam = lam_u(u_lo + t * (u_hi - u_lo))
  return lam, np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def ref_interpolated(t, image_d=512.0, low=32.0, high=256.0):
  base = ref_cosine(t)[0]
  lam = t * (base + 2 * np.log(low / image_d)) + (1 - t) * (base + 2 * np.log(high / image_d))
  return lam, np.sqrt(1 / (1 + np.exp(-lam))), np.sqrt(1 / (1 + np.exp(lam)))


def ref_ve(t, smin=0.01, smax=50.0):
  sigma = smin * (smax / smin) ** t  # Song et al. 2021, eq. 31
  return -2 * np.log(sigma), np.ones_like(t), sigma


def ref_edm(t, smin=0.002, smax=80.0, rho=7.0):
  sigma = (smin ** (1 / rho) + t * (smax ** (1 / rho) - smin ** (1 / rho))) ** rho  # eq. 5
  return -2 * np.log(sigma), np.ones_like(t), sigma


def ref_flow(t, smin=0.0):
  with np.errstate(divide="ignore"):
    alpha, sigma = 1 - t, smin + (1 - smin) * t  # Lipman et al. 2022 eq. 20, t -> 1 - t
    return 2 * np.log(alpha) - 2 * np.log(sigma), alpha, sigma


def ref_ztsnr(t):
  # Lin et al. 2023, Algorithm 1, applied to DDPM's ᾱ; then interpolated like the base.
  abar = _ddpm_abar()
  a = np.sqrt(abar)
  a0, a1 = a[0], a[-1]
  lam_base = _interp_nodes(t, abar)
  a_t = np.sqrt(1 / (1 + np.exp(-lam_base)))
  a_new = np.where(t == 1.0, 0.0, (a_t - a1) * a0 / (a0 - a1))
  with np.errstate(divide="ignore"):
    return 2 * np.log(a_new) - np.log1p(-(a_new**2)), a_new, np.sqrt(1 - a_new**2)


def ref_sd3_shift(t, shift=3.0):
  tp = shift * t / (1 + (shift - 1) * t)  # Esser et al. 2024, eq. 23
  return ref_flow(tp)


CASES = [
    ("vp", {}, ref_vp),
    ("sub_vp", {}, ref_subvp),
    ("ddpm", {}, ref_ddpm),
    ("iddpm_cosine", {}, ref_iddpm),
    ("cosine", {}, ref_cosine),
    ("cosine_s", {"s": 0.008}, ref_cosine_s),
    ("shifted_cosine", {"resolution": 256.0}, lambda t: ref_cosine(t, shift=2 * np.log(0.25))),
    ("interpolated_cosine", {}, ref_interpolated),
    ("ve", {}, ref_ve),
    ("edm", {}, ref_edm),
    ("flow", {}, ref_flow),
    ("flow_lipman", {"sigma_min": 1e-4}, lambda t: ref_flow(t, 1e-4)),
    ("shifted_flow", {"shift": 3.0}, ref_sd3_shift),
    ("zero_terminal_snr", {}, ref_ztsnr),
    (
        "input_scaled",
        {"base": {"kind": "vp"}, "scale": 0.5},
        lambda t: (ref_vp(t)[0] + 2 * np.log(0.5),)
        + tuple(np.sqrt(1 / (1 + np.exp(s * (ref_vp(t)[0] + 2 * np.log(0.5))))) for s in (-1, 1)),
    ),
]
KIND = {"cosine_s": "cosine", "flow_lipman": "flow"}


def _make(name, kwargs):
  return schedules.make(KIND.get(name, name), **kwargs)


T_EVAL = np.linspace(0.0, 1.0, 257)
T_FD = T_EVAL[13:-13][::8] + 1.3e-4  # interior points for the finite-difference check


@functools.lru_cache(maxsize=None)
def _outputs(name):
  """Everything the tests need from one schedule, computed by one jitted call (fast on 2 CPUs)."""
  kwargs = dict(next(k for n, k, _ in CASES if n == name))
  s = _make(name, kwargs)
  lam_lo, lam_hi = max(s.logsnr_min, -12.0), min(s.logsnr_max, 12.0)
  lam_in = jnp.linspace(lam_lo, lam_hi, 101)[1:-1]

  @jax.jit
  def run(t, t_fd, lam_in):
    lam = s.logsnr(t)
    alpha, sigma = s.alpha_sigma(t)
    return dict(
        lam=lam,
        alpha=alpha,
        sigma=sigma,
        t_back=s.t_from_logsnr(lam),
        lam_back=s.logsnr(s.t_from_logsnr(lam_in)),
        dlam=s.dlogsnr_dt(t_fd),
    )

  out = run(jnp.asarray(T_EVAL, jnp.float32), jnp.asarray(T_FD, jnp.float32), lam_in)
  out = {k: np.asarray(v, np.float64) for k, v in out.items()}
  out["lam_in"] = np.asarray(lam_in, np.float64)
  out["schedule"] = s
  return out


class ScheduleFormulaTest(parameterized.TestCase):

  @parameterized.named_parameters(*[(n, n, r) for n, _, r in CASES])
  def test_logsnr_alpha_sigma_match_reference(self, name, ref):
    out = _outputs(name)
    lam_ref, a_ref, s_ref = ref(T_EVAL)
    ok = np.isfinite(lam_ref)
    np.testing.assert_allclose(out["lam"][ok], lam_ref[ok], rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(out["alpha"], a_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["sigma"], s_ref, rtol=1e-4, atol=1e-6)
    # Infinite end points are infinite with the right sign.
    np.testing.assert_array_equal(out["lam"][~ok], lam_ref[~ok])

  @parameterized.named_parameters(*[(n, n) for n, _, _ in CASES])
  def test_strictly_decreasing_and_consistent(self, name):
    out = _outputs(name)
    s, lam, alpha, sigma = out["schedule"], out["lam"], out["alpha"][1:-1], out["sigma"][1:-1]
    self.assertTrue(np.all(np.diff(lam) < 0), msg=name)
    np.testing.assert_allclose(
        2 * np.log(alpha) - 2 * np.log(sigma), lam[1:-1], rtol=1e-4, atol=2e-4
    )
    if s.family == "vp":
      np.testing.assert_allclose(alpha**2 + sigma**2, 1.0, atol=1e-6)
    if s.family == "flow" and name != "flow_lipman":  # Lipman: α + σ = 1 + σ_min (1 - t)
      np.testing.assert_allclose(alpha + sigma, 1.0, atol=1e-6)
    if s.family == "ve":
      np.testing.assert_array_equal(alpha, 1.0)
    np.testing.assert_allclose([s.logsnr_max, s.logsnr_min], lam[[0, -1]], rtol=1e-4)

  @parameterized.named_parameters(*[(n, n) for n, _, _ in CASES])
  def test_inverse_round_trips(self, name):
    out = _outputs(name)
    ok = np.isfinite(out["lam"])
    np.testing.assert_allclose(out["t_back"][ok], T_EVAL[ok], atol=1e-5)
    np.testing.assert_allclose(out["lam_back"], out["lam_in"], rtol=1e-5, atol=2e-4)

  @parameterized.named_parameters(*[(n, n, r) for n, _, r in CASES])
  def test_dlogsnr_dt_matches_finite_difference(self, name, ref):
    h = 1e-6  # float64 central difference of the NumPy reference
    fd = (ref(T_FD + h)[0] - ref(T_FD - h)[0]) / (2 * h)
    np.testing.assert_allclose(_outputs(name)["dlam"], fd, rtol=2e-3)


class PublishedConstantsTest(absltest.TestCase):

  def test_ddpm_alpha_bar_at_T(self):
    abar_T = np.prod(1 - np.linspace(1e-4, 0.02, 1000))
    alpha, sigma = schedules.make("ddpm").alpha_sigma(jnp.ones(1))
    np.testing.assert_allclose(alpha**2, abar_T, rtol=1e-4)
    np.testing.assert_allclose(abar_T, 4.0358e-05, rtol=1e-3)  # sqrt(ᾱ_T) ≈ 0.00635
    np.testing.assert_allclose(
        alpha[0] ** 2 * 0 + schedules.make("ddpm").alpha_sigma(jnp.zeros(1))[0] ** 2,
        1 - 1e-4,
        rtol=1e-6,
    )  # ᾱ_1 = 1 - β_1

  def test_iddpm_clips_last_beta(self):
    chain = schedules.make("iddpm_cosine")
    betas = chain.betas()
    self.assertEqual(betas[-1], 0.999)
    self.assertTrue(np.all(betas[:-1] < 0.999))
    # ᾱ_i = f(i/T)/f(0) wherever no clipping happened (Nichol & Dhariwal eq. 17).
    f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
    i = np.arange(1, 1000)
    np.testing.assert_allclose(chain.alphas_cumprod()[:-1], f(i / 1000) / f(0.0), rtol=1e-9)

  def test_vp_continuous_limit_of_ddpm(self):
    # DDPM's ᾱ at t = i/T converges to VP's exp(-∫β) with β(s) = 0.1 + 19.9 s.
    abar = _ddpm_abar()
    vp = schedules.make("vp", t_min=0.0)
    lam = vp.logsnr(jnp.asarray([0.5, 1.0]))
    # log ᾱ agrees to O(Σβ²/2) ≈ 0.7%, the gap between Σ log(1 - β) and -Σβ at T = 1000.
    np.testing.assert_allclose(jnp.log(jax.nn.sigmoid(lam)), np.log(abar[[499, 999]]), rtol=1e-2)

  def test_sigma_ranges(self):
    for kind, lo, hi in (("ve", 0.01, 50.0), ("edm", 0.002, 80.0)):
      s = schedules.make(kind)
      sig = s.alpha_sigma(jnp.asarray([0.0, 1.0]))[1]
      np.testing.assert_allclose(sig, [lo, hi], rtol=1e-5)
      self.assertAlmostEqual(s.logsnr_max, -2 * math.log(lo), places=4)
      self.assertAlmostEqual(s.logsnr_min, -2 * math.log(hi), places=4)

  def test_input_scaling_is_logsnr_shift_by_2_log_b(self):
    base = schedules.make("cosine")
    scaled = schedules.make("input_scaled", base={"kind": "cosine"}, scale=2.0, normalize=False)
    t = jnp.linspace(0.1, 0.9, 9)
    a, s = scaled.alpha_sigma(t)
    a0, s0 = base.alpha_sigma(t)
    np.testing.assert_allclose(a, 2.0 * a0, rtol=1e-6)  # z = α (b x) + σ ε
    np.testing.assert_allclose(scaled.logsnr(t), base.logsnr(t) + 2 * np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(2 * jnp.log(a / s), scaled.logsnr(t), rtol=1e-5)

  def test_zero_terminal_snr_end_points(self):
    s = schedules.make("zero_terminal_snr", base={"kind": "ddpm"})
    a, sig = s.alpha_sigma(jnp.asarray([0.0, 1.0]))
    np.testing.assert_allclose(a, [np.sqrt(1 - 1e-4), 0.0], atol=1e-7)
    np.testing.assert_allclose(sig, [np.sqrt(1e-4), 1.0], rtol=1e-4)


class JitVmapTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      *[
          (n, n, k)
          for n, k, _ in CASES
          if n in ("vp", "ddpm", "edm", "zero_terminal_snr", "interpolated_cosine")
      ]
  )
  def test_jit_and_vmap_agree(self, name, kwargs):
    s = _make(name, kwargs)
    t = jnp.linspace(0.1, 0.9, 8)
    lam = self.variant(s.logsnr)(t)
    chex.assert_shape(lam, (8,))
    chex.assert_type(lam, jnp.float32)
    np.testing.assert_allclose(lam, s.logsnr(t), rtol=1e-5)
    vm = jax.jit(jax.vmap(lambda u: s.t_from_logsnr(s.logsnr(u[None]))[0]))(t)
    np.testing.assert_allclose(vm, t, atol=1e-5)


class ErrorTest(absltest.TestCase):

  def test_unknown_kind(self):
    with self.assertRaisesRegex(ValueError, "kind"):
      schedules.make("not_a_schedule")

  def test_bad_kwarg(self):
    with self.assertRaisesRegex(ValueError, "sigma_maxx"):
      schedules.make("edm", sigma_maxx=3.0)

  def test_t_outside_unit_interval(self):
    with self.assertRaisesRegex(ValueError, "t must lie in"):
      schedules.make("vp").logsnr(jnp.asarray([0.5, 1.5]))
    with self.assertRaisesRegex(ValueError, "t must lie in"):
      schedules.make("edm").alpha_sigma(np.asarray([-0.1]))

  def test_zero_terminal_snr_needs_vp(self):
    with self.assertRaisesRegex(ValueError, "base"):
      schedules.make("zero_terminal_snr", base={"kind": "edm"})


if __name__ == "__main__":
  absltest.main()


class Float64Test(chex.TestCase):
  """With jax_enable_x64, schedules keep float64 (solver parity needs float64 grids)."""

  @parameterized.parameters("vp", "cosine", "edm", "ve", "flow", "sub_vp")
  def test_float64_in_float64_out_and_accurate(self, kind):
    from diffjax import solvers  # pylint: disable=g-import-not-at-top

    sched = schedules.make(kind)
    with jax.enable_x64(True):
      t = np.linspace(0.05, 0.95, 7)
      lam = sched.logsnr(jnp.asarray(t, jnp.float64))
      self.assertEqual(lam.dtype, jnp.float64)
      back = sched.t_from_logsnr(lam)
      self.assertEqual(back.dtype, jnp.float64)
      np.testing.assert_allclose(np.asarray(back), t, rtol=1e-10, atol=1e-12)
      alpha, sigma = sched.alpha_sigma(jnp.asarray(t, jnp.float64))
      np.testing.assert_allclose(
          np.log(np.square(alpha) / np.square(sigma)), lam, rtol=1e-10, atol=1e-10
      )
      if kind != "flow":  # a flow grid needs t_max < 1 (σ̃ = ∞ at t = 1)
        grid = solvers.grid("uniform_t", 8, schedule=sched, t_min=0.05, t_max=0.95)
        np.testing.assert_allclose(
            grid[:-1],
            np.exp(-0.5 * np.asarray(sched.logsnr(jnp.linspace(0.95, 0.05, 8, dtype=jnp.float64)))),
            rtol=1e-12,
        )
    self.assertEqual(sched.logsnr(jnp.asarray(t, jnp.float32)).dtype, jnp.float32)
