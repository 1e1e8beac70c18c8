r"""Discrete flow matching (Gat et al. 2024, arXiv:2407.15595) with mixture paths.

The paper's time τ runs from source (τ = 0) to data (τ = 1); diffjax's t = 1 − τ (t = 0 data). The
mixture path p_τ(x^l | x_1) = κ_τ δ_{x_1^l} + (1 − κ_τ) p_0 is the per-token process of
`core.discrete` with α_t = κ_{1−t} and the source p_0 = the mask (absorbing graph) or uniform; the
default schedule is `Polynomial` (facebookresearch/flow_matching `PolynomialConvexScheduler`),
κ_τ = τ^n, so x_1 is exactly the source at t = 1.

The model p_θ(x_1^l | x_t) is a softmax over the V data tokens. Loss: the generalised KL of
flow_matching's `MixturePathGeneralizedKL`, per token

    −κ̇/(1 − κ) [p_θ(x_t^l | x_t) − δ(x_1^l, x_t^l) + (1 − δ(x_1^l, x_t^l)) log p_θ(x_1^l | x_t)],

the KL rate between the conditional and the model jump processes, so its time integral (plus the
zero prior term) bounds −log p_θ(x_1): the NELBO. Per position its minimum over p_θ is at the true
posterior p(x_1^l | x_t), with value −κ̇/(1−κ) Σ_{y ≠ x_t^l} p(y) log p(y) (tests).

Sampler: flow_matching's `MixtureDiscreteEulerSolver` (no divergence-free term): at each step draw
x̂_1 ~ p_θ(· | x_t); every token with x̂_1^l ≠ x_t^l jumps to it with probability
1 − exp(−h κ̇/(1 − κ)); the last step returns x̂_1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.core import discrete


def log_probs(raw: jax.Array, vocab_size: int) -> jax.Array:
  """log p_θ(x_1 | x_t) [B, L, V] from raw logits [B, L, ≥ V]."""
  return jax.nn.log_softmax(raw[..., :vocab_size], axis=-1)


def integrand(schedule, logp, x1, x_t, t) -> jax.Array:
  """The generalised KL at t summed over positions, nats per sequence [B] (t [B])."""
  v = logp.shape[-1]
  p_xt = jnp.sum(jnp.exp(logp) * jax.nn.one_hot(x_t, v), axis=-1)  # 0 for the mask token
  log_p_x1 = jnp.take_along_axis(logp, x1[..., None], axis=-1)[..., 0]
  same = (x_t == x1).astype(jnp.float32)
  bracket = p_xt - same + (1.0 - same) * log_p_x1
  return -discrete.jump_rate(schedule, t) * jnp.sum(bracket, axis=-1)


def nelbo(logp_fn, schedule, graph, x1, rng, *, t_min: float = 1e-3, antithetic: bool = True):
  """One-sample NELBO estimate (the training loss), nats per sequence [B]."""
  rng_t, rng_x = jax.random.split(rng)
  t = discrete.sample_t(rng_t, x1.shape[0], t_min, antithetic)
  x_t = discrete.sample_marginal(graph, rng_x, x1, schedule.one_minus_alpha(t)[:, None])
  return (1.0 - t_min) * integrand(schedule, logp_fn(x_t, t), x1, x_t, t)


def jump_probability(schedule, t, h) -> jax.Array:
  """1 − exp(−h κ̇/(1 − κ)) at t (the solver's `mask_jump` threshold)."""
  return -jnp.expm1(-h * discrete.jump_rate(schedule, t))


def sample(logp_fn, schedule, graph, rng, shape, num_steps: int) -> jax.Array:
  """The Euler jump solver on N uniform steps, t = 1 → 0; returns x_1 [B, L]."""
  ts = jnp.linspace(1.0, 0.0, num_steps + 1)
  rng, rng_prior = jax.random.split(rng)
  batch = jnp.ones(shape[:1])

  def step(carry, i):
    x, key = carry
    t = ts[i] * batch
    key, k_x1, k_jump = jax.random.split(key, 3)
    x1 = jax.random.categorical(k_x1, logp_fn(x, t), axis=-1).astype(jnp.int32)
    p_jump = jump_probability(schedule, t, ts[i] - ts[i + 1])[:, None]
    jump = jax.random.uniform(k_jump, x.shape) < p_jump
    x = jnp.where(i == num_steps - 1, x1, jnp.where(jump, x1, x))
    return (x, key), None

  x = graph.sample_prior(rng_prior, shape)
  return jax.lax.scan(step, (x, rng), jnp.arange(num_steps))[0][0]
