r"""DSBM: Iterative Markovian Fitting with forward and backward bridge matching (Shi et al. 2023,
arXiv:2303.16852, Alg. 1 "DSBM"; the same IMF as Peluchetti 2023).

The Schrödinger bridge from π₀ (t = 0, the batch's `x`) to π₁ (t = 1, `y`) for the reference
σ·W. Shi et al.'s time runs the same way as diffjax's (π₀ at t = 0), so nothing is converted.
Given a coupling of (x, y), the Brownian bridge z_t = (1 − t)x + t y + σ·sqrt(t(1 − t))·ξ is
Markov-projected by two networks (bridge matching, their eqs. 8–9):
  forward  v_f(t, z) ≈ E[(y − z_t)/(1 − t) | z_t = z]:  dZ = v_f dt + σ dW from π₀ at t = 0,
  backward v_b(t, z) ≈ E[(x − z_t)/t | z_t = z]:        the same SDE run from π₁ at t = 1 to 0.
IMF alternates the two projections, each on the coupling the other's SDE generates (Alg. 1):
  iteration 0: backward net on the initial coupling: π₀ ⊗ π₁ (`first_coupling="ind"`, DSBM-IMF) or
    the reference's (x, x + σ·W₁) (`"ref"`, DSBM-IPF: its first step is IPF's);
  iteration k odd: forward net on (x̂, y) with x̂ from the backward SDE started at y ~ π₁;
  iteration k ≥ 2 even: backward net on (x, ŷ) with ŷ from the forward SDE started at x ~ π₀.
Each iteration is `method.steps_per_iteration` optimiser steps; the coupling is simulated on the
fly for every batch (Euler–Maruyama, `method.num_sim_steps` steps, noise-free last step) by a
frozen copy of the parameters taken at the iteration's first step (`method_state`). The
converged forward/backward processes are the SB: their coupling is the entropic OT plan with
ε = 2σ² (Gaussian closed form: `core/gaussian_sb.py`). The idle network gets zero gradients in
an iteration (Adam's momentum still moves it a little; it is retrained before it is used again).

Config section:
  method: dict(kind="dsbm", sigma=1.0, steps_per_iteration=..., first_coupling="ind" | "ref",
               num_sim_steps=20, t_epsilon=1e-3, noise_cond_scale=1.0)
  sample.solver: "dsbm_backward" (from `noise`, default N(0, I), to π₀) or "dsbm_forward"
    (from `noise` as π₀ points to π₁); sample.num_steps Euler–Maruyama steps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from diffjax.methods import base

KEYS = (
    "kind",
    "sigma",
    "steps_per_iteration",
    "first_coupling",
    "num_sim_steps",
    "t_epsilon",
    "noise_cond_scale",
    "conditional",
)
FIRST_COUPLINGS = ("ind", "ref")


def _b(s, like):
  return jnp.reshape(s, s.shape + (1,) * (like.ndim - s.ndim))


class DSBM(base.Method):
  """Forward and backward bridge-matching networks, trained by IMF (module docstring)."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    mcfg = config.method
    base.check_keys("method", mcfg, KEYS)
    self.setup_common(config, element_shape, num_classes)
    if self.conditional:
      raise ValueError("method.kind='dsbm' is unconditional: set method.conditional=False")
    self.sigma = float(mcfg.get("sigma", 1.0))
    if not self.sigma > 0:
      raise ValueError(f"method.sigma={self.sigma} must be > 0")
    self.steps_per_iteration = int(mcfg.get("steps_per_iteration", 0))
    if self.steps_per_iteration < 1:
      raise ValueError(f"method.steps_per_iteration={self.steps_per_iteration} must be >= 1")
    self.first_coupling = mcfg.get("first_coupling", "ind")
    if self.first_coupling not in FIRST_COUPLINGS:
      raise ValueError(
          f"method.first_coupling={self.first_coupling!r}: expected one of {FIRST_COUPLINGS}"
      )
    self.num_sim_steps = int(mcfg.get("num_sim_steps", 20))
    self.t_epsilon = float(mcfg.get("t_epsilon", 1e-3))
    if not 0.0 <= self.t_epsilon < 0.5:
      raise ValueError(f"method.t_epsilon={self.t_epsilon} must lie in [0, 0.5)")
    self.noise_cond_scale = float(mcfg.get("noise_cond_scale", 1.0))
    self.chain_samplers = {
        "dsbm_backward": functools.partial(self._sampler, "backward"),
        "dsbm_forward": functools.partial(self._sampler, "forward"),
    }

  # -- networks ------------------------------------------------------------------------------------

  def init(self, rng: jax.Array, example_batch: dict):
    rng_f, rng_b = jax.random.split(rng)
    return {
        "forward": self.init_network(rng_f, example_batch),
        "backward": self.init_network(rng_b, example_batch),
    }

  def drift(self, params, direction: str):
    """`v(z, t [B])` of the forward or backward network."""
    net = self.network_fn(params[direction])
    return lambda z, t: net(z, self.noise_cond_scale * t).astype(jnp.float32)

  def simulate(self, params, direction: str, start, rng, num_steps: int | None = None):
    """Euler–Maruyama of dZ = v dt + σ dW from `start` (π₀ points for "forward", t: 0 → 1; π₁
    points for "backward", t: 1 → 0), num_steps steps, no noise on the last one."""
    n = int(num_steps or self.num_sim_steps)
    ts = jnp.linspace(0.0, 1.0, n + 1)
    if direction == "backward":
      ts = ts[::-1]
    v = self.drift(params, direction)
    batch = start.shape[0]

    def step(z, inputs):
      t, t_next, key = inputs
      h = jnp.abs(t_next - t)
      noise = jax.random.normal(key, z.shape, jnp.float32)
      last = (t_next == 0.0) | (t_next == 1.0)
      z = (
          z
          + h * v(z, jnp.full((batch,), t))
          + jnp.where(last, 0.0, self.sigma * jnp.sqrt(h)) * noise
      )
      return z, None

    keys = jax.random.split(rng, n)
    out = jax.lax.scan(step, start.astype(jnp.float32), (ts[:-1], ts[1:], keys))[0]
    return jax.lax.stop_gradient(out)

  # -- training ------------------------------------------------------------------------------------

  def init_state(self) -> dict:
    """{"step": the IMF step counter, "frozen": the parameters at the iteration's first step}."""
    example = {"x": jnp.zeros((1,) + self.element_shape, jnp.float32)}
    shapes = jax.eval_shape(self.init, jax.random.PRNGKey(0), example)
    frozen = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return {"step": jnp.zeros((), jnp.int32), "frozen": frozen}

  def iteration(self, step):
    """The IMF iteration of optimiser step `step` (0-based)."""
    return step // self.steps_per_iteration

  def coupling(self, frozen, batch: dict, k, rng):
    """(x, y) pairs of IMF iteration k (module docstring)."""
    x, y = batch["x"], batch["y"]
    rng_ref, rng_sim = jax.random.split(rng)

    def first(_):
      if self.first_coupling == "ref":
        return x, x + self.sigma * jax.random.normal(rng_ref, x.shape, jnp.float32)
      return x, y

    def from_backward(_):
      return self.simulate(frozen, "backward", y, rng_sim), y

    def from_forward(_):
      return x, self.simulate(frozen, "forward", x, rng_sim)

    branch = jnp.where(k == 0, 0, jnp.where(k % 2 == 1, 1, 2))
    return jax.lax.switch(branch, (first, from_backward, from_forward), None)

  def bridge_loss(self, params, direction: str, x, y, rng):
    """Bridge matching (Shi et al. eqs. 8–9): per-example ‖v(t, z_t) − target‖², mean [B]."""
    rng_t, rng_xi = jax.random.split(rng)
    eps = self.t_epsilon
    t = eps + (1.0 - 2.0 * eps) * jax.random.uniform(rng_t, x.shape[:1])
    xi = jax.random.normal(rng_xi, x.shape, jnp.float32)
    tb = _b(t, x)
    z = (1.0 - tb) * x + tb * y + self.sigma * jnp.sqrt(tb * (1.0 - tb)) * xi
    target = (y - z) / (1.0 - tb) if direction == "forward" else (x - z) / tb
    err = jnp.square(self.drift(params, direction)(z, t) - target)
    return jnp.mean(jnp.sum(err, axis=tuple(range(1, x.ndim))))

  def loss_with_state(self, params, method_state, batch: dict, rng: jax.Array):
    if "y" not in batch:
      raise ValueError("method.kind='dsbm' needs batches {'x', 'y'} (data.name='unpaired')")
    step = method_state["step"]
    k = self.iteration(step)
    new_iteration = step % self.steps_per_iteration == 0
    frozen = jax.tree.map(
        lambda p, f: jnp.where(new_iteration, jax.lax.stop_gradient(p), f),
        params,
        method_state["frozen"],
    )
    rng_pair, rng_loss = jax.random.split(rng)
    x, y = self.coupling(frozen, batch, k, rng_pair)
    train_forward = k % 2 == 1
    loss = jax.lax.cond(
        train_forward,
        lambda p: self.bridge_loss(p, "forward", x, y, rng_loss),
        lambda p: self.bridge_loss(p, "backward", x, y, rng_loss),
        params,
    )
    metrics = {"imf_iteration": k.astype(jnp.float32), "bridge_mse": loss}
    return loss, (metrics, {"step": step + 1, "frozen": frozen})

  def loss(self, params, batch, rng):
    raise ValueError("method.kind='dsbm' keeps IMF state between steps: train with loss_with_state")

  # -- sampling ------------------------------------------------------------------------------------

  def _sampler(self, direction, params, rng, num, settings, *, label=None, noise=None):
    del label
    base.check_keys(f"sample.solver_kwargs of dsbm_{direction}", settings["solver_kwargs"], ())
    rng_init, rng_sim = jax.random.split(rng)
    if noise is None:
      noise = jax.random.normal(rng_init, (num,) + self.element_shape, jnp.float32)
    return _simulate(
        self, params, direction, jnp.asarray(noise), rng_sim, int(settings["num_steps"])
    )


@functools.partial(jax.jit, static_argnames=("method", "direction", "num_steps"))
def _simulate(method, params, direction, start, rng, num_steps):
  return method.simulate(params, direction, start, rng, num_steps)
