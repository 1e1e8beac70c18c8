r"""Weightings w(λ) and noise-level samplers p(λ) in Kingma & Gao (2023)'s form

  L = ½ E_{λ~p(λ)} [ w(λ)/p(λ) · ‖ε - ε̂‖² ]        (their eq. 5, with λ = log-SNR)

Every paper's loss is one (w, p) pair. A loss that is "the MSE of some target with t ~ U[0, 1]
under schedule S" has w(λ) = p_S(λ)·f(λ), where p_S(λ) = 1/|dλ/dt| is the density of λ when t is
uniform under S and f converts ‖ε - ε̂‖² into that MSE; so those weightings take `schedule=` (the
schedule the paper trained with, normally the one you train with: then w/p = f exactly).

Samplers: `t_sampler(rng, batch_size, schedule) -> (t [B], p_lam [B])`, with p_lam the density of
λ = schedule.logsnr(t). Samplers defined on λ (EDM log-normal, cosine-interpolated, uniform λ)
are truncated to the schedule's λ-range and renormalised, so t always lies in [0, 1]. All of them
draw through u ~ U[0, 1], so `low_discrepancy=True` gives VDM's stratified u_i = (u₀ + i/B) mod 1.
The adaptive sampler (`Adaptive`) has state: `init() / update(state, lam, values) /
sample(state, rng, batch_size, schedule)`; bind a state with `functools.partial(s, state=state)`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax.scipy import special

from diffjax.core import schedules as schedules_lib

Array = jax.Array


def uniform_t_density(schedule: Any, lam: Array) -> Array:
  """p_S(λ) = 1/|dλ/dt| at t = t(λ): the density of λ when t ~ U[0, 1] under `schedule`. [B]."""
  t = jnp.clip(schedule.t_from_logsnr(lam), 0.0, 1.0)
  return -1.0 / schedule.dlogsnr_dt(t)


def _normal_pdf(x, mean, std):
  return jnp.exp(-0.5 * jnp.square((x - mean) / std)) / (std * math.sqrt(2.0 * math.pi))


# ------------------------------------------------------------------------------------------------
# Weightings.


@dataclasses.dataclass(frozen=True)
class Weighting:
  """w(λ) [B] -> [B]. `kind` names the formula; see `WEIGHTINGS` for each paper."""

  kind: str
  schedule: Any = None
  sigma_data: float = 0.5
  p_mean: float = -1.2
  p_std: float = 1.2
  bias: float | None = None
  gamma: float = 1.0
  k: float = 1.0
  snr_gamma: float = 5.0
  sigma_min: float = 0.0  # "flow": the flow schedule's σ_min (Lipman et al. 2023)

  def __post_init__(self):
    if self.kind not in WEIGHTINGS:
      raise ValueError(f"Unknown weighting kind {self.kind!r}; known: {sorted(WEIGHTINGS)}.")
    if self.kind in _NEEDS_SCHEDULE and self.schedule is None:
      raise ValueError(
          f"weighting {self.kind!r} needs schedule= (the schedule whose uniform-t "
          "density the paper's MSE implies)."
      )
    if self.kind == "sigmoid" and self.bias is None:
      raise ValueError("weighting 'sigmoid' needs bias= (w = sigmoid(bias - λ)).")

  def __call__(self, lam: Array) -> Array:
    lam = jnp.asarray(lam, jnp.float32)
    return WEIGHTINGS[self.kind](self, lam)

  # EDM (Karras et al. 2022, eq. 8 and Table 1) as a K&G weighting: with ln σ̃ ~ N(P_mean, P_std²),
  # λ = -2 ln σ̃ ~ N(-2 P_mean, (2 P_std)²), and λ(σ)‖D - x‖² = (e^{-λ} + σ_d²)/σ_d² · ‖ε - ε̂‖².
  def _edm(self, lam):
    p = _normal_pdf(lam, -2.0 * self.p_mean, 2.0 * self.p_std)
    return p * (jnp.exp(-lam) + self.sigma_data**2) / self.sigma_data**2

  def _edm_argmax(self) -> float:
    # d/dλ log w = -(λ - μ)/s² - e^{-λ}/(e^{-λ} + σ_d²), decreasing in λ: bisection for its root.
    mu, s2, sd2 = -2.0 * self.p_mean, (2.0 * self.p_std) ** 2, self.sigma_data**2
    g = lambda x: -(x - mu) / s2 - 1.0 / (1.0 + sd2 * math.exp(x))
    lo, hi = -50.0, 50.0
    for _ in range(200):
      mid = 0.5 * (lo + hi)
      lo, hi = (mid, hi) if g(mid) > 0 else (lo, mid)
    return 0.5 * (lo + hi)


def _w_elbo(w, lam):
  return jnp.ones_like(lam)  # Kingma & Gao eq. 7: w = 1 is the ELBO (VDM's continuous loss).


def _w_eps_mse(w, lam):
  return uniform_t_density(w.schedule, lam)  # DDPM L_simple: E_t ‖ε - ε̂‖² (Ho et al. eq. 14)


def _w_x0_mse(w, lam):
  return uniform_t_density(w.schedule, lam) * jnp.exp(-lam)  # ‖x - x̂‖² = e^{-λ}‖ε - ε̂‖²


def _w_v_mse(w, lam):
  # Salimans & Ho 2022: ‖v - v̂‖² = (1 + e^{-λ}) ‖ε - ε̂‖² (= ‖ε - ε̂‖²/α² on VP).
  return uniform_t_density(w.schedule, lam) * (1.0 + jnp.exp(-lam))


def _w_flow(w, lam):
  # Rectified flow / FM: u = (1 - σ_min)ε - x, û - u = (1 - σ_min + σ̃)(ε̂ - ε) with σ̃ = e^{-λ/2}
  # on any schedule (parameterization.Flow's x0_eps solved for û); σ_min = 0: (1 + σ̃)².
  return uniform_t_density(w.schedule, lam) * jnp.square((1.0 - w.sigma_min) + jnp.exp(-0.5 * lam))


def _w_edm(w, lam):
  return w._edm(lam)


def _w_edm_monotonic(w, lam):
  # Kingma & Gao §5: the EDM weighting made non-increasing in λ, w(λ) = max_{λ' ≥ λ} w_EDM(λ').
  peak = w._edm_argmax()
  return w._edm(jnp.maximum(lam, peak))


def _w_sigmoid(w, lam):
  return jax.nn.sigmoid(w.bias - lam)  # Kingma & Gao §5: sigmoid(-λ + b)


def _w_p2(w, lam):
  # Choi et al. 2022, eq. 8: L_simple weighted by 1/(k + SNR)^γ.
  return uniform_t_density(w.schedule, lam) / jnp.power(w.k + jnp.exp(lam), w.gamma)


def _w_min_snr(w, lam):
  # Hang et al. 2023 (min-SNR-γ) for ε-prediction: min(SNR, γ)/SNR times L_simple.
  return uniform_t_density(w.schedule, lam) * jnp.minimum(1.0, w.snr_gamma * jnp.exp(-lam))


WEIGHTINGS: dict[str, Callable[[Weighting, Array], Array]] = {
    "elbo": _w_elbo,
    "eps_mse": _w_eps_mse,
    "x0_mse": _w_x0_mse,
    "v_mse": _w_v_mse,
    "flow": _w_flow,
    "edm": _w_edm,
    "edm_monotonic": _w_edm_monotonic,
    "sigmoid": _w_sigmoid,
    "p2": _w_p2,
    "min_snr": _w_min_snr,
}
_NEEDS_SCHEDULE = ("eps_mse", "x0_mse", "v_mse", "flow", "p2", "min_snr")


def make_weighting(kind: str, **kwargs) -> Weighting:
  """w(λ) by name. kwargs: schedule (for the MSE-type kinds), sigma_data, p_mean, p_std, bias,
  gamma, k (P2), snr_gamma (min-SNR), sigma_min (flow). Raises ValueError naming a bad kind or keyword.
  """
  if kind not in WEIGHTINGS:
    raise ValueError(f"Unknown weighting kind {kind!r}; known: {sorted(WEIGHTINGS)}.")
  try:
    return Weighting(kind, **kwargs)
  except TypeError as e:
    raise ValueError(f"Bad keyword argument for weighting {kind!r}: {e}") from e


# ------------------------------------------------------------------------------------------------
# Noise-level samplers.


def uniform_u(rng: Array, batch_size: int, low_discrepancy: bool = False) -> Array:
  """u ∈ [0, 1) [B]; stratified (u₀ + i/B) mod 1 when low_discrepancy (VDM, Kingma et al. 2021)."""
  if low_discrepancy:
    u0 = jax.random.uniform(rng, ())
    return jnp.mod(u0 + jnp.arange(batch_size, dtype=jnp.float32) / batch_size, 1.0)
  return jax.random.uniform(rng, (batch_size,))


def _lam_range(schedule):
  return schedule.logsnr_min, schedule.logsnr_max


@dataclasses.dataclass(frozen=True)
class TSampler:
  """(rng, batch_size, schedule) -> (t [B], p_lam [B]). See `make_t_sampler` for the kinds."""

  kind: str
  low_discrepancy: bool = False
  p_mean: float = -1.2  # EDM log-normal over ln σ̃ (Karras et al. 2022, Table 1)
  p_std: float = 1.2
  m: float = 0.0  # SD3 logit-normal (Esser et al. 2024, eq. 19)
  s: float = 1.0
  mode_scale: float = 1.29  # SD3 mode sampling (eq. 20)
  image_d: float = 64.0  # cosine-interpolated (Hoogeboom 2023; k-diffusion)
  noise_d_low: float = 32.0
  noise_d_high: float = 64.0
  logsnr_lo: float | None = None  # uniform-λ range (defaults to the schedule's)
  logsnr_hi: float | None = None

  def __post_init__(self):
    if self.kind not in _SAMPLERS:
      raise ValueError(f"Unknown t_sampler kind {self.kind!r}; known: {sorted(_SAMPLERS)}.")
    if self.kind == "mode" and not -1.0 < self.mode_scale < 1.0 / (math.pi / 2 - 1.0):
      raise ValueError(
          f"mode_scale must lie in (-1, {1.0 / (math.pi / 2 - 1.0):.4f}) for the "
          f"mode density to be monotone; got {self.mode_scale}."
      )

  def __call__(self, rng: Array, batch_size: int, schedule: Any) -> tuple[Array, Array]:
    u = uniform_u(rng, batch_size, self.low_discrepancy)
    t, p_lam = _SAMPLERS[self.kind](self, u, schedule)
    return jnp.clip(t, 0.0, 1.0).astype(jnp.float32), p_lam.astype(jnp.float32)


def _s_uniform(sp, u, schedule):
  return u, -1.0 / schedule.dlogsnr_dt(u)  # p(λ) = 1/|dλ/dt| at the drawn t, no inversion


def _s_uniform_logsnr(sp, u, schedule):
  lo, hi = _lam_range(schedule)
  lo = lo if sp.logsnr_lo is None else max(lo, sp.logsnr_lo)
  hi = hi if sp.logsnr_hi is None else min(hi, sp.logsnr_hi)
  if not (math.isfinite(lo) and math.isfinite(hi)):
    raise ValueError("uniform_logsnr needs finite logsnr_lo/logsnr_hi for this schedule.")
  lam = hi + u * (lo - hi)
  return schedule.t_from_logsnr(lam), jnp.full_like(u, 1.0 / (hi - lo))


def _s_edm_lognormal(sp, u, schedule):
  # λ ~ N(-2 P_mean, (2 P_std)²) truncated to [λ_min, λ_max], sampled by inverse CDF.
  mean, std = -2.0 * sp.p_mean, 2.0 * sp.p_std
  lo, hi = _lam_range(schedule)
  c_lo, c_hi = special.ndtr((lo - mean) / std), special.ndtr((hi - mean) / std)
  lam = mean + std * special.ndtri(c_lo + u * (c_hi - c_lo))
  lam = jnp.clip(lam, lo, hi)
  return schedule.t_from_logsnr(lam), _normal_pdf(lam, mean, std) / (c_hi - c_lo)


def _s_logit_normal(sp, u, schedule):
  # t = sigmoid(n), n ~ N(m, s²); p_t(t) = N(logit t; m, s²)/(t(1 - t)); p_λ = p_t / |dλ/dt|.
  n = sp.m + sp.s * special.ndtri(jnp.clip(u, 1e-7, 1.0 - 1e-7))
  t = jax.nn.sigmoid(n)
  p_t = _normal_pdf(n, sp.m, sp.s) / (t * (1.0 - t))
  return t, p_t / -schedule.dlogsnr_dt(t)


def _s_mode(sp, u, schedule):
  # t = 1 - u - c (cos²(πu/2) - 1 + u); p_t = 1/|dt/du|, dt/du = -1 - c + (cπ/2) sin(πu).
  c = sp.mode_scale
  t = 1.0 - u - c * (jnp.square(jnp.cos(0.5 * math.pi * u)) - 1.0 + u)
  p_t = 1.0 / jnp.abs(-1.0 - c + 0.5 * c * math.pi * jnp.sin(math.pi * u))
  return t, p_t / -schedule.dlogsnr_dt(jnp.clip(t, 0.0, 1.0))


def _s_cosine_interpolated(sp, u, schedule):
  # λ = λ_ic(v), v ~ U on the part of [0, 1] whose λ lies inside the schedule's range.
  ic = schedules_lib.InterpolatedCosine(sp.image_d, sp.noise_d_low, sp.noise_d_high)
  lo, hi = _lam_range(schedule)
  with jax.ensure_compile_time_eval():
    v_lo = float(ic.t_from_logsnr(jnp.asarray([min(hi, ic.logsnr_max)]))[0])
    v_hi = float(ic.t_from_logsnr(jnp.asarray([max(lo, ic.logsnr_min)]))[0])
  v = v_lo + u * (v_hi - v_lo)
  lam = ic.logsnr(v)
  p_lam = 1.0 / (-ic.dlogsnr_dt(v) * (v_hi - v_lo))
  return schedule.t_from_logsnr(lam), p_lam


_SAMPLERS = {
    "uniform": _s_uniform,
    "uniform_logsnr": _s_uniform_logsnr,
    "edm_lognormal": _s_edm_lognormal,
    "logit_normal": _s_logit_normal,
    "mode": _s_mode,
    "cosine_interpolated": _s_cosine_interpolated,
}


@dataclasses.dataclass(frozen=True)
class Adaptive:
  r"""Adaptive importance sampler (Kingma & Gao 2023, App. "adaptive noise schedule").

  p(λ) is piecewise constant on `num_bins` equal bins of [logsnr_lo, logsnr_hi] ∩ schedule range,
  proportional to an EMA of the per-bin mean of `values` (the loss integrand ½ w(λ)‖ε - ε̂‖²,
  i.e. `aux["integrand"]` of `losses.weighted_loss`), mixed with `uniform_mix` of the uniform
  density so no bin starves. State: {"ema": [num_bins] float32}.
  """

  num_bins: int = 100
  logsnr_lo: float = -20.0
  logsnr_hi: float = 20.0
  decay: float = 0.99
  uniform_mix: float = 0.1
  low_discrepancy: bool = False

  def init(self) -> dict[str, Array]:
    return {"ema": jnp.ones((self.num_bins,), jnp.float32)}

  def _edges(self, schedule):
    lo = max(self.logsnr_lo, schedule.logsnr_min)
    hi = min(self.logsnr_hi, schedule.logsnr_max)
    return lo, hi

  def probs(self, state) -> Array:
    ema = jnp.maximum(state["ema"], 0.0)
    return (1.0 - self.uniform_mix) * ema / jnp.sum(ema) + self.uniform_mix / self.num_bins

  def update(self, state, lam: Array, values: Array, schedule: Any) -> dict[str, Array]:
    lo, hi = self._edges(schedule)
    idx = jnp.clip(((lam - lo) / (hi - lo) * self.num_bins).astype(jnp.int32), 0, self.num_bins - 1)
    sums = jax.ops.segment_sum(values, idx, self.num_bins)
    counts = jax.ops.segment_sum(jnp.ones_like(values), idx, self.num_bins)
    mean = sums / jnp.maximum(counts, 1.0)
    ema = jnp.where(counts > 0, self.decay * state["ema"] + (1.0 - self.decay) * mean, state["ema"])
    return {"ema": ema}

  def sample(self, state, rng: Array, batch_size: int, schedule: Any) -> tuple[Array, Array]:
    lo, hi = self._edges(schedule)
    rng_bin, rng_u = jax.random.split(rng)
    probs = self.probs(state)
    # Inverse CDF of the piecewise-constant density on one uniform draw keeps stratification.
    u = uniform_u(rng_u, batch_size, self.low_discrepancy)
    cdf = jnp.concatenate([jnp.zeros(1), jnp.cumsum(probs)])
    cdf = cdf / cdf[-1]
    b = jnp.clip(jnp.searchsorted(cdf, u, side="right") - 1, 0, self.num_bins - 1)
    frac = (u - cdf[b]) / jnp.maximum(cdf[b + 1] - cdf[b], 1e-12)
    width = (hi - lo) / self.num_bins
    lam = lo + (b + jnp.clip(frac, 0.0, 1.0)) * width
    del rng_bin
    t = jnp.clip(schedule.t_from_logsnr(lam), 0.0, 1.0)
    return t.astype(jnp.float32), (probs[b] / width).astype(jnp.float32)

  def __call__(self, rng, batch_size, schedule, state=None):
    return self.sample(self.init() if state is None else state, rng, batch_size, schedule)


def make_t_sampler(kind: str, **kwargs) -> TSampler | Adaptive:
  """Noise-level sampler by name: "uniform", "uniform_logsnr", "edm_lognormal", "logit_normal",
  "mode", "cosine_interpolated", "adaptive". Raises ValueError naming a bad kind or keyword."""
  if kind == "adaptive":
    ctor = Adaptive
  elif kind in _SAMPLERS:
    ctor = lambda **kw: TSampler(kind, **kw)
  else:
    raise ValueError(f"Unknown t_sampler kind {kind!r}; known: {sorted(_SAMPLERS) + ['adaptive']}.")
  try:
    return ctor(**kwargs)
  except TypeError as e:
    raise ValueError(f"Bad keyword argument for t_sampler {kind!r}: {e}") from e
