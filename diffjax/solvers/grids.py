"""σ grids (σ-frame noise levels σ̃ = σ_t/α_t = exp(-λ/2)) for the solvers.

`grid(name, num_steps, schedule=..., **opts)` returns a float64 NumPy array of num_steps + 1
strictly decreasing entries (`ddim` may return fewer, see there). With `append_zero=True` (default,
EDM's convention) the spacing supplies num_steps levels and a final 0 is appended, so the last step
is a final denoise; with `append_zero=False` the spacing supplies all num_steps + 1 levels and
sampling stops at the smallest (DPM-Solver's convention, no final denoise).

Every grid takes the model's schedule (a diffjax schedule or its config dict), so a caller passes it
without asking which grid needs it. Grids spaced in t or λ (`uniform_t`, `uniform_logsnr`,
`quadratic`, `time_uniform`, `logSNR`, `ddim`) are defined by it and raise ValueError without one.
Grids spaced in σ (`karras`, `array`) accept `schedule=None` (solver tests and benchmarks on an
exact denoiser have no model); `karras` narrows its σ range to a given schedule's.
"""

import inspect
from typing import Callable

import numpy as np

from diffjax.core import schedules as schedules_lib


def _sigmas_from_t(schedule, t: np.ndarray) -> np.ndarray:
  """σ̃(t) = exp(-λ(t)/2) (DESIGN.md, solver frame). t: [M] -> [M] float64.

  Evaluated now, also when called inside a trace (a jitted or `eval_shape`d sampling call): a grid
  is data on the host, a function of the schedule only.
  """
  import jax  # local: grids stay importable without touching devices

  with jax.ensure_compile_time_eval():
    lam = np.asarray(schedule.logsnr(np.asarray(t, _float())), np.float64)
  sigmas = np.exp(-0.5 * lam)
  if not np.all(np.isfinite(sigmas)):
    raise ValueError(
        f"schedule {schedule!r} has an infinite σ/α at some t in "
        f"{t.min()}..{t.max()}: choose t_max < 1 (flow schedules) or t_min > 0"
    )
  return sigmas


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


def karras(num_steps, *, schedule=None, sigma_min=0.002, sigma_max=80.0, rho=7.0, append_zero=True):
  """σ_i = (σ_max^{1/ρ} + i/(M-1)(σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ (Karras et al. 2022, Eq. 5).

  With a `schedule` (the Methods pass their own), [σ_min, σ_max] is first narrowed to the σ̃ range
  the schedule spans over t ∈ [0, 1], as EDM's sampler narrows it to the network's
  (`sigma_min = max(sigma_min, net.sigma_min)`, likewise σ_max): a network is not asked about
  noise levels it was never trained on (VDM's γ_max = 5 ends at σ̃ = 12.2, IDDPM's cosine chain
  starts at σ̃ = 0.0064).
  """
  if schedule is not None:
    lo, hi = schedule_sigma_range(_resolve_schedule(schedule, "karras"))
    # Ends equal up to the schedule's float32 rounding (EDM's own [0.002, 80]) leave the grid as is.
    if lo > sigma_min * (1 + 1e-5):
      sigma_min = lo
    if hi < sigma_max * (1 - 1e-5):
      sigma_max = hi
  m = _count(num_steps, append_zero)
  if not 0 < sigma_min < sigma_max:
    raise ValueError(
        f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, " f"sigma_max={sigma_max}"
    )
  if rho <= 0:
    raise ValueError(f"rho must be positive, got {rho}")
  if m < 2:
    raise ValueError(f"karras needs num_steps >= 2 with append_zero, got {num_steps}")
  i = np.arange(m, dtype=np.float64)
  levels = (
      sigma_max ** (1 / rho) + i / (m - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))
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


