"""σ grids (σ-frame noise levels σ̃ = σ_t/α_t = exp(-λ/2)) for the solvers.

`grid(name, num_steps, **opts)` returns a float64 NumPy array of num_steps + 1 strictly decreasing
entries. With `append_zero=True` (default, EDM's convention) the spacing supplies num_steps levels
and a final 0 is appended, so the last step is a final denoise; with `append_zero=False` the spacing
supplies all num_steps + 1 levels and sampling stops at the smallest (DPM-Solver's convention,
no final denoise).
"""

from typing import Callable

import numpy as np

from diffjax.core import schedules as schedules_lib


def _sigmas_from_t(schedule, t: np.ndarray) -> np.ndarray:
  """σ̃(t) = exp(-λ(t)/2) (DESIGN.md, solver frame). t: [M] -> [M] float64."""
  lam = np.asarray(schedule.logsnr(np.asarray(t, _float())), np.float64)
  sigmas = np.exp(-0.5 * lam)
  if not np.all(np.isfinite(sigmas)):
    raise ValueError(f"schedule {schedule!r} has an infinite σ/α at some t in "
                     f"{t.min()}..{t.max()}: choose t_max < 1 (flow schedules) or t_min > 0")
  return sigmas


def _t_from_sigmas(schedule, sigmas: np.ndarray) -> np.ndarray:
  return np.asarray(schedule.t_from_logsnr(np.asarray(-2.0 * np.log(sigmas), _float())))


def _float():
  """float64 when jax_enable_x64 is on (schedules then compute in float64), else float32."""
  import jax  # local: grids stay importable without touching devices

  return np.float64 if jax.config.jax_enable_x64 else np.float32


def _count(num_steps: int, append_zero: bool) -> int:
  """How many levels the spacing itself supplies."""
  if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
    raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
  return int(num_steps) if append_zero else int(num_steps) + 1


def _finish(levels: np.ndarray, append_zero: bool) -> np.ndarray:
  levels = np.asarray(levels, np.float64)
  if append_zero:
    levels = np.concatenate([levels, [0.0]])
  return levels


