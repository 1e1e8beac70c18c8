"""The one loop every fixed-grid solver runs: a `lax.scan` over σ pairs that records NaNs.

A solver supplies a step `step(x, carry, i, sigma, sigma_next, key_i) -> (x, carry)`; `run_steps`
scans it over the grid and returns the first step index whose output was not finite (-1 if none),
so `solve` can report a failing denoiser instead of silently returning NaN samples.
"""

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]


def call_denoiser(denoiser: Denoiser, x: jax.Array, sigma: jax.Array) -> jax.Array:
  """D(x, σ) with σ broadcast to the per-example shape [B] in x's dtype.

  Args:
    denoiser: σ-frame denoiser `D(x [B, ...], sigma [B]) -> x0_hat [B, ...]`.
    x: [B, ...] noisy input `x0 + σ ε`.
    sigma: scalar noise level.

  Returns:
    [B, ...] denoised estimate, cast to x's dtype.
  """
  sigma_b = jnp.full((x.shape[0],), sigma, dtype=x.dtype)
  out = denoiser(x, sigma_b)
  chex.assert_equal_shape([out, x])
  return out.astype(x.dtype)


def eps_from(x: jax.Array, x0_hat: jax.Array, sigma: jax.Array) -> jax.Array:
  """ε̂ = (x - D)/σ, the PF-ODE slope dx/dσ in the σ-frame (Karras et al. 2022, Eq. 3)."""
  return (x - x0_hat) / sigma


def run_steps(
    step: Callable[..., tuple[jax.Array, Any]],
    x: jax.Array,
    sigmas: jax.Array,
    carry: Any = None,
    key: jax.Array | None = None,
) -> tuple[jax.Array, Any, jax.Array]:
  """Scans `step` over consecutive σ pairs.

  Args:
    step: `step(x, carry, i, sigma, sigma_next, key_i) -> (x, carry)`; `key_i` is
      `fold_in(key, i)` (None for deterministic solvers), so noise is a pure function of the step.
    x: [B, ...] state at sigmas[0].
    sigmas: [N + 1] strictly decreasing grid.
    carry: solver-specific PyTree (multistep history), or None.
    key: PRNG key for stochastic solvers.

  Returns:
    (x at sigmas[-1], final carry, first step index with a non-finite output or -1), the last
    as an int32 scalar.
  """
  num_steps = sigmas.shape[0] - 1

  def body(state, inputs):
    x, carry, nan_step = state
    i, sigma, sigma_next = inputs
    key_i = None if key is None else jax.random.fold_in(key, i)
    x, carry = step(x, carry, i, sigma, sigma_next, key_i)
    bad = jnp.logical_not(jnp.all(jnp.isfinite(x)))
    nan_step = jnp.where((nan_step < 0) & bad, i, nan_step)
    return (x, carry, nan_step), None

  init = (x, carry, jnp.int32(-1))
  steps = jnp.arange(num_steps, dtype=jnp.int32)
  (x, carry, nan_step), _ = jax.lax.scan(body, init, (steps, sigmas[:-1], sigmas[1:]))
  return x, carry, nan_step


def if_final(sigma_next: jax.Array, final: Callable[[], Any], regular: Callable[[], Any]) -> Any:
  """`final()` when σ_next = 0 (the last step of a grid ending in 0), else `regular()`.

  A `lax.cond`, so only one branch runs: the σ_next = 0 branch avoids 1/σ_next and log σ_next.
  """
  return jax.lax.cond(sigma_next == 0, final, regular)
