"""TrainState, the optimiser and the EMA of the parameters."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from diffjax.train import posthoc_ema


@flax.struct.dataclass
class TrainState:
  """Everything a resume needs. The data position is `step` (batches are a function of (seed, step))."""

  step: jax.Array  # int32 scalar: optimiser steps taken
  params: Any
  opt_state: Any
  ema_params: Any
  rng: jax.Array  # base key; step t draws with fold_in(rng, t), so a resumed run replays it
  # Non-trained state a Method carries between steps (e.g. Kingma & Gao's adaptive noise schedule);
  # {"": 0} when it has none, so that every checkpoint has the same tree shape.
  method_state: Any = None
  # Post-hoc EMA (EDM2): one power-function EMA of the parameters per `optim.posthoc_ema.sigma_rels`
  # entry (train/posthoc_ema.py); None when there are none.
  posthoc_ema: Any = None


def learning_rate(optim) -> optax.Schedule:
  """Linear warm-up from 0 to `lr` over `warmup_steps`, then constant or cosine decay to 0.

  EDM's "lr ramp-up over 10 M images" is `warmup_steps = 10e6 / batch_size`.
  """
  warmup = max(int(optim.warmup_steps), 0)
  if optim.decay == "constant":
    after = optax.constant_schedule(optim.lr)
  elif optim.decay == "cosine":
    after = optax.cosine_decay_schedule(optim.lr, max(int(optim.get("decay_steps", 1)), 1))
  else:
    raise ValueError(f"optim.decay={optim.decay!r}: expected 'constant' or 'cosine'")
  if not warmup:
    return after
  ramp = optax.linear_schedule(0.0, optim.lr, warmup)
  return optax.join_schedules([ramp, after], [warmup])


def make_optimizer(optim) -> optax.GradientTransformation:
  """optax chain from the `optim` config section (config_lib.adam)."""
  if optim.kind not in ("adam", "adamw"):
    raise ValueError(f"optim.kind={optim.kind!r}: expected 'adam' or 'adamw'")
  parts = []
  if optim.nan_to_num:
    # EDM (training/training_loop.py) replaces NaN/Inf gradient entries by 0 before the update.
    parts.append(optax.stateless(lambda g, _: jax.tree.map(jnp.nan_to_num, g)))
  if optim.grad_clip:
    parts.append(optax.clip_by_global_norm(optim.grad_clip))
  parts.append(
      optax.adamw(
          learning_rate(optim),
          b1=optim.b1,
          b2=optim.b2,
          eps=optim.eps,
          weight_decay=optim.weight_decay,
      )
  )
  tx = optax.chain(*parts)
  # One vector for all parameters (config_lib.adam's `flatten`); absent in configs written before it.
  return optax.flatten(tx) if optim.get("flatten", False) else tx


def ema_decay(ema, step: jax.Array, batch_size: int) -> jax.Array:
  """Decay β of `ema ← β·ema + (1-β)·params` for the update made at `step` (0-based).

  constant: β = decay.
  halflife (Karras et al. 2022, training_loop.py): the EMA half-life is `halflife_images` images, ramped
  up as `min(halflife, rampup_ratio · images_seen)`, and β = 0.5^(batch_size / half-life).
  """
  if ema.kind == "constant":
    return jnp.asarray(ema.decay, jnp.float32)
  if ema.kind == "halflife":
    nimg = step.astype(jnp.float32) * batch_size  # images seen before this update, as in EDM
    halflife = jnp.float32(ema.halflife_images)
    if ema.rampup_ratio:
      halflife = jnp.minimum(halflife, nimg * ema.rampup_ratio)
    return 0.5 ** (batch_size / jnp.maximum(halflife, 1e-8))
  raise ValueError(f"optim.ema.kind={ema.kind!r}: expected 'constant' or 'halflife'")


def ema_init_weight(ema, step: int, batch_size: int) -> float:
  """The initial network's share of the EMA after `step` updates: the product of the decays β_k,
  k = 0 … step-1 (`ema_decay`), computed on the host. A short run with a long constant EMA (0.9995
  after 1000 steps: 0.61) evaluates mostly its random initialisation."""
  if step <= 0:
    return 1.0
  if ema.kind == "constant":
    return float(ema.decay) ** step
  # ema_decay's half-life formula again, in float64 on the host: its float32 product over ~10⁶
  # steps would miss the closed forms the tests hold this to.
  k = np.arange(step, dtype=np.float64)
  halflife = np.full_like(k, float(ema.halflife_images))
  if ema.rampup_ratio:
    halflife = np.minimum(halflife, k * batch_size * ema.rampup_ratio)
  with np.errstate(divide="ignore"):
    log_w = np.sum(batch_size / np.maximum(halflife, 1e-8) * np.log(0.5))
  return float(np.exp(log_w))


def ema_update(ema_params, params, decay: jax.Array):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema_params, params)


def init_state(
    params,
    tx: optax.GradientTransformation,
    rng: jax.Array,
    method_state: Any = None,
    num_posthoc_tracks: int = 0,
) -> TrainState:
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      opt_state=tx.init(params),
      ema_params=jax.tree.map(jnp.copy, params),
      rng=rng,
      method_state=method_state if method_state else {"": jnp.zeros((), jnp.int32)},
      posthoc_ema=posthoc_ema.init_tracks(params, num_posthoc_tracks)
      if num_posthoc_tracks
      else None,
  )