def karras(num_steps, sigma_min=0.002, sigma_max=80.0, rho=7.0, append_zero=True, schedule=None):
  """σ_i = (σ_max^{1/ρ} + i/(M-1)(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ (Karras et al. 2022, Eq. 5).

  With a `schedule` (the Methods pass their own), [σ_min, σ_max] is first narrowed to the σ̃ range
  the schedule spans over t ∈ [0, 1], as EDM's sampler narrows it to the network's
  (`sigma_min = max(sigma_min, net.sigma_min)`, likewise σ_max): a network is not asked about
  noise levels it was never trained on (VDM's γ_max = 5 ends at σ̃ = 12.2, IDDPM's cosine chain
  starts at σ̃ = 0.0064).
  """
  if schedule is not None:
    lo, hi = schedule_sigma_range(_resolve_schedule(schedule))
    # Ends equal up to the schedule's float32 rounding (EDM's own [0.002, 80]) leave the grid as is.
    if lo > sigma_min * (1 + 1e-5):
      sigma_min = lo
    if hi < sigma_max * (1 - 1e-5):
      sigma_max = hi
  m = _count(num_steps, append_zero)
  if not 0 < sigma_min < sigma_max:
    raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, "
                     f"sigma_max={sigma_max}")
  if rho <= 0:
    raise ValueError(f"rho must be positive, got {rho}")
  if m < 2:
    raise ValueError(f"karras needs num_steps >= 2 with append_zero, got {num_steps}")
  i = np.arange(m, dtype=np.float64)
  levels = (sigma_max ** (1 / rho) + i / (m - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
            ) ** rho
  return _finish(levels, append_zero)


def schedule_sigma_range(schedule) -> tuple[float, float]:
  """(σ̃(t=0), σ̃(t=1)) = exp(-λ/2) at the schedule's ends; 0 and inf where λ is infinite."""
  import jax  # local: grids stay importable without touching devices

  with jax.ensure_compile_time_eval():
    lam = np.asarray(schedule.logsnr(np.asarray([0.0, 1.0], _float())), np.float64)
  with np.errstate(over="ignore"):
    lo, hi = np.exp(-0.5 * lam)
  return float(lo), float(hi)


def _resolve_schedule(schedule):
  if schedule is None:
    raise ValueError("this grid needs schedule= (a diffjax schedule, e.g. schedules.make('vp'))")
  if isinstance(schedule, dict):
    return schedules_lib.make(**schedule)
  return schedule


def _check_t_range(t_min, t_max):
  if not 0.0 <= t_min < t_max <= 1.0:
    raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")


def uniform_t(num_steps, schedule=None, t_min=1e-3, t_max=1.0, append_zero=True):
  """Levels at t uniform in [t_min, t_max] under a diffjax schedule (DDIM 'linear' skip)."""
  schedule = _resolve_schedule(schedule)
  _check_t_range(t_min, t_max)
  t = np.linspace(t_max, t_min, _count(num_steps, append_zero))
  return _finish(_sigmas_from_t(schedule, t), append_zero)


def uniform_logsnr(num_steps, schedule=None, t_min=1e-3, t_max=1.0, append_zero=True):
  """Levels uniform in λ from λ(t_max) to λ(t_min), i.e. geometric in σ̃ (DPM-Solver 'logSNR')."""
  schedule = _resolve_schedule(schedule)
  _check_t_range(t_min, t_max)
  ends = np.log(_sigmas_from_t(schedule, np.array([t_max, t_min])))
  return _finish(np.exp(np.linspace(ends[0], ends[1], _count(num_steps, append_zero))), append_zero)


def quadratic(num_steps, schedule=None, t_min=1e-3, t_max=1.0, append_zero=True):
  """Levels at t = (linspace(√t_max, √t_min))² (DDIM's 'quad' skip, DPM-Solver 'time_quadratic')."""
  schedule = _resolve_schedule(schedule)
  _check_t_range(t_min, t_max)
  t = np.linspace(np.sqrt(t_max), np.sqrt(t_min), _count(num_steps, append_zero)) ** 2
  return _finish(_sigmas_from_t(schedule, t), append_zero)


def _dpm_defaults(num_steps, schedule, t_end):
  """DPM-Solver README defaults: the linear VP SDE (β 0.1 → 20, time from 0) and t_end = 1e-3 for
  ≤ 15 steps, else 1e-4."""
  if schedule is None:
    schedule = schedules_lib.make("vp", beta_min=0.1, beta_max=20.0, t_min=0.0)
  if t_end is None:
    t_end = 1e-3 if num_steps <= 15 else 1e-4
  return schedule, t_end


def time_uniform(num_steps, schedule=None, t_start=1.0, t_end=None, append_zero=True):
  """DPM-Solver's 'time_uniform' skip: t = linspace(t_start, t_end) on the VP schedule."""
  schedule, t_end = _dpm_defaults(num_steps, schedule, t_end)
  return uniform_t(num_steps, schedule, t_min=t_end, t_max=t_start, append_zero=append_zero)


def logsnr_dpm(num_steps, schedule=None, t_start=1.0, t_end=None, append_zero=True):
  """DPM-Solver's 'logSNR' skip: λ = linspace(λ(t_start), λ(t_end)) on the VP schedule."""
  schedule, t_end = _dpm_defaults(num_steps, schedule, t_end)
  return uniform_logsnr(num_steps, schedule, t_min=t_end, t_max=t_start, append_zero=append_zero)


def array(num_steps, sigmas=None):
  """A user grid, checked: num_steps + 1 strictly decreasing, non-negative, finite entries."""
  if sigmas is None:
    raise ValueError("grid 'array' needs sigmas=")
  sigmas = np.asarray(sigmas, np.float64)
  check_sigmas(sigmas)
  if sigmas.shape[0] != num_steps + 1:
    raise ValueError(f"sigmas has {sigmas.shape[0]} entries, expected num_steps + 1 = "
                     f"{num_steps + 1}")
  return sigmas


GRIDS: dict[str, Callable[..., np.ndarray]] = {
    "karras": karras,
    "uniform_t": uniform_t,
    "uniform_logsnr": uniform_logsnr,
    "quadratic": quadratic,
    "time_uniform": time_uniform,
    "logSNR": logsnr_dpm,
    "array": array,
}


def grid(name: str, num_steps: int, **opts) -> np.ndarray:
  """Builds a named σ grid of num_steps + 1 entries; see the module docstring.

  Raises:
    ValueError: unknown name (listing the known ones) or option, or bad values.
  """
  if name not in GRIDS:
    raise ValueError(f"unknown grid {name!r}; known grids: {sorted(GRIDS)}")
  try:
    return GRIDS[name](num_steps, **opts)
  except TypeError as e:
    raise ValueError(f"bad option for grid {name!r}: {e}") from e


def check_sigmas(sigmas) -> None:
  """Raises ValueError unless `sigmas` is 1-D with ≥ 2 finite, non-negative, strictly decreasing
  entries (only the last may be 0). Skipped for traced values."""
  import jax  # local: grids stay importable without touching devices

  if isinstance(sigmas, jax.core.Tracer):
    if sigmas.ndim != 1 or sigmas.shape[0] < 2:
      raise ValueError(f"sigmas must be 1-D with at least 2 entries, got shape {sigmas.shape}")
    return
  s = np.asarray(sigmas)
  if s.ndim != 1 or s.shape[0] < 2:
    raise ValueError(f"sigmas must be 1-D with at least 2 entries, got shape {s.shape}")
  if not np.all(np.isfinite(s)):
    raise ValueError(f"sigmas must be finite, got {s}")
  if np.any(s < 0):
    raise ValueError(f"sigmas must be non-negative, got {s}")
  diffs = np.diff(s)
  if np.any(diffs >= 0):
    k = int(np.argmax(diffs >= 0))
    raise ValueError(f"sigmas must be strictly decreasing; sigmas[{k}]={s[k]} <= "
                     f"sigmas[{k + 1}]={s[k + 1]}")
