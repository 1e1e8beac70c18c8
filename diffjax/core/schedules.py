r"""Noise schedules: the map t -> log-SNR λ(t) and the scales α_t, σ_t of z_t = α_t x + σ_t ε.

Convention (DESIGN.md): t ∈ [0, 1], t = 0 is data, λ(t) = log(α_t² / σ_t²) is strictly decreasing.
Every schedule is a frozen dataclass (the VDM learned schedule is a Flax module, `learned.py`) with

  logsnr(t) -> λ [B]            t_from_logsnr(λ) -> t [B]       (exact inverse of each other)
  alpha_sigma(t) -> (α, σ)      dlogsnr_dt(t) -> dλ/dt (< 0)
  logsnr_max = λ(0), logsnr_min = λ(1)   (floats; ±inf where the paper's schedule is unbounded)

α and σ are recovered from λ by the schedule's *family* (`alpha_sigma_from_logsnr`):
  "vp"    α = sqrt(sigmoid λ), σ = sqrt(sigmoid -λ)        (α² + σ² = 1)
  "ve"    α = 1, σ = exp(-λ/2)                             (EDM, Score-SDE VE)
  "flow"  α = sigmoid(λ/2), σ = sigmoid(-λ/2)              (α + σ = 1, rectified flow)
  "subvp" σ = 1 - α², α²/σ² = e^λ                          (Score-SDE sub-VP)
so wrappers that move λ (input scaling, resolution shift) keep the family of the schedule they wrap.

Values of t are checked to lie in [0, 1] when they are concrete (outside jit); under jit no check is
possible without host callbacks, so traced values are trusted.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import schedule_base
from diffjax.core import schedule_wrappers

# The schedule protocol, re-exported so callers need only `schedules`.
Array = schedule_base.Array
FAMILIES = schedule_base.FAMILIES
Schedule = schedule_base.Schedule
alpha_sigma_from_logsnr = schedule_base.alpha_sigma_from_logsnr
bisect_decreasing = schedule_base.bisect_decreasing
check_t = schedule_base.check_t
InputScaled = schedule_wrappers.InputScaled
ZeroTerminalSNR = schedule_wrappers.ZeroTerminalSNR
_f32 = schedule_base.as_t

__all__ = [
    "FAMILIES",
    "Schedule",
    "alpha_sigma_from_logsnr",
    "bisect_decreasing",
    "check_t",
    "InputScaled",
    "ZeroTerminalSNR",
    "make",
    "SCHEDULES",
]

# ------------------------------------------------------------------------------------------------
# Variance preserving schedules.


@dataclasses.dataclass(frozen=True)
class VP(Schedule):
  r"""Score-SDE VP = continuous limit of DDPM's linear β (Song et al. 2021, eq. 11; Ho et al. 2020).

  β(s) = β_min + s (β_max - β_min), log ᾱ(s) = -∫₀ˢ β = -(β_min s + ½(β_max - β_min) s²),
  λ = log(ᾱ / (1 - ᾱ)) = -log(expm1(-log ᾱ)). DDPM's β_1 = 1e-4, β_T = 0.02 with T = 1000 gives
  β_min = 0.1, β_max = 20. Since λ(0) = +∞, the paper's time s runs over [t_min, 1]:
  s = t_min + (1 - t_min) t, with Score SDE's likelihood/training cut-off t_min = 1e-5.
  """

  beta_min: float = 0.1
  beta_max: float = 20.0
  t_min: float = 1e-5
  family = "vp"

  def _neg_log_alpha_bar(self, s):
    return self.beta_min * s + 0.5 * (self.beta_max - self.beta_min) * s**2

  def _s_from_neg_log_alpha_bar(self, c):
    # Root of ½Δ s² + β_min s - c = 0, in the cancellation-free form 2c / (β_min + sqrt(·)).
    delta = self.beta_max - self.beta_min
    return 2.0 * c / (self.beta_min + jnp.sqrt(self.beta_min**2 + 2.0 * delta * c))

  def logsnr(self, t):
    s = self.t_min + (1.0 - self.t_min) * _f32(t)
    return -jnp.log(jnp.expm1(self._neg_log_alpha_bar(s)))

  def t_from_logsnr(self, lam):
    c = jax.nn.softplus(-schedule_base.as_float(lam))  # -log ᾱ = log(1 + e^{-λ})
    return (self._s_from_neg_log_alpha_bar(c) - self.t_min) / (1.0 - self.t_min)


@dataclasses.dataclass(frozen=True)
class SubVP(VP):
  r"""Score-SDE sub-VP (Song et al. 2021, eq. 29): α = sqrt(ᾱ), σ² ... σ = 1 - ᾱ (std, not var).

  The marginal of the sub-VP SDE is N(sqrt(ᾱ) x, (1 - ᾱ)² I) with ᾱ(s) as in VP, so
  λ = log ᾱ - 2 log(1 - ᾱ). Time cut-off t_min as in `VP`.
  """

  family = "subvp"

  def logsnr(self, t):
    s = self.t_min + (1.0 - self.t_min) * _f32(t)
    c = self._neg_log_alpha_bar(s)
    return -c - 2.0 * jnp.log(-jnp.expm1(-c))

  def alpha_sigma(self, t):
    s = self.t_min + (1.0 - self.t_min) * _f32(t)
    c = self._neg_log_alpha_bar(s)
    return jnp.exp(-0.5 * c), -jnp.expm1(-c)

  def t_from_logsnr(self, lam):
    r = jnp.exp(-schedule_base.as_float(lam))
    c = jnp.log1p(0.5 * (r + jnp.sqrt(r) * jnp.sqrt(r + 4.0)))  # -log ᾱ
    return (self._s_from_neg_log_alpha_bar(c) - self.t_min) / (1.0 - self.t_min)


@dataclasses.dataclass(frozen=True)
class Cosine(Schedule):
  r"""Cosine schedule (Nichol & Dhariwal 2021, eq. 17), continuous, truncated to a λ range.

  ᾱ(u) = cos²(π/2 · (u + s)/(1 + s)) / cos²(π/2 · s/(1 + s)), so with φ(u) = π/2 (u + s)/(1 + s),
  λ(u) = log(cos² φ / (cos² φ₀ - cos² φ)). For s = 0 this is -2 log tan(π u / 2), the form of
  Salimans & Ho (2022) and simple diffusion (Hoogeboom et al. 2023, logsnr_schedule_cosine).
  λ is ±∞ at u = 0, 1, so u runs over [u(λ_max), u(λ_min)]: u = u_lo + t (u_hi - u_lo).
  """

  s: float = 0.0
  truncate_logsnr_min: float = -15.0
  truncate_logsnr_max: float = 15.0
  family = "vp"

  def _raw_logsnr(self, u):
    phi = 0.5 * math.pi * (u + self.s) / (1.0 + self.s)
    if self.s == 0.0:
      return -2.0 * jnp.log(jnp.tan(phi))
    phi0 = 0.5 * math.pi * self.s / (1.0 + self.s)
    # cos² φ₀ - cos² φ = sin(φ - φ₀) sin(φ + φ₀), free of cancellation near φ₀.
    return 2.0 * jnp.log(jnp.cos(phi)) - jnp.log(jnp.sin(phi - phi0) * jnp.sin(phi + phi0))

  def _raw_u(self, lam, xp=jnp):
    # ᾱ = sigmoid(λ) = cos² φ / cos² φ₀  =>  tan φ = sqrt(sin² φ₀ + e^{-λ}) / cos φ₀
    phi0 = 0.5 * math.pi * self.s / (1.0 + self.s)
    phi = xp.arctan(xp.sqrt(math.sin(phi0) ** 2 + xp.exp(-lam)) / math.cos(phi0))
    return phi * 2.0 / math.pi * (1.0 + self.s) - self.s

  @functools.cached_property
  def _u_range(self):
    lo = float(self._raw_u(np.float64(self.truncate_logsnr_max), xp=np))
    hi = float(self._raw_u(np.float64(self.truncate_logsnr_min), xp=np))
    return lo, hi

  def logsnr(self, t):
    lo, hi = self._u_range
    return self._raw_logsnr(lo + _f32(t) * (hi - lo))

  def t_from_logsnr(self, lam):
    lo, hi = self._u_range
    return (self._raw_u(schedule_base.as_float(lam)) - lo) / (hi - lo)


@dataclasses.dataclass(frozen=True)
class LinearLogSNR(Schedule):
  """λ linear in t from logsnr_max to logsnr_min (VDM's fixed linear schedule, Kingma 2021 §5)."""

  logsnr_lo: float = -5.0  # λ(1); VDM's γ_max = 5
  logsnr_hi: float = 13.3  # λ(0); VDM's γ_min = -13.3
  family = "vp"

  def logsnr(self, t):
    return self.logsnr_hi + _f32(t) * (self.logsnr_lo - self.logsnr_hi)

  def t_from_logsnr(self, lam):
    return (schedule_base.as_float(lam) - self.logsnr_hi) / (self.logsnr_lo - self.logsnr_hi)


@dataclasses.dataclass(frozen=True)
class InterpolatedCosine(Schedule):
  r"""Simple diffusion's interpolated shifted cosine (Hoogeboom et al. 2023, §3.1 listing).

  λ(t) = t·λ_cos(t; shift_low) + (1 - t)·λ_cos(t; shift_high), shift(d) = 2 log(d / image_d):
  the low-resolution shift (more noise) at t = 1, the high-resolution one at t = 0 (the paper's
  listing; k-diffusion's `rand_cosine_interpolated` interpolates the other way round).
  Inverted by bisection.
  """

  image_d: float = 512.0
  noise_d_low: float = 32.0
  noise_d_high: float = 256.0
  truncate_logsnr_min: float = -15.0
  truncate_logsnr_max: float = 15.0
  family = "vp"

  def logsnr(self, t):
    t = _f32(t)
    base = Cosine(0.0, self.truncate_logsnr_min, self.truncate_logsnr_max).logsnr(t)
    shift_low = 2.0 * math.log(self.noise_d_low / self.image_d)
    shift_high = 2.0 * math.log(self.noise_d_high / self.image_d)
    return base + t * shift_low + (1.0 - t) * shift_high

  def t_from_logsnr(self, lam):
    return bisect_decreasing(self.logsnr, lam, 0.0, 1.0)


# ------------------------------------------------------------------------------------------------
# Discrete chains (DDPM, IDDPM).


@dataclasses.dataclass(frozen=True)
class DiscreteChain(Schedule):
  r"""A discrete β chain β_1..β_T seen in continuous time.

  Node i ∈ {1..T} (the paper's x_i, ᾱ_i = ∏_{j≤i} (1 - β_j)) sits at t = (i - 1)/(T - 1), so t = 0
  is x_1 (the input of DDPM's decoder L_0) and t = 1 is x_T; λ is linear in t between nodes.
  `kind` is "linear" (Ho et al. 2020: β linear from 1e-4 to 0.02, scaled by 1000/T as in
  guided-diffusion's `get_named_beta_schedule`) or "cosine" (Nichol & Dhariwal 2021:
  β_i = min(1 - ᾱ(i/T)/ᾱ((i-1)/T), max_beta) with ᾱ the s-offset cosine).
  """

  kind: str = "linear"
  num_timesteps: int = 1000
  beta_start: float = 1e-4
  beta_end: float = 0.02
  s: float = 0.008
  max_beta: float = 0.999
  family = "vp"

  def __post_init__(self):
    if self.kind not in ("linear", "cosine"):
      raise ValueError(f"kind must be 'linear' or 'cosine'; got {self.kind!r}.")
    if int(self.num_timesteps) < 2:
      raise ValueError(f"num_timesteps must be >= 2; got {self.num_timesteps}.")
    self.alphas_cumprod()  # validates the betas

  def betas(self) -> np.ndarray:
    """β_1..β_T, float64 [T]."""
    n = int(self.num_timesteps)
    if self.kind == "linear":
      scale = 1000.0 / n
      return np.linspace(scale * self.beta_start, scale * self.beta_end, n, dtype=np.float64)
    f = lambda u: np.cos((u + self.s) / (1.0 + self.s) * np.pi / 2.0) ** 2
    i = np.arange(n, dtype=np.float64)
    return np.minimum(1.0 - f((i + 1) / n) / f(i / n), self.max_beta)

  def alphas_cumprod(self) -> np.ndarray:
    """ᾱ_1..ᾱ_T, float64 [T]."""
    betas = self.betas()
    if not (np.all(betas > 0) and np.all(betas < 1)):
      raise ValueError(
          f"num_timesteps={self.num_timesteps} gives betas outside (0, 1) "
          f"(range [{betas.min()}, {betas.max()}]); the linear schedule is scaled by "
          "1000/num_timesteps, so use num_timesteps >= 21."
      )
    return np.cumprod(1.0 - betas)

  @functools.cached_property
  def _nodes(self) -> np.ndarray:
    abar = self.alphas_cumprod()
    return (np.log(abar) - np.log1p(-abar)).astype(np.float32)  # λ_1 > ... > λ_T

  def logsnr(self, t):
    nodes = jnp.asarray(self._nodes)
    x = _f32(t) * (nodes.shape[0] - 1)
    i = jnp.clip(jnp.floor(x), 0, nodes.shape[0] - 2).astype(jnp.int32)
    frac = x - i
    return nodes[i] + frac * (nodes[i + 1] - nodes[i])

  def t_from_logsnr(self, lam):
    nodes = jnp.asarray(self._nodes)
    lam = schedule_base.as_float(lam)
    # Nodes are decreasing; search in the increasing sequence -nodes.
    j = jnp.searchsorted(-nodes, -lam, side="right")
    i = jnp.clip(j - 1, 0, nodes.shape[0] - 2)
    frac = (lam - nodes[i]) / (nodes[i + 1] - nodes[i])
    return (i + frac) / (nodes.shape[0] - 1)

  def t_from_index(self, i: Array) -> Array:
    """t of the paper's step index i ∈ {1..T}."""
    return (schedule_base.as_float(i) - 1.0) / (int(self.num_timesteps) - 1)


# ------------------------------------------------------------------------------------------------
# Variance exploding / EDM.


@dataclasses.dataclass(frozen=True)
class VE(Schedule):
  """Score-SDE VE (Song et al. 2021, eq. 31): α = 1, σ(t) = σ_min (σ_max/σ_min)^t; CIFAR values."""

  sigma_min: float = 0.01
  sigma_max: float = 50.0
  family = "ve"

  def logsnr(self, t):
    log_sigma = math.log(self.sigma_min) + _f32(t) * math.log(self.sigma_max / self.sigma_min)
    return -2.0 * log_sigma

  def t_from_logsnr(self, lam):
    log_sigma = -0.5 * schedule_base.as_float(lam)
    return (log_sigma - math.log(self.sigma_min)) / math.log(self.sigma_max / self.sigma_min)


@dataclasses.dataclass(frozen=True)
class EDM(Schedule):
  r"""EDM (Karras et al. 2022, eq. 5, Table 1): α = 1, σ(t) = (a + t(b - a))^ρ, a, b = σ_min^{1/ρ}, σ_max^{1/ρ}.

  The continuous form of EDM's ρ-spaced sampling grid, t = 0 at σ_min = 0.002, t = 1 at
  σ_max = 80, ρ = 7. EDM trains with log-normal σ (see `weighting.make_t_sampler("edm_lognormal")`),
  which this map carries onto t.
  """

  sigma_min: float = 0.002
  sigma_max: float = 80.0
  rho: float = 7.0
  family = "ve"

  def logsnr(self, t):
    a, b = self.sigma_min ** (1.0 / self.rho), self.sigma_max ** (1.0 / self.rho)
    return -2.0 * self.rho * jnp.log(a + _f32(t) * (b - a))

  def t_from_logsnr(self, lam):
    a, b = self.sigma_min ** (1.0 / self.rho), self.sigma_max ** (1.0 / self.rho)
    root = jnp.exp(-0.5 * schedule_base.as_float(lam) / self.rho)  # σ^{1/ρ}
    return (root - a) / (b - a)


# ------------------------------------------------------------------------------------------------
# Flow matching / rectified flow.


@dataclasses.dataclass(frozen=True)
class Flow(Schedule):
  r"""Rectified flow / flow matching path, α = 1 - t, σ = σ_min + (1 - σ_min) t.

  σ_min = 0 is rectified flow (Liu et al. 2022) and SD3's z = (1 - t) x + t ε (Esser et al. 2024);
  σ_min > 0 is Lipman et al. (2022)'s OT path μ_τ = τ x, σ_τ = 1 - (1 - σ_min) τ written in
  diffjax time t = 1 - τ (Lipman runs τ = 0 at noise). λ = 2 log((1 - t)/σ(t)); λ(1) = -∞, and
  λ(0) = +∞ when σ_min = 0. α and σ come straight from t, not from λ. The path's velocity
  dz/dt = (1 - σ_min) ε - x is the target of `parameterization.Flow(sigma_min=σ_min)`: give the
  parameterisation the same σ_min.
  """

  sigma_min: float = 0.0
  family = "flow"

  def logsnr(self, t):
    t = _f32(t)
    return 2.0 * (jnp.log1p(-t) - jnp.log(self.sigma_min + (1.0 - self.sigma_min) * t))

  def t_from_logsnr(self, lam):
    # (1 - t) / (σ_min + (1 - σ_min) t) = r := e^{λ/2}  =>  t = (1 - σ_min r) / (1 + (1 - σ_min) r)
    lam = schedule_base.as_float(lam)
    if self.sigma_min == 0.0:
      return jax.nn.sigmoid(-0.5 * lam)
    r = jnp.exp(0.5 * lam)
    return (1.0 - self.sigma_min * r) / (1.0 + (1.0 - self.sigma_min) * r)

  def alpha_sigma(self, t):
    t = _f32(t)
    return 1.0 - t, self.sigma_min + (1.0 - self.sigma_min) * t

  def dlogsnr_dt(self, t):
    t = _f32(t)
    return -2.0 / (1.0 - t) - 2.0 * (1.0 - self.sigma_min) / (
        self.sigma_min + (1.0 - self.sigma_min) * t
    )


# ------------------------------------------------------------------------------------------------
# Registry.


def _shifted_cosine(
    resolution: float = 64.0,
    base_resolution: float = 64.0,
    truncate_logsnr_min: float = -15.0,
    truncate_logsnr_max: float = 15.0,
):
  """Simple diffusion's shifted cosine: λ_cos(t) + 2 log(base_resolution / resolution)."""
  return InputScaled(
      Cosine(0.0, truncate_logsnr_min, truncate_logsnr_max), scale=base_resolution / resolution
  )


def _shifted_flow(shift: float = 3.0, sigma_min: float = 0.0):
  """SD3's resolution-shifted flow, t' = s t / (1 + (s - 1) t) (Esser et al. 2024, eq. 23)."""
  return InputScaled(Flow(sigma_min), scale=1.0 / shift)


def _zero_terminal_snr(base: dict | Schedule | None = None):
  if base is None:
    return ZeroTerminalSNR(DiscreteChain("linear"))  # Lin et al. rescale DDPM's linear β
  return ZeroTerminalSNR(base if isinstance(base, Schedule) else make(**dict(base)))


def _input_scaled(base: dict | Schedule, scale: float = 1.0, normalize: bool = True):
  base = base if isinstance(base, Schedule) else make(**dict(base))
  return InputScaled(base, scale, normalize)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "vp": VP,
    "linear_beta": VP,  # continuous limit of DDPM's linear β
    "sub_vp": SubVP,
    "ddpm": functools.partial(DiscreteChain, "linear"),
    "iddpm_cosine": functools.partial(DiscreteChain, "cosine"),
    "cosine": Cosine,
    "shifted_cosine": _shifted_cosine,
    "interpolated_cosine": InterpolatedCosine,
    "linear_logsnr": LinearLogSNR,
    "ve": VE,
    "edm": EDM,
    "flow": Flow,
    "rectified_flow": Flow,
    "shifted_flow": _shifted_flow,
    "input_scaled": _input_scaled,
    "zero_terminal_snr": _zero_terminal_snr,
}


def make(kind: str, **kwargs) -> Schedule:
  """Builds a schedule by registry name, e.g. make("edm", sigma_min=0.002, sigma_max=80.0).

  Wrappers take the wrapped schedule as a dict: make("zero_terminal_snr", base=dict(kind="ddpm")).
  The learned VDM schedule is a Flax module: see `diffjax.core.learned`.

  Raises:
    ValueError: naming `kind` if unknown, or the unexpected keyword argument.
  """
  if kind not in SCHEDULES:
    raise ValueError(f"Unknown schedule kind {kind!r}; known: {sorted(SCHEDULES)}.")
  ctor = SCHEDULES[kind]
  try:
    return ctor(**kwargs)
  except TypeError as e:
    raise ValueError(f"Bad keyword argument for schedule kind {kind!r}: {e}") from e
