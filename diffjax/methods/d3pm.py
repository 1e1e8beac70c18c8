r"""D3PM (Austin et al. 2021, arXiv:2107.03006): discrete-time structured denoising diffusion.

T steps at t_i = i/T of the per-token process of `core.discrete` (uniform or absorbing matrix):
Q̄_i = α_i I + (1 − α_i) 1 mᵀ. With α = 1 − t (log-linear, eps = 0) the absorbing chain is
D3PM's β_i = 1/(T − i + 1) schedule, and q(x_T) is exactly the prior (the chain must end in it:
eps = 0 is required, else the absorbing prior term is infinite).

The network predicts p̃_θ(x_0 | x_t) (no mass on the mask), and (eq. 4)
    p_θ(x_{i−1} | x_i) ∝ Σ_{x̃0} q(x_{i−1}, x_i | x̃0) p̃_θ(x̃0 | x_i)   (`discrete.reverse_step_probs`).
The VLB (eq. 1) per sequence is L_T + Σ_{i=2}^T L_{i−1} + L_0 with
    L_T = KL(q(x_T|x_0) ‖ m),  L_{i−1} = E KL(q(x_{i−1}|x_i, x_0) ‖ p_θ(x_{i−1}|x_i)),
    L_0 = E −log p_θ(x_0 | x_1);
the hybrid loss (eq. 5) is L_{i−1} (i uniform in 1..T) + λ E −log p̃_θ(x_0 | x_i) (λ = 0.01 here, the
paper's text setting). `nelbo(all_steps=True)` sums every term (one x_i draw each): the exact VLB
up to the x_i expectations; False: T·L_{i−1} for one uniform i (unbiased). Sampling runs the
reverse chain on N ≤ T steps of the same formula (N = T: D3PM's ancestral sampler).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.core import discrete
from diffjax.methods import mdlm


def x0_probs(raw: jax.Array, graph) -> jax.Array:
  """p̃_θ(x_0 | x_t) [B, L, S] from raw logits (the absorbing mask gets no mass)."""
  if graph.absorbing:
    raw = jnp.where(jnp.arange(raw.shape[-1]) == graph.mask, mdlm.NEG_INF, raw)
  return jax.nn.softmax(raw, axis=-1)


def step_term(schedule, graph, p0, x0, x_t, i, num_steps: int) -> jax.Array:
  """L_{i−1} at x_i (i ≥ 1 [B]), nats per sequence [B]: KL for i ≥ 2, −log p_θ(x_0|x_1) at i = 1."""
  t, s = i / num_steps, (i - 1) / num_steps
  a_t, a_s = schedule.alpha(t)[:, None], schedule.alpha(s)[:, None]
  p = discrete.reverse_step_probs(graph, x_t, p0, a_s, a_t)
  q = discrete.reverse_step_probs(graph, x_t, jax.nn.one_hot(x0, graph.num_states), a_s, a_t)
  kl = discrete.kl_categorical(q, p)
  nll = -jnp.log(jnp.take_along_axis(p, x0[..., None], axis=-1)[..., 0])
  return jnp.sum(jnp.where((i == 1)[:, None], nll, kl), axis=-1)


def prior_kl(schedule, graph, x0) -> jax.Array:
  """L_T = KL(q(x_T | x_0) ‖ m) summed over tokens [B]."""
  one = jnp.ones(x0.shape[:1])
  q = discrete.marginal(
      graph,
      jax.nn.one_hot(x0, graph.num_states),
      schedule.alpha(one)[:, None],
      schedule.one_minus_alpha(one)[:, None],
  )
  return jnp.sum(discrete.kl_categorical(q, graph.stationary()), axis=-1)


def _draw(schedule, graph, x0, rng, i, num_steps):
  return discrete.sample_marginal(graph, rng, x0, schedule.one_minus_alpha(i / num_steps)[:, None])


def loss(p0_fn, schedule, graph, x0, rng, *, num_steps: int, hybrid_lambda: float):
  """Hybrid loss per sequence [B] (nats) and its VLB term; p0_fn(x_t, t) -> p̃_θ [B, L, S]."""
  rng_i, rng_x = jax.random.split(rng)
  i = jax.random.randint(rng_i, x0.shape[:1], 1, num_steps + 1)
  x_t = _draw(schedule, graph, x0, rng_x, i, num_steps)
  p0 = p0_fn(x_t, i / num_steps)
  vb = step_term(schedule, graph, p0, x0, x_t, i, num_steps)
  ce = -jnp.sum(jnp.log(jnp.take_along_axis(p0, x0[..., None], axis=-1)[..., 0] + 1e-30), axis=-1)
  return vb + hybrid_lambda * ce, vb


def nelbo(p0_fn, schedule, graph, x0, rng, *, num_steps: int, all_steps: bool = False):
  """The VLB in nats per sequence [B]: every term (all_steps) or T·L_{i−1} for one i, + L_T."""
  if all_steps:

    def term(i):
      ib = jnp.full(x0.shape[:1], i)
      x_t = _draw(schedule, graph, x0, jax.random.fold_in(rng, i), ib, num_steps)
      return step_term(schedule, graph, p0_fn(x_t, ib / num_steps), x0, x_t, ib, num_steps)

    total = jnp.sum(jax.lax.map(term, jnp.arange(1, num_steps + 1)), axis=0)
  else:
    rng_i, rng_x = jax.random.split(rng)
    i = jax.random.randint(rng_i, x0.shape[:1], 1, num_steps + 1)
    x_t = _draw(schedule, graph, x0, rng_x, i, num_steps)
    total = num_steps * step_term(schedule, graph, p0_fn(x_t, i / num_steps), x0, x_t, i, num_steps)
  return total + prior_kl(schedule, graph, x0)


def sample(p0_fn, schedule, graph, rng, shape, num_steps: int) -> jax.Array:
  """The reverse chain p_θ(x_s | x_t) on N uniform steps 1 → 0 from the prior; x_0 [B, L]."""
  ts = jnp.linspace(1.0, 0.0, num_steps + 1)
  rng, rng_prior = jax.random.split(rng)
  batch = jnp.ones(shape[:1])

  def step(carry, i):
    x, key = carry
    t, s = ts[i] * batch, ts[i + 1] * batch
    p = discrete.reverse_step_probs(
        graph, x, p0_fn(x, t), schedule.alpha(s)[:, None], schedule.alpha(t)[:, None]
    )
    key, sub = jax.random.split(key)
    return (discrete.sample_categorical(sub, p), key), None

  x = graph.sample_prior(rng_prior, shape)
  return jax.lax.scan(step, (x, rng), jnp.arange(num_steps))[0][0]