def _resolve_schedule(schedule, name: str = "this grid"):
  if schedule is None:
    raise ValueError(
        f"grid {name!r} is spaced in t or λ of a schedule and needs schedule= (the "
        "model's diffjax schedule or its config dict, e.g. schedules.make('vp'))"
    )
  if isinstance(schedule, dict):
    return schedules_lib.make(**schedule)
  return schedule


def _check_t_range(t_min, t_max):
  if not 0.0 <= t_min < t_max <= 1.0:
    raise ValueError(f"need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")


def uniform_t(num_steps, *, schedule, t_min=1e-3, t_max=1.0, append_zero=True):
  """Levels at t uniform in [t_min, t_max] under a diffjax schedule (DDIM 'linear' skip)."""
  schedule = _resolve_schedule(schedule, "uniform_t")
  _check_t_range(t_min, t_max)
  t = np.linspace(t_max, t_min, _count(num_steps, append_zero))
  return _finish(_sigmas_from_t(schedule, t), append_zero)


def uniform_logsnr(num_steps, *, schedule, t_min=1e-3, t_max=1.0, append_zero=True):
  """Levels uniform in λ from λ(t_max) to λ(t_min), i.e. geometric in σ̃ (DPM-Solver 'logSNR')."""
  schedule = _resolve_schedule(schedule, "uniform_logsnr")
  _check_t_range(t_min, t_max)
  ends = np.log(_sigmas_from_t(schedule, np.array([t_max, t_min])))
  return _finish(np.exp(np.linspace(ends[0], ends[1], _count(num_steps, append_zero))), append_zero)


def quadratic(num_steps, *, schedule, t_min=1e-3, t_max=1.0, append_zero=True):
  """Levels at t = (linspace(√t_max, √t_min))² (DDIM's 'quad' skip, DPM-Solver 'time_quadratic')."""
  schedule = _resolve_schedule(schedule, "quadratic")
  _check_t_range(t_min, t_max)
  t = np.linspace(np.sqrt(t_max), np.sqrt(t_min), _count(num_steps, append_zero)) ** 2
  return _finish(_sigmas_from_t(schedule, t), append_zero)


def _dpm_t_end(num_steps, t_end):
  """DPM-Solver README default: t_end = 1e-3 for ≤ 15 steps, else 1e-4."""
  if t_end is None:
    t_end = 1e-3 if num_steps <= 15 else 1e-4
  return t_end


def time_uniform(num_steps, *, schedule, t_start=1.0, t_end=None, append_zero=True):
  """DPM-Solver's 'time_uniform' skip: t = linspace(t_start, t_end) (README defaults for t_end).

  DPM-Solver's own setting is the linear VP SDE with time from 0,
  `schedules.make("vp", beta_min=0.1, beta_max=20.0, t_min=0.0)`.
  """
  schedule = _resolve_schedule(schedule, "time_uniform")
  return uniform_t(
      num_steps,
      schedule=schedule,
      t_min=_dpm_t_end(num_steps, t_end),
      t_max=t_start,
      append_zero=append_zero,
  )


def logsnr_dpm(num_steps, *, schedule, t_start=1.0, t_end=None, append_zero=True):
  """DPM-Solver's 'logSNR' skip: λ = linspace(λ(t_start), λ(t_end)) (README defaults for t_end).

  DPM-Solver's own setting is the linear VP SDE with time from 0 (see `time_uniform`).
  """
  schedule = _resolve_schedule(schedule, "logSNR")
  return uniform_logsnr(
      num_steps,
      schedule=schedule,
      t_min=_dpm_t_end(num_steps, t_end),
      t_max=t_start,
      append_zero=append_zero,
  )


