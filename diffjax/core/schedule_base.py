"""Schedule protocol pieces shared by every schedule: t checks, α/σ from λ by family, the base
class, and a monotone-inverse helper. Concrete schedules live in `schedules.py`."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
FAMILIES = ("vp", "ve", "flow", "subvp")


# ------------------------------------------------------------------------------------------------
# Helpers.


def check_t(t, name: str = "t") -> None:
  """Raises ValueError naming `name` if a concrete t lies outside [0, 1] (skipped under tracing)."""
  if isinstance(t, jax.core.Tracer):
    return
  arr = np.asarray(t)
  if arr.size and (np.any(arr < 0.0) or np.any(arr > 1.0) or np.any(np.isnan(arr))):
    raise ValueError(f"{name} must lie in [0, 1]; got values in [{arr.min()}, {arr.max()}].")


def alpha_sigma_from_logsnr(lam: Array, family: str) -> tuple[Array, Array]:
  """(α, σ) from λ for a schedule family (see module docstring). lam: [B] -> ([B], [B])."""
  lam = as_float(lam)
  if family == "vp":
    return jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))
  if family == "ve":
    return jnp.ones_like(lam), jnp.exp(-0.5 * lam)
  if family == "flow":
    return jax.nn.sigmoid(0.5 * lam), jax.nn.sigmoid(-0.5 * lam)
  if family == "subvp":
    # α²/(1-α²)² = e^λ. With r = e^{-λ}: 1 - α² = 2r / (r + sqrt(r² + 4r)) (the root below 1),
    # written with sqrt(r)·sqrt(r + 4) so it neither overflows nor cancels.
    # ᾱ = 1/(the other root) = 2 / (2 + r + sqrt(r² + 4r)); both forms are cancellation-free.
    r = jnp.exp(-lam)
    root = jnp.sqrt(r) * jnp.sqrt(r + 4.0)
    sigma = jnp.where(jnp.isinf(r), 1.0, 2.0 * r / (r + root))
    return jnp.sqrt(2.0 / (2.0 + r + root)), sigma
  raise ValueError(f"family must be one of {FAMILIES}; got {family!r}.")


def bisect_decreasing(
    fn: Callable[[Array], Array], lam: Array, lo: float, hi: float, num_iters: int = 40
) -> Array:
  """Solves fn(t) = lam for t ∈ [lo, hi] with fn strictly decreasing, by bisection (pure, jittable).

  40 halvings shrink the bracket below float32 resolution on [0, 1]; values of lam outside
  [fn(hi), fn(lo)] are clamped to the end points.
  """
  lam = as_float(lam)
  a = jnp.full_like(lam, lo)
  b = jnp.full_like(lam, hi)

  def body(_, ab):
    a, b = ab
    mid = 0.5 * (a + b)
    above = fn(mid) > lam  # λ still too large: the root lies to the right
    return jnp.where(above, mid, a), jnp.where(above, b, mid)

  a, b = jax.lax.fori_loop(0, num_iters, body, (a, b))
  return 0.5 * (a + b)


# ------------------------------------------------------------------------------------------------
# Base class.


@dataclasses.dataclass(frozen=True)
class Schedule:
  """Base: subclasses define `logsnr`, `t_from_logsnr` and `family`; the rest follows."""

  family = "vp"

  def logsnr(self, t: Array) -> Array:
    raise NotImplementedError

  def t_from_logsnr(self, lam: Array) -> Array:
    raise NotImplementedError

  def alpha_sigma(self, t: Array) -> tuple[Array, Array]:
    """(α_t, σ_t), each [B] for t [B]."""
    return alpha_sigma_from_logsnr(self.logsnr(t), self.family)

  def dlogsnr_dt(self, t: Array) -> Array:
    """dλ/dt [B] (negative), by forward-mode differentiation of `logsnr`."""
    t = as_float(t)
    return jax.jvp(self.logsnr, (t,), (jnp.ones_like(t),))[1]

  @property
  def logsnr_max(self) -> float:
    """λ(0), the least noisy end point (a Python float, usable inside jit)."""
    with jax.ensure_compile_time_eval():
      return float(self.logsnr(jnp.zeros((1,), jnp.float32))[0])

  @property
  def logsnr_min(self) -> float:
    """λ(1), the noisiest end point (a Python float, usable inside jit)."""
    with jax.ensure_compile_time_eval():
      return float(self.logsnr(jnp.ones((1,), jnp.float32))[0])


def as_float(x) -> Array:
  """x as float32, or as float64 when it already is float64 (only possible with jax_enable_x64).

  Schedules never compute below float32 (DESIGN.md), and keep float64 when asked, so that solver
  grids and adapters stay float64 for parity runs (EDM samples in float64).
  """
  x = jnp.asarray(x)
  return x.astype(jnp.float64 if x.dtype == jnp.float64 else jnp.float32)


def as_t(t: Array) -> Array:
  """t as float32 (float64 if given float64), checked to lie in [0, 1] when concrete."""
  check_t(t)
  return as_float(t)
