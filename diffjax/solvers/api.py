"""`solve` and `nfe`: the solver registry behind one call, with input checks and NaN reporting."""

import dataclasses
import functools
import inspect
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from diffjax.solvers import adaptive as adaptive_lib
from diffjax.solvers import consistency
from diffjax.solvers import grids
from diffjax.solvers import multistep
from diffjax.solvers import ode
from diffjax.solvers import resample
from diffjax.solvers import sde


@dataclasses.dataclass(frozen=True)
class Solver:
  """A registry entry: the step function, its evaluation count, and whether it draws noise.

  Attributes:
    fn: `fn(denoiser, x, sigmas, key, **options) -> (x, nan_step)`.
    nfe: `nfe(num_steps, ends_at_zero, **options) -> int` evaluations of the denoiser.
    stochastic: `stochastic(**options) -> bool`, True when a key is needed.
    order: global order of a deterministic solver's error, including its start-up: multistep
      methods started with a first-order step (DPM-Solver++(3M), DEIS, LMS, iPNDM) are second
      order overall even though their formulas are of order 3-4; PLMS's Heun start makes it 3rd
      order, PNDM's RK4 start keeps 4. None for stochastic solvers.
  """

  fn: Callable
  nfe: Callable[..., int]
  stochastic: Callable[..., bool] = lambda **o: False
  order: int | None = None


def _per_step(k):
  """k evaluations a step; a final step to σ = 0 is one evaluation (a denoise / Euler step)."""
  return lambda n, z, **o: k * n - (k - 1) * int(z)


def _one(n, z, **o):
  return n


def _plms_nfe(n, z, **o):
  return n + (0 if (z and n == 1) else 1)


def _pndm_nfe(n, z, **o):
  k = min(3, n)
  rk = 4 * k - (3 if (z and n <= 3) else 0)
  return rk + (n - k)


def _pc_nfe(n, z, n_corrector=1, **o):
  return (1 + n_corrector) * n


def _adaptive_nfe(n, z, **o):
  raise ValueError(
      "adaptive: the number of evaluations is data-dependent; use "
      "adaptive.adaptive(..., return_stats=True)"
  )


_ALWAYS = lambda **o: True

SOLVERS: dict[str, Solver] = {
    # Deterministic.
    "euler": Solver(ode.euler, _one, order=1),
    "heun": Solver(ode.heun, _per_step(2), order=2),
    "dpm_solver_2": Solver(ode.dpm_solver_2, _per_step(2), order=2),
    "dpm_solver_3": Solver(ode.dpm_solver_3, _per_step(3), order=3),
    "dpmpp_2s": Solver(ode.dpmpp_2s, _per_step(2), order=2),
    "dpmpp_2m": Solver(ode.dpmpp_2m, _one, order=2),
    "dpmpp_3m": Solver(ode.dpmpp_3m, _one, order=2),
    "deis": Solver(multistep.deis, _one, order=2),
    "lms": Solver(multistep.lms, _one, order=2),
    "ipndm": Solver(multistep.ipndm, _one, order=2),
    "pndm": Solver(multistep.pndm, _pndm_nfe, order=4),
    "plms": Solver(multistep.plms, _plms_nfe, order=3),
    "adaptive": Solver(adaptive_lib.adaptive, _adaptive_nfe, order=5),
    # Stochastic.
    "ddpm": Solver(sde.ddpm, _one, _ALWAYS),
    "ddim": Solver(sde.ddim, _one, lambda eta=0.0, **o: eta != 0.0),
    "euler_ancestral": Solver(sde.euler_ancestral, _one, _ALWAYS),
    "euler_maruyama": Solver(sde.euler_maruyama, _one, _ALWAYS),
    "edm_stochastic": Solver(sde.edm_stochastic, _per_step(2), _ALWAYS),
    "pc": Solver(sde.pc, _pc_nfe, _ALWAYS),
    "seeds_1": Solver(sde.seeds_1, _one, _ALWAYS),
    "seeds_2": Solver(sde.seeds_2, _per_step(2), _ALWAYS),
    "seeds_3": Solver(sde.seeds_3, _per_step(3), _ALWAYS),
    "sde_dpmpp_2m": Solver(sde.sde_dpmpp_2m, _one, _ALWAYS),
    # Over a consistency function f(x, σ) (a consistency Method's denoiser), not a denoiser.
    "consistency": Solver(consistency.consistency, _one, _ALWAYS),
    "repaint": Solver(resample.repaint, lambda n, z, resample=10, **o: resample * n, _ALWAYS),
}


def _lookup(name: str) -> Solver:
  if name not in SOLVERS:
    raise ValueError(f"unknown solver {name!r}; known solvers: {sorted(SOLVERS)}")
  return SOLVERS[name]


def _check_options(name: str, fn: Callable, options: dict) -> None:
  params = inspect.signature(fn).parameters
  allowed = [p for p in params if p not in ("denoiser", "x", "sigmas", "key", "return_stats")]
  for opt in options:
    if opt not in allowed:
      raise ValueError(f"unknown option {opt!r} for solver {name!r}; options: {allowed}")


