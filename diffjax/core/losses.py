r"""The unified diffusion loss of Kingma & Gao (2023, eq. 5): any parameterisation in, any
weighting out,

  per-example loss = ½ · w(λ)/p(λ) · ‖ε - ε̂‖²,   λ = λ(t), t ~ t_sampler, z = α x + σ ε.

‖ε - ε̂‖² is evaluated as b²‖raw - raw_target‖² with b = param.eps_scale (exact, since ε̂ is
affine in the raw output): the regression each paper writes, without dividing by σ → 0.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from diffjax.core import parameterization as param_lib

Array = jax.Array


def noisy(x: Array, eps: Array, alpha: Array, sigma: Array) -> Array:
  """z = α x + σ ε, [B, ...]."""
  return param_lib.bcast(alpha, x) * x + param_lib.bcast(sigma, x) * eps


def weighted_loss(
    raw_fn: Callable[[Array, Array], Array],
    x: Array,
    rng: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    weight_fn: Callable[[Array], Array],
    t_sampler: Callable[..., tuple[Array, Array]],
    eps: Array | None = None,
) -> tuple[Array, dict]:
  """½ w(λ)/p(λ) ‖ε - ε̂‖² per example (Kingma & Gao 2023, eq. 5).

  Args:
    raw_fn: the network, raw_fn(z_in [B, ...], noise_cond [B]) -> raw [B, ...] (x's shape).
    x: data [B, ...], float.
    rng: key for t and ε.
    schedule, param, weight_fn, t_sampler: the four choices (see `schedules`,
      `parameterization`, `weighting`).
    eps: optional noise [B, ...] coupled to x (reflow / minibatch-OT pairs); None draws fresh
      ε ~ N(0, I) from rng.

  Returns:
    (loss [B], aux) with aux arrays [B]: "t", "logsnr", "weight" (= w/p), "eps_mse"
    (‖ε - ε̂‖² summed over dims), "integrand" (½ w ‖ε - ε̂‖², what `weighting.Adaptive.update`
    tracks).

  Raises:
    ValueError: if raw_fn's output shape, or eps's shape, differs from x's.
  """
  batch = x.shape[0]
  rng_t, rng_eps = jax.random.split(rng)
  t, p_lam = t_sampler(rng_t, batch, schedule)
  lam = schedule.logsnr(t)
  alpha, sigma = schedule.alpha_sigma(t)
  if eps is None:
    eps = jax.random.normal(rng_eps, x.shape, jnp.float32)
  elif eps.shape != x.shape:
    raise ValueError(f"eps shape {eps.shape} must equal x's shape {x.shape}.")
  z = noisy(x, eps, alpha, sigma)
  raw = raw_fn(*param.net_inputs(z, t, alpha, sigma))
  if raw.shape != x.shape:
    raise ValueError(f"raw_fn output shape {raw.shape} must equal x's shape {x.shape}.")
  target = param.raw_target(x, eps, alpha, sigma)
  axes = tuple(range(1, x.ndim))
  eps_mse = jnp.square(param.eps_scale(alpha, sigma)) * jnp.sum(
      jnp.square(raw.astype(jnp.float32) - target), axis=axes
  )
  w = weight_fn(lam)
  # A t-sampler can draw an end point where both w and p vanish (t = 0 exactly on a flow schedule,
  # λ = +∞: probability 2^-23 per float32 draw, so it does happen in long runs). That point has
  # measure zero; weight it 0 instead of letting 0/0 turn the whole batch's loss into NaN.
  ok = p_lam > 0
  ratio = jnp.where(ok, w / jnp.where(ok, p_lam, 1.0), 0.0)
  loss = 0.5 * ratio * eps_mse
  aux = {"t": t, "logsnr": lam, "weight": ratio, "eps_mse": eps_mse, "integrand": 0.5 * w * eps_mse}
  return loss, aux
