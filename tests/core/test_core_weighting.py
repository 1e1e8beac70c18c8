"""Weightings against their formulas; samplers' p(λ) is the true density of the λ they draw."""

import functools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from scipy import integrate
from scipy import stats

from diffjax.core import schedules
from diffjax.core import weighting

N = 20_000


def _importance_integral(sampler, schedule, g, seed=0):
  """Monte Carlo of ∫ g(λ) dλ as E[g(λ)/p(λ)], and its standard error."""
  t, p = sampler(jax.random.key(seed), N, schedule)
  vals = np.asarray(g(np.asarray(schedule.logsnr(t), np.float64)) / np.asarray(p, np.float64))
  return vals.mean(), vals.std() / math.sqrt(N)


def _g(lam):
  return stats.norm.pdf(lam, loc=1.0, scale=3.0)


SAMPLER_CASES = [
    ("uniform_cosine", "uniform", {}, dict(kind="cosine")),
    ("uniform_vp", "uniform", {}, dict(kind="vp")),
    ("uniform_logsnr_edm", "uniform_logsnr", {}, dict(kind="edm")),
    ("edm_lognormal_edm", "edm_lognormal", {}, dict(kind="edm")),
    ("edm_lognormal_flow", "edm_lognormal", {}, dict(kind="flow")),
    ("logit_normal_flow", "logit_normal", {"m": 0.5, "s": 1.2}, dict(kind="flow")),
    ("logit_normal_cosine", "logit_normal", {}, dict(kind="cosine")),
    ("mode_flow", "mode", {"mode_scale": 1.29}, dict(kind="flow")),
    ("cosine_interpolated_edm", "cosine_interpolated", {}, dict(kind="edm")),
    ("uniform_low_discrepancy", "uniform", {"low_discrepancy": True}, dict(kind="cosine")),
]


class SamplerDensityTest(parameterized.TestCase):

  @parameterized.named_parameters(*SAMPLER_CASES)
  def test_importance_identity(self, kind, kwargs, sched_cfg):
    # E_p[g(λ)/p(λ)] = ∫_{λ range} g(λ) dλ holds only if p is the density of the drawn λ.
    schedule = schedules.make(**sched_cfg)
    sampler = weighting.make_t_sampler(kind, **kwargs)
    lo, hi = max(schedule.logsnr_min, -60.0), min(schedule.logsnr_max, 60.0)
    exact = integrate.quad(_g, lo, hi)[0]
    est, se = _importance_integral(sampler, schedule, _g)
    self.assertLess(abs(est - exact), 4 * se + 2e-3 * exact, msg=f"{est} vs {exact} ± {se}")
    t, _ = sampler(jax.random.key(1), 64, schedule)
    self.assertTrue(bool(jnp.all((t >= 0) & (t <= 1))))

  def test_edm_lognormal_moments(self):
    # On the unbounded flow schedule nothing is truncated: ln σ̃ ~ N(-1.2, 1.2²) (EDM Table 1).
    schedule = schedules.make("flow")
    t, _ = weighting.make_t_sampler("edm_lognormal")(jax.random.key(0), N, schedule)
    log_sigma = -0.5 * np.asarray(schedule.logsnr(t), np.float64)
    self.assertAlmostEqual(log_sigma.mean(), -1.2, delta=0.03)
    self.assertAlmostEqual(log_sigma.std(), 1.2, delta=0.03)

  def test_logit_normal_moments(self):
    t, _ = weighting.make_t_sampler("logit_normal", m=0.3, s=0.8)(
        jax.random.key(0), N, schedules.make("flow")
    )
    n = np.log(np.asarray(t, np.float64)) - np.log1p(-np.asarray(t, np.float64))
    self.assertAlmostEqual(n.mean(), 0.3, delta=0.03)
    self.assertAlmostEqual(n.std(), 0.8, delta=0.03)

  def test_mode_matches_sd3_formula(self):
    # SD3 eq. 20: t = 1 - u - s (cos²(πu/2) - 1 + u); the density in t integrates to 1.
    sampler = weighting.make_t_sampler("mode", mode_scale=0.8)
    t, p_lam = sampler(jax.random.key(0), N, schedules.make("flow"))
    schedule = schedules.make("flow")
    p_t = np.asarray(p_lam * -schedule.dlogsnr_dt(t), np.float64)
    self.assertAlmostEqual(np.mean(1.0 / p_t), 1.0, delta=0.01)  # E[1/p_t] = length of [0, 1]

  def test_low_discrepancy_is_stratified(self):
    u = np.sort(np.asarray(weighting.uniform_u(jax.random.key(3), 16, low_discrepancy=True)))
    np.testing.assert_allclose(np.diff(u), 1 / 16, atol=1e-6)