@functools.lru_cache(maxsize=8)
def _compiled(name: str, denoiser, options: tuple, with_key: bool):
  """A jitted run of one solver for one denoiser; σ grid, x and key are traced arguments, so a
  Python loop calling `solve` on same-shaped batches compiles once. Holds a reference to the
  denoiser (the 8 most recent), so pass a stable function, not a fresh closure per call."""
  fn = functools.partial(SOLVERS[name].fn, denoiser, **dict(options))
  if with_key:
    return jax.jit(lambda x, sigmas, key: fn(x, sigmas, key))
  return jax.jit(lambda x, sigmas: fn(x, sigmas, None))


def _run(name, denoiser, x, sigmas, key, options):
  traced = any(isinstance(a, jax.core.Tracer) for a in (x, sigmas, key))
  if not traced:
    try:
      compiled = _compiled(name, denoiser, tuple(sorted(options.items())), key is not None)
    except TypeError:  # unhashable denoiser or option: run without the cache
      compiled = None
    if compiled is not None:
      return compiled(x, sigmas, key) if key is not None else compiled(x, sigmas)
  return SOLVERS[name].fn(denoiser, x, sigmas, key, **options)


def nfe(name: str, num_steps: int, ends_at_zero: bool = True, **options) -> int:
  """Denoiser evaluations that `solve(name, ...)` makes on a grid of num_steps + 1 entries.

  Args:
    name: solver name.
    num_steps: steps (grid length - 1).
    ends_at_zero: whether the grid ends in 0 (true for `grid(...)` defaults); a final step to 0
      is one evaluation for every solver.
    **options: the solver's options (e.g. n_corrector for "pc").
  """
  solver = _lookup(name)
  _check_options(name, solver.fn, options)
  if num_steps < 1:
    raise ValueError(f"num_steps must be >= 1, got {num_steps}")
  return int(solver.nfe(int(num_steps), bool(ends_at_zero), **options))


def _raise_nan(nan_step, sigmas, name):
  nan_step = int(nan_step)
  if nan_step >= 0:
    s = np.asarray(sigmas)
    raise FloatingPointError(
        f"solver {name!r}: a non-finite value appeared at step {nan_step} "
        f"(sigma {s[nan_step]:.6g} -> {s[nan_step + 1]:.6g}); the denoiser returned NaN/Inf"
    )


def solve(
    name: str,
    denoiser,
    x_init,
    sigmas,
    key=None,
    *,
    return_info: bool = False,
    nan_check: str = "raise",
    **options,
):
  """Runs a named solver from sigmas[0] to sigmas[-1].

  Args:
    name: a key of `SOLVERS`.
    denoiser: `D(x [B, ...], sigma [B]) -> x0_hat [B, ...]`, σ-frame (x = x0 + σ ε).
    x_init: [B, ...] float, already scaled by sigmas[0].
    sigmas: [N + 1] strictly decreasing, ≥ 0 (only the last may be 0). Computation runs in
      x_init's dtype (float64 when jax_enable_x64 is on and x_init is float64).
    key: PRNG key, required by stochastic solvers.
    return_info: also return {"nan_step": int32 (-1 if none), "nfe": int}.
    nan_check: "raise" (FloatingPointError naming the first bad step; under an outer jit via a
      host callback), "checkify" (a `checkify.check`, for use inside `checkify.checkify`) or
      "none" (report only through `return_info`).
    **options: solver options (see each solver's docstring).

  Returns:
    x [B, ...] at sigmas[-1], or (x, info) with return_info.

  Raises:
    ValueError: unknown solver or option, bad sigmas, missing key, non-float x_init.
    FloatingPointError: the samples became non-finite (nan_check="raise").
  """
  solver = _lookup(name)
  _check_options(name, solver.fn, options)
  if nan_check not in ("raise", "checkify", "none"):
    raise ValueError(f"nan_check must be 'raise', 'checkify' or 'none', got {nan_check!r}")
  grids.check_sigmas(sigmas)
  x = jnp.asarray(x_init)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x_init must be floating point, got {x.dtype}")
  if x.ndim < 1:
    raise ValueError("x_init must have a leading batch axis")
  sigmas = jnp.asarray(sigmas, dtype=x.dtype)
  if solver.stochastic(**options) and key is None:
    raise ValueError(f"solver {name!r} is stochastic and needs key=")
  x, nan_step = _run(name, denoiser, x, sigmas, key, options)

  if nan_check != "none":
    if isinstance(nan_step, jax.core.Tracer):
      if nan_check == "checkify":
        checkify.check(
            nan_step < 0, f"solver {name!r}: non-finite value at step {{step}}", step=nan_step
        )
      else:
        jax.debug.callback(_raise_nan, nan_step, sigmas, name)
    else:
      _raise_nan(nan_step, sigmas, name)
  if return_info:
    num_steps = sigmas.shape[0] - 1
    count = None
    if name != "adaptive":
      ends_at_zero = (not isinstance(sigmas, jax.core.Tracer)) and float(sigmas[-1]) == 0.0
      count = solver.nfe(num_steps, ends_at_zero, **options)
    return x, {"nan_step": nan_step, "nfe": count}
  return x
