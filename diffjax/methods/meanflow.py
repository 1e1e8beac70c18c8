r"""MeanFlow (Geng et al. 2025, arXiv:2505.13447): one-step generation from the average velocity.

On the straight path z_t = (1 − t) x + t ε (t = 0 data, t = 1 noise: the paper's and diffjax's
convention, no conversion) with velocity v = ε − x, the average velocity over [r, t] is
u(z_t, r, t) = (z_t − z_r)/(t − r), and it satisfies the MeanFlow identity (paper eq. 6)
  u(z_t, r, t) = v(z_t, t) − (t − r) d/dt u(z_t, r, t),   d/dt u = v ∂_z u + ∂_t u.
Training regresses u_θ on sg(v − clip(t − r, 0, 1)·d/dt u_θ), the total derivative a `jax.jvp` of
u_θ with tangents (v, 1, 0) for (z, t, r) (official JAX code; attention stays plain XLA einsum,
models/layers.py, so the network is forward-differentiable), with the adaptive weight
sg(1/(‖Δ‖² + c)^p) (eq. 9/10). t, r: two logit-normal draws sorted so that t ≥ r, and r = t for
a fraction 1 − `ratio` of the batch (plain flow matching). The network sees (scale·t,
scale·(t − r)) (`interval_cond`, models/unet.py and mlp.py).

Sampling (`sample.solver="meanflow"`, a chain sampler): z_{t_{i+1}} = z_{t_i} − (t_i − t_{i+1})
u_θ(z_{t_i}, t_{i+1}, t_i) on `num_steps` uniform steps from t = 1 (one step: z_0 = ε − u(ε, 0, 1)).
The σ-frame `denoiser` is the instantaneous velocity u(z, t, t), for the ODE solvers.

Config section:
  method: dict(kind="meanflow", time_scale=1000.0, p_mean=-0.4, p_std=1.0, ratio=0.25,
               norm_p=1.0, norm_eps=1e-3, conditional=False); schedule: rectified_flow (σ_min 0).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from diffjax.core import schedules
from diffjax.methods import base

KEYS = ("kind", "time_scale", "p_mean", "p_std", "ratio", "norm_p", "norm_eps", "conditional")


def _b(v, like):
  return v.reshape((-1,) + (1,) * (like.ndim - 1))


def meanflow_target(u_fn, z, t, r, v):
  """(u_θ(z, t, r), sg(v − clip(t − r, 0, 1) d/dt u_θ)) with d/dt u = jvp along (v, 1, 0)."""
  u, dudt = jax.jvp(u_fn, (z, t, r), (v, jnp.ones_like(t), jnp.zeros_like(r)))
  return u, jax.lax.stop_gradient(v - _b(jnp.clip(t - r, 0.0, 1.0), z) * dudt)


def adaptive_loss(u, target, norm_p: float, norm_eps: float):
  """Per-example sg(1/(‖Δ‖² + c)^p)·‖Δ‖² (MeanFlow eq. 9–10; p = 0: plain squared L2)."""
  err = jnp.sum(jnp.square(u - target).reshape(u.shape[0], -1), axis=-1)
  return jax.lax.stop_gradient(1.0 / (err + norm_eps) ** norm_p) * err


class MeanFlow(base.Method):
  """Average-velocity network u_θ(z, t, r) trained with the MeanFlow identity."""

  def __init__(self, config, *, element_shape, num_classes=0):
    self.setup_common(config, element_shape, num_classes)
    m = config.method
    base.check_keys("method (kind meanflow)", m, KEYS)
    self.o = dict(time_scale=1000.0, p_mean=-0.4, p_std=1.0, ratio=0.25, norm_p=1.0, norm_eps=1e-3)
    self.o.update({k: float(m[k]) for k in self.o if k in m})
    if not 0.0 <= self.o["ratio"] <= 1.0:
      raise ValueError(f"method.ratio={self.o['ratio']}: must be in [0, 1]")
    self._schedule = schedules.make(**config.schedule)
    if not isinstance(self._schedule, schedules.Flow) or self._schedule.sigma_min != 0.0:
      raise ValueError("method.kind='meanflow' needs schedule kind 'rectified_flow', sigma_min=0")
    self.chain_samplers = {"meanflow": self.chain_sample}

  def u_fn(self, params, label=None, *, train=False, rng=None):
    """u_θ(z [B, ...], t [B], r [B]) -> [B, ...] float32."""
    scale = self.o["time_scale"]

    def u(z, t, r):
      net = self.network_fn(params, label, train=train, rng=rng, interval_cond=scale * (t - r))
      return net(z, scale * t).astype(jnp.float32)

    return u

  def init(self, rng, example_batch):
    x = jnp.asarray(example_batch["x"])
    ones = jnp.ones(x.shape[:1], jnp.float32)
    return base.init_params(
        self.model, rng, x, ones, self.labels(example_batch), interval_cond=ones
    )

  def sample_times(self, rng, batch: int):
    """(t, r) [B]: sorted logit-normal pairs, r = t for a fraction 1 − ratio."""
    rng_n, rng_m = jax.random.split(rng)
    n = jax.nn.sigmoid(self.o["p_mean"] + self.o["p_std"] * jax.random.normal(rng_n, (2, batch)))
    t, r = jnp.max(n, axis=0), jnp.min(n, axis=0)
    keep = jax.random.uniform(rng_m, (batch,)) < self.o["ratio"]
    return t, jnp.where(keep, r, t)

  def loss(self, params, batch, rng):
    rng_t, rng_eps, rng_drop = jax.random.split(rng, 3)
    x = batch["x"].astype(jnp.float32)
    t, r = self.sample_times(rng_t, x.shape[0])
    eps = jax.random.normal(rng_eps, x.shape)
    z = _b(1.0 - t, x) * x + _b(t, x) * eps
    u_fn = self.u_fn(params, self.labels(batch), train=True, rng=rng_drop)
    u, target = meanflow_target(u_fn, z, t, r, eps - x)
    per_example = adaptive_loss(u, target, self.o["norm_p"], self.o["norm_eps"])
    return jnp.mean(per_example), {"frac_r_lt_t": jnp.mean((r < t).astype(jnp.float32))}

  def schedule(self, params=None):
    del params
    return self._schedule

  def denoiser(self, params, label=None):
    """σ-frame D(x̃, σ̃) of the instantaneous velocity v = u(z, t, t): x̂ = z − t v, with
    t = σ̃/(1 + σ̃) and z = (1 − t) x̃."""
    u = self.u_fn(params, label)

    def den(x, sigma):
      t = sigma / (1.0 + sigma)
      z = _b(1.0 - t, x) * x
      return (z - _b(t, x) * u(z, t, t)).astype(x.dtype)

    return den

  def chain_sample(self, params, rng, num, settings, *, label=None, noise=None):
    """MeanFlow's few-step sampler (module docstring): `settings["num_steps"]` network calls."""
    if noise is None:
      noise = jax.random.normal(rng, (num,) + self.element_shape)
    return _chain(self, params, noise, label, int(settings["num_steps"]))


@functools.partial(jax.jit, static_argnames=("method", "num_steps"))
def _chain(method, params, z, label, num_steps):
  u = method.u_fn(params, label)
  ts = jnp.linspace(1.0, 0.0, num_steps + 1)
  full = lambda v: jnp.full(z.shape[:1], v, jnp.float32)

  def step(z, pair):
    t, r = pair
    return z - (t - r) * u(z, full(t), full(r)), None

  return jax.lax.scan(step, z, (ts[:-1], ts[1:]))[0]