def karras_subset(
    num_steps,
    *,
    num_levels,
    schedule=None,
    sigma_min=0.002,
    sigma_max=80.0,
    rho=7.0,
    append_zero=True,
):
  """Levels of the `num_levels`-point Karras grid (a consistency / CTM student's training grid)
  at indices round(i·(num_levels − 1)/(M − 1)), i = 0..M − 1 (NumPy's round, half to even): both
  ends and M − 2 levels in between, all *on* the training grid.

  A student trained only at the N levels σ_0..σ_{N−1} (CTM: t, s on its N = 18 levels) need not
  interpolate between them; `karras` with k steps puts its inner levels off that grid (N = 18,
  k = 2: σ = 2.52, between σ_8 = 3.26 and σ_9 = 1.92; this grid takes σ_8).
  experiments/results/fewstep_toy.md measures the difference. The reference consistency / CTM
  samplers take such levels as `ts`, indices into a `steps`-point grid; here they are evenly
  spaced. With M = num_levels this is `karras(num_levels − 1)`.
  """
  m = _count(num_steps, append_zero)
  n = int(num_levels)
  if not 2 <= m <= n:
    raise ValueError(
        f"karras_subset: {m} levels (num_steps={num_steps}, append_zero={append_zero}) need "
        f"2 <= levels <= num_levels={num_levels}"
    )
  full = karras(
      n - 1,
      schedule=schedule,
      sigma_min=sigma_min,
      sigma_max=sigma_max,
      rho=rho,
      append_zero=False,
  )
  index = np.round(np.linspace(0.0, n - 1, m)).astype(int)  # distinct: steps ≥ 1 apart
  return _finish(full[index], append_zero)


def array(num_steps, *, schedule=None, sigmas=None):
  """A user grid, checked: num_steps + 1 strictly decreasing, non-negative, finite entries.

  `schedule` is accepted for the common call and ignored: the levels are given.
  """
  del schedule
  if sigmas is None:
    raise ValueError("grid 'array' needs sigmas=")
  sigmas = np.asarray(sigmas, np.float64)
  check_sigmas(sigmas)
  if sigmas.shape[0] != num_steps + 1:
    raise ValueError(
        f"sigmas has {sigmas.shape[0]} entries, expected num_steps + 1 = {num_steps + 1}"
    )
  return sigmas


DDIM_SKIPS = ("uniform", "quadratic")


def ddim_timesteps(num_steps: int, skip: str, num_timesteps: int = 1000) -> list[int]:
  """DDIM's sub-sequence τ of a T-step chain (Song et al. 2021a, App. D.2), 1-based, decreasing.

  "uniform": τ_i = (i − 1)·c + 1 with c = ⌊T/S⌋ (the official code's `range(0, T, c)`, which has
  exactly S entries when S divides T); "quadratic": τ_i = ⌊(0.8 T)·((i − 1)/(S − 1))²⌋ + 1 (the
  official `[int(s) for s in np.linspace(0, sqrt(0.8 T), S) ** 2]`). The code indexes ᾱ at
  `seq + 1` (`compute_alpha`), hence the 1-based steps. A repeated timestep (quadratic with
  S ≥ 50 rounds several small ones alike; S = 100 keeps 96) is kept once: a DDIM η = 0 step from
  a noise level to the same level is the identity, so the samples are the paper's with fewer
  evaluations.

  Args:
    num_steps: S, the paper's number of sampling steps.
    skip: "uniform" or "quadratic".
    num_timesteps: T, the chain's length.

  Returns:
    The distinct steps τ, decreasing, each in 1..T (S of them, fewer after de-duplication).
  """
  s, t = int(num_steps), int(num_timesteps)
  if not 1 <= s <= t:
    raise ValueError(f"DDIM steps={num_steps}: expected 1 <= steps <= num_timesteps={t}")
  if skip == "uniform":
    c = t // s
    steps = [i * c for i in range(s)]
  elif skip == "quadratic":
    if s < 2:
      raise ValueError("DDIM steps must be >= 2 for the quadratic sub-sequence")
    steps = [int(v) for v in np.linspace(0.0, np.sqrt(0.8 * t), s) ** 2]
  else:
    raise ValueError(f"DDIM skip={skip!r}: expected one of {DDIM_SKIPS}")
  return [i + 1 for i in sorted(set(steps), reverse=True)]