class WeightingFormulaTest(parameterized.TestCase):

  def test_formulas(self):
    lam = np.linspace(-10, 10, 41)
    sched = schedules.make("cosine")
    p_unif = np.asarray(-1.0 / sched.dlogsnr_dt(sched.t_from_logsnr(jnp.asarray(lam))))
    snr = np.exp(lam)
    expected = {
        "elbo": np.ones_like(lam),
        "eps_mse": p_unif,
        "x0_mse": p_unif / snr,
        "v_mse": p_unif * (1 + 1 / snr),
        "flow": p_unif * (1 + snr**-0.5) ** 2,
        "edm": stats.norm.pdf(lam, 2.4, 2.4) * (np.exp(-lam) + 0.25) / 0.25,
        "sigmoid": 1 / (1 + np.exp(lam - 2.0)),
        "p2": p_unif / (1.0 + snr) ** 0.5,
        "min_snr": p_unif * np.minimum(snr, 5.0) / snr,
    }
    kwargs = {"sigmoid": {"bias": 2.0}, "p2": {"gamma": 0.5, "k": 1.0}}
    for kind, want in expected.items():
      w = weighting.make_weighting(kind, schedule=sched, **kwargs.get(kind, {}))
      np.testing.assert_allclose(w(jnp.asarray(lam)), want, rtol=2e-4, err_msg=kind)

  def test_edm_monotonic_is_running_max(self):
    w = weighting.make_weighting("edm_monotonic")
    w_edm = weighting.make_weighting("edm")
    lam = np.linspace(-15, 15, 3001)
    brute = np.maximum.accumulate(np.asarray(w_edm(jnp.asarray(lam)))[::-1])[::-1]
    np.testing.assert_allclose(w(jnp.asarray(lam)), brute, rtol=1e-4)

  @parameterized.parameters("elbo", "sigmoid", "edm_monotonic")
  def test_monotone_weightings_do_not_increase_in_logsnr(self, kind):
    # Kingma & Gao's condition for "weighted loss = ELBO under data augmentation".
    w = weighting.make_weighting(kind, bias=1.0 if kind == "sigmoid" else None)
    vals = w(jnp.linspace(-20, 20, 401))
    self.assertTrue(bool(jnp.all(jnp.diff(vals) <= 1e-7)))


class AdaptiveTest(chex.TestCase):

  def test_update_moves_mass_and_density_stays_exact(self):
    schedule = schedules.make("cosine")
    sampler = weighting.make_t_sampler(
        "adaptive", num_bins=20, logsnr_lo=-10.0, logsnr_hi=10.0, decay=0.0, uniform_mix=0.1
    )
    state = sampler.init()
    chex.assert_shape(state["ema"], (20,))
    lam = jnp.linspace(-9.9, 9.9, 200)
    values = jnp.where(lam < 0, 10.0, 1.0)
    state = jax.jit(functools.partial(sampler.update, schedule=schedule))(state, lam, values)
    probs = sampler.probs(state)
    self.assertGreater(float(probs[:10].sum()), 0.85)
    t, p = jax.jit(lambda r: sampler.sample(state, r, N, schedule))(jax.random.key(0))
    lam_s = np.asarray(schedule.logsnr(t))
    self.assertGreater(np.mean(lam_s < 0), 0.85)
    exact = integrate.quad(_g, -10, 10)[0]
    vals = _g(lam_s) / np.asarray(p, np.float64)
    self.assertLess(abs(vals.mean() - exact), 4 * vals.std() / math.sqrt(N) + 1e-3)

  def test_bound_state_has_sampler_signature(self):
    sampler = weighting.make_t_sampler("adaptive")
    bound = functools.partial(sampler, state=sampler.init())
    t, p = bound(jax.random.key(0), 8, schedules.make("cosine"))
    chex.assert_shape((t, p), (8,))


class ErrorTest(absltest.TestCase):

  def test_errors_name_the_argument(self):
    with self.assertRaisesRegex(ValueError, "kind"):
      weighting.make_weighting("snr")
    with self.assertRaisesRegex(ValueError, "schedule"):
      weighting.make_weighting("eps_mse")
    with self.assertRaisesRegex(ValueError, "bias"):
      weighting.make_weighting("sigmoid")
    with self.assertRaisesRegex(ValueError, "gammma"):
      weighting.make_weighting("p2", gammma=1.0)
    with self.assertRaisesRegex(ValueError, "kind"):
      weighting.make_t_sampler("beta")
    with self.assertRaisesRegex(ValueError, "mode_scale"):
      weighting.make_t_sampler("mode", mode_scale=2.0)
    with self.assertRaisesRegex(ValueError, "p_meann"):
      weighting.make_t_sampler("edm_lognormal", p_meann=0.0)


if __name__ == "__main__":
  absltest.main()
