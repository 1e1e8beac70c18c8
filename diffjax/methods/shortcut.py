r"""Shortcut models (Frans et al. 2024, arXiv:2410.12557): one network for any step size d.

Frans et al. run time from noise (t = 0) to data (t = 1) and learn s(x_t, t, d) with
x_{t+d} ≈ x_t + d·s. Converted once to diffjax's t (t = 0 data, t = 1 noise, z_t = (1 − t)x + tε):
s is the negative of the average velocity u(z_t, t, r = t − d) = (z_t − z_r)/(t − r) of MeanFlow,
so the network, its second time input (t − r = d) and the few-step sampler are MeanFlow's
(`methods/meanflow.py`); only the objective differs:
- flow matching on a fraction 1 − `bootstrap_frac` of the batch: u(z_t, t, t − d_flow) → ε − x,
  with d_flow = 1/M (`flow_interval="min_step"`, default) as in the official code, whose flow
  examples carry the step-size input of the smallest step (`dt_base = log2 M`), so that the
  smallest bootstrap step below queries exactly the input flow matching trains; or d_flow = 0
  (`"zero"`, the paper's s(x_t, t, 0)), which leaves u(·, d = 1/M), the base of every bootstrap
  target, to the network's extrapolation from d = 0;
- self-consistency on the rest: u(z_t, t, t − 2d) → sg(½ u(z_t, t, t − d) + ½ u(z', t − d, t − 2d))
  with z' = z_t − d·u(z_t, t, t − d) (paper eq. 5), 2d ∈ {1, ½, …, 2/M} uniformly over the levels
  and t a uniform multiple of 2d in (0, 1] (the paper's discrete grid of M = 128 steps).
The loss is the mean squared error over all elements. As in the official code (kvfrans/
shortcut-models, `bootstrap_ema=1`, `target_update_rate=0.999`), the bootstrap targets come from an
EMA θ⁻ ← μ θ⁻ + (1 − μ) θ of the parameters (`method_state["target"]`, advanced after every
optimiser step; `bootstrap_ema=0` uses the current parameters under stop-gradient), without
dropout, and are evaluated only on the bootstrap part of the batch (two extra network calls on
`bootstrap_frac` of it; the official code's `bootstrap_every=8` is `bootstrap_frac=0.125`).

Config section: method: dict(kind="shortcut", time_scale=1000.0, min_steps=128, bootstrap_frac=0.25,
bootstrap_ema=0.999, flow_interval="min_step")
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from diffjax.methods import base
from diffjax.methods import meanflow

KEYS = (
    "kind",
    "time_scale",
    "min_steps",
    "bootstrap_frac",
    "bootstrap_ema",
    "flow_interval",
    "conditional",
)
FLOW_INTERVALS = {"min_step": 1.0, "zero": 0.0}  # d_flow in units of 1/M


def shortcut_target(u_fn, z, t, d):
  """sg(½ u(z, t, t − d) + ½ u(z − d u(z, t, t − d), t − d, t − 2d)): the 2d-step average
  velocity that two d-steps of u compose to (exact for the exact u)."""
  b = lambda v: v.reshape((-1,) + (1,) * (z.ndim - 1))
  s1 = u_fn(z, t, t - d)
  s2 = u_fn(z - b(d) * s1, t - d, t - 2 * d)
  return jax.lax.stop_gradient(0.5 * (s1 + s2))


class Shortcut(meanflow.MeanFlow):
  """MeanFlow's network and sampler with the shortcut objective (module docstring)."""

  def __init__(self, config, *, element_shape, num_classes=0):
    m = config.method
    base.check_keys("method (kind shortcut)", m, KEYS)
    self.min_steps = int(m.get("min_steps", 128))
    self.levels = int(round(math.log2(self.min_steps)))
    if self.min_steps < 2 or 2**self.levels != self.min_steps:
      raise ValueError(f"method.min_steps={self.min_steps}: must be a power of two >= 2")
    self.bootstrap_frac = float(m.get("bootstrap_frac", 0.25))
    if not 0.0 <= self.bootstrap_frac <= 1.0:
      raise ValueError(f"method.bootstrap_frac={self.bootstrap_frac}: must be in [0, 1]")
    self.bootstrap_ema = float(m.get("bootstrap_ema", 0.999))
    if not 0.0 <= self.bootstrap_ema < 1.0:
      raise ValueError(f"method.bootstrap_ema={self.bootstrap_ema}: must be in [0, 1)")
    flow = m.get("flow_interval", "min_step")
    if flow not in FLOW_INTERVALS:
      raise ValueError(f"method.flow_interval={flow!r}: expected one of {sorted(FLOW_INTERVALS)}")
    self.flow_d = FLOW_INTERVALS[flow] / self.min_steps
    mf = config.copy_and_resolve_references()
    mf.method = {"kind": "meanflow", "time_scale": m.get("time_scale", 1000.0)}
    if "conditional" in m:
      mf.method.conditional = m.conditional
    super().__init__(mf, element_shape=element_shape, num_classes=num_classes)
    self.config = config
    self.chain_samplers = {"meanflow": self.chain_sample, "shortcut": self.chain_sample}

  # -- bootstrap-target EMA θ⁻ (method_state["target"]) ------------------------------------------

  def init_state_with_params(self, params) -> dict:
    return {"target": jax.tree.map(jnp.copy, params)} if self.bootstrap_ema > 0 else {}

  def start_from(self, state, loaded):
    """Fine-tuning from `init_from`: θ⁻ starts as the loaded run's EMA, as the student does."""
    state = super().start_from(state, loaded)
    if "target" not in state.method_state:
      return state
    ms = dict(state.method_state, target=jax.tree.map(jnp.copy, loaded.ema_params))
    return state.replace(method_state=ms)

  def update_state(self, method_state, params):
    if "target" not in method_state:
      return method_state
    mu = self.bootstrap_ema
    target = jax.tree.map(
        lambda t, p: mu * t + (1.0 - mu) * jax.lax.stop_gradient(p), method_state["target"], params
    )
    return dict(method_state, target=target)

  def loss_with_state(self, params, method_state, batch: dict, rng: jax.Array):
    target = method_state.get("target", params)
    loss, metrics = self._loss(params, target, batch, rng)
    return loss, (metrics, method_state)

  def loss(self, params, batch, rng):
    """The objective with the current parameters as the bootstrap network (`bootstrap_ema=0`)."""
    return self._loss(params, params, batch, rng)

  def _loss(self, params, target_params, batch, rng):
    rng_j, rng_m, rng_t, rng_eps, rng_drop = jax.random.split(rng, 5)
    x = batch["x"].astype(jnp.float32)
    b = x.shape[0]
    n = int(round(b * self.bootstrap_frac))  # the first n examples bootstrap, the rest flow-match
    eps = jax.random.normal(rng_eps, x.shape)
    # Self-consistency part: 2d = 2^-j, t = m·2d with m ∈ {1, …, 2^j}.
    j = jax.random.randint(rng_j, (n,), 0, self.levels).astype(jnp.float32)
    two_d = jnp.exp2(-j)
    t_boot = (jnp.floor(jax.random.uniform(rng_m, (n,)) * jnp.exp2(j)) + 1.0) * two_d
    # Flow-matching part: t a uniform multiple of 1/M in (0, 1], d = d_flow (1/M or 0).
    t_fm = (jnp.floor(jax.random.uniform(rng_t, (b - n,)) * self.min_steps) + 1.0) / self.min_steps
    t = jnp.concatenate([t_boot, t_fm])
    span = jnp.concatenate([two_d, jnp.full((b - n,), self.flow_d)])
    bc = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
    z = bc(1.0 - t) * x + bc(t) * eps
    labels = self.labels(batch)
    target = eps - x
    if n:
      # No gradient reaches θ⁻: shortcut_target stops it at the targets.
      target_fn = self.u_fn(target_params, None if labels is None else labels[:n])
      boot = shortcut_target(target_fn, z[:n], t_boot, 0.5 * two_d)
      target = jnp.concatenate([boot, target[n:]])
    u_fn = self.u_fn(params, labels, train=True, rng=rng_drop)
    err = jnp.mean(jnp.square(u_fn(z, t, t - span) - target).reshape(b, -1), axis=-1)
    return jnp.mean(err), {"boot_mse": jnp.sum(err[:n]) / max(n, 1)}
