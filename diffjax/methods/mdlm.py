r"""MDLM (Sahoo et al. 2024, arXiv:2406.07524): masked diffusion with the SUBS parameterisation.

Absorbing graph only (`core.discrete.Absorbing`): x_t keeps each token with probability α_t and
masks it otherwise. The model is x̂_θ(x_t) = p_θ(x_0 | x_t) per position with SUBS (§3.2.3):
zero mass on the mask ("mask logit −∞", MDLM's `neg_infinity` = −1e6) and unmasked tokens copied.
The Rao-Blackwellised continuous-time NELBO (eq. 10/11) per sequence is

    ∫_0^1 −α'_t/(1 − α_t) Σ_{l: x_t^l = mask} −log p_θ(x_0^l | x_t) dt,

(MDLM's `dsigma / expm1(sigma)` weight; 1/t for the log-linear schedule), estimated with t ~
U[t_min, 1], antithetically over the batch (MDLM `_sample_t`, `sampling_eps` = t_min = 1e-3; the
estimate carries the factor 1 − t_min of U[t_min, 1]'s density, MDLM's does not; the omitted
[0, t_min) piece is O(t_min)). With the exact p(x_0^l | x_t) it equals −log p(x_0) exactly for
every x_0 (any-order autoregression; tests/methods/test_discrete_exact.py).

Sampler (`ddpm_cache`, MDLM §4.1): on the grid 1 = t_0 > … > t_N = 0, a masked token is revealed
as y with probability p_θ(y | x_t)(α_s − α_t)/(1 − α_t) and stays masked with (1 − α_s)/(1 − α_t);
unmasked tokens are copied. Without time conditioning p_θ depends on x_t only, so it is reused
while no token changed (the cache): the same law, fewer network calls.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.core import discrete

NEG_INF = -1e6  # MDLM's `neg_infinity`


def subs(raw: jax.Array, x_t: jax.Array, graph) -> jax.Array:
  """SUBS log-probabilities log p_θ(x_0 | x_t) [B, L, V+1] from raw logits [B, L, V+1]."""
  mask = graph.mask
  is_mask_col = jnp.arange(raw.shape[-1]) == mask
  logp = jax.nn.log_softmax(jnp.where(is_mask_col, NEG_INF, raw), axis=-1)
  copy = jnp.where(jax.nn.one_hot(x_t, raw.shape[-1]) > 0, 0.0, NEG_INF)
  return jnp.where((x_t == mask)[..., None], logp, copy)


def integrand(schedule, graph, logp: jax.Array, x0: jax.Array, x_t: jax.Array, t) -> jax.Array:
  """The NELBO's integrand at t, nats per sequence [B]: −α'/(1−α) Σ_{masked l} −log p(x_0^l|x_t)."""
  ll = jnp.take_along_axis(logp, x0[..., None], axis=-1)[..., 0]
  masked = (x_t == graph.mask).astype(jnp.float32)
  return discrete.jump_rate(schedule, t) * jnp.sum(-ll * masked, axis=-1)


def nelbo(logp_fn, schedule, graph, x0, rng, *, t_min: float = 1e-3, antithetic: bool = True):
  """One-sample estimate of the NELBO, nats per sequence [B]; logp_fn(x_t, t) -> SUBS log p."""
  rng_t, rng_x = jax.random.split(rng)
  t = discrete.sample_t(rng_t, x0.shape[0], t_min, antithetic)
  x_t = discrete.sample_marginal(graph, rng_x, x0, schedule.one_minus_alpha(t)[:, None])
  return (1.0 - t_min) * integrand(schedule, graph, logp_fn(x_t, t), x0, x_t, t)


def step_probs(schedule, graph, logp: jax.Array, x: jax.Array, t, s) -> jax.Array:
  """Ancestral step probabilities q(x_s | x_t) [B, L, V+1] (normalised; unmasked rows one-hot)."""
  om_t, om_s = schedule.one_minus_alpha(t), schedule.one_minus_alpha(s)
  p = jnp.exp(logp) * (om_t - om_s) / om_t  # reveal as y (α_s − α_t = (1−α_t) − (1−α_s))
  p = jnp.where(jnp.arange(p.shape[-1]) == graph.mask, om_s / om_t, p)
  return jnp.where((x == graph.mask)[..., None], p, jax.nn.one_hot(x, p.shape[-1]))


def sample(logp_fn, schedule, graph, rng, shape, num_steps: int, *, cache: bool):
  """MDLM's ancestral sampler from all-mask over N uniform steps 1 → 0; returns x_0 [B, L].

  logp_fn(x, t) -> log p_θ(x_0 | x) [B, L, V+1] (SUBS). `cache`: reuse it while x is unchanged
  (only exact when logp_fn ignores t)."""
  ts = jnp.linspace(1.0, 0.0, num_steps + 1)
  x = graph.sample_prior(None, shape)
  logp = jnp.zeros(shape + (graph.num_states,), jnp.float32)

  def step(carry, i):
    x, logp, valid, key = carry
    t = jnp.full(shape[:1], ts[i])
    s = jnp.full(shape[:1], ts[i + 1])
    if cache:
      logp = jax.lax.cond(valid, lambda: logp, lambda: logp_fn(x, t))
    else:
      logp = logp_fn(x, t)
    key, sub = jax.random.split(key)
    probs = step_probs(schedule, graph, logp, x, t[:, None, None], s[:, None, None])
    new = discrete.sample_categorical(sub, probs)
    return (new, logp, jnp.all(new == x), key), None

  carry = (x, logp, jnp.array(False), rng)
  return jax.lax.scan(step, carry, jnp.arange(num_steps))[0][0]