def ddim(num_steps, *, schedule, skip="uniform", append_zero=True):
  """DDIM's sub-sequence of a discrete chain's noise levels (Song et al. 2021a, App. D.2).

  σ̃_i = sqrt((1 − ᾱ_τ_i)/ᾱ_τ_i) at DDIM's steps τ (`ddim_timesteps`) of the schedule's chain,
  ᾱ_i = ∏_{j≤i}(1 − β_j) (Ho et al. 2020, Eq. 4), read in float64 from the `DiscreteChain`
  (`schedules.make("ddpm")`: T = 1000, β linear from 1e-4 to 0.02, the chain of DDIM's CIFAR-10
  model). Every level is a node of the chain, one the model was trained at. With `append_zero` a
  final step to σ = 0 follows: DDIM's last update, from x_τ_1 to x̂₀.

  `num_steps` is the paper's S, not always the number of steps taken: the quadratic sub-sequence
  repeats small steps for S ≥ 50 and each is kept once, so the grid then has fewer than
  num_steps + 1 entries and the sampler makes fewer evaluations than num_steps (S = 100: 96 steps).

  Args:
    num_steps: S.
    schedule: a `DiscreteChain` (or its config dict); T is its num_timesteps.
    skip: "uniform" or "quadratic" (`ddim_timesteps`).
    append_zero: end with σ = 0 (a final denoise) rather than at σ̃_τ_1.

  Returns:
    [len(τ) + 1] float64 σ̃ levels with append_zero, else [len(τ)].
  """
  chain = _resolve_schedule(schedule, "ddim")
  if not isinstance(chain, schedules_lib.DiscreteChain):
    raise ValueError(
        f"grid 'ddim' steps on the nodes of a discrete chain (schedule kind 'ddpm' or "
        f"'iddpm_cosine'); got {type(chain).__name__}"
    )
  abar = chain.alphas_cumprod()
  taus = np.asarray(ddim_timesteps(num_steps, skip, len(abar)))
  if not append_zero and len(taus) < 2:
    raise ValueError("grid 'ddim' with append_zero=False needs at least 2 distinct steps")
  a = abar[taus - 1]
  return _finish(np.sqrt((1.0 - a) / a), append_zero)


GRIDS: dict[str, Callable[..., np.ndarray]] = {
    "karras": karras,
    "karras_subset": karras_subset,
    "uniform_t": uniform_t,
    "uniform_logsnr": uniform_logsnr,
    "quadratic": quadratic,
    "time_uniform": time_uniform,
    "logSNR": logsnr_dpm,
    "array": array,
    "ddim": ddim,
}


def grid(name: str, num_steps: int, *, schedule, **opts) -> np.ndarray:
  """Builds a named σ grid of num_steps + 1 entries; see the module docstring.

  Args:
    name: a key of `GRIDS`.
    num_steps: solver steps (`ddim`: DDIM's S, see there).
    schedule: the model's schedule (a diffjax schedule or its config dict); every grid takes it.
      None only for grids in σ (`karras`, `array`), e.g. with an exact denoiser and no model.
    **opts: the grid's own options.

  Returns:
    [num_steps + 1] float64, strictly decreasing, ≥ 0.

  Raises:
    ValueError: unknown name (listing the known ones) or option, a grid in t or λ without a
      schedule, or bad values.
  """
  if name not in GRIDS:
    raise ValueError(f"unknown grid {name!r}; known grids: {sorted(GRIDS)}")
  fn = GRIDS[name]
  try:
    inspect.signature(fn).bind(num_steps, schedule=schedule, **opts)
  except TypeError as e:
    raise ValueError(f"bad option for grid {name!r}: {e}") from e
  return fn(num_steps, schedule=schedule, **opts)


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
    raise ValueError(
        f"sigmas must be strictly decreasing; sigmas[{k}]={s[k]} <= " f"sigmas[{k + 1}]={s[k + 1]}"
    )
