r"""SEDD (Lou et al. 2023, arXiv:2310.16834): score entropy discrete diffusion.

The model gives log concrete scores log s_θ(x_t)_y ≈ log p_t(x_t with token l set to y)/p_t(x_t)
[B, L, S]; the entry at the current token is 0 (SEDD's final `scatter`), and on the absorbing graph
the raw output is shifted by −log expm1(σ̄) − log(S − 1) (`scale_by_sigma`).

Denoising score entropy (eq. 11), per token and time, for the rates Q[x, y] into x = x_t:

    Σ_{y ≠ x} Q[x, y] (s_y − r_y log s_y + K(r_y)),   r_y = q(y | x_0)/q(x | x_0),  K(a) = a log a − a,

weighted by σ(t) = dσ̄/dt (the `dsigma` of `losses.py`). Its minimum over s at fixed x is attained
at the true score s* = E[r | x_t] with value E[K(r)] − K(s*) ≥ 0, and ∫_0^1 σ E[DSE] dt + KL(q(x_1|x_0)
‖ π) is the NELBO (Thm 3.6), −log p(x_0) exactly at the true score when q(x_1) = π (tests). The
absorbing prior term is infinite for a schedule with α_1 = eps > 0; as in SEDD and MDLM it is left
out (tokens still unmasked at t = 1 are treated as masked).

Samplers on the grid 1 = t_0 > … > t_N = t_end, then the `Denoiser` step t_end → 0 (mask dropped):
  euler   p(y) = δ_xy + Δt σ(t) Q[x, y] s_y  (y ≠ x), stay = 1 − Σ: on the uniform graph with a large
          step the stay probability is negative; it is clamped to 0 (SEDD's `sample_categorical`
          never picks a negative entry) and the rest renormalised.
  tweedie τ-leaping ("analytic"): p(y) ∝ [exp(−Δσ̄ Q) s]_y · exp(Δσ̄ Q)[x, y], Δσ̄ = σ̄(t) − σ̄(s),
          negative entries clamped likewise. Exact per token for the true score (Thm 4.2).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from diffjax.core import discrete


def log_score(raw: jax.Array, x_t: jax.Array, t, schedule, graph, scale_by_sigma: bool = True):
  """log s_θ [B, L, S] from raw network output [B, L, S] (t [B])."""
  if graph.absorbing and scale_by_sigma:
    esigm1 = schedule.one_minus_alpha(t) / schedule.alpha(t)  # expm1(σ̄) without cancellation
    raw = raw - jnp.log(esigm1)[:, None, None] - math.log(graph.num_states - 1)
  return jnp.where(jax.nn.one_hot(x_t, graph.num_states) > 0, 0.0, raw)


def dse(graph, log_s: jax.Array, x0: jax.Array, x_t: jax.Array, alpha, one_minus_alpha):
  """Denoising score entropy per token [B, L] (without the σ(t) weight); alpha [B, 1]."""
  q = discrete.marginal(graph, jax.nn.one_hot(x0, graph.num_states), alpha, one_minus_alpha)
  q_x = jnp.take_along_axis(q, x_t[..., None], axis=-1)
  r = q / q_x
  w = graph.in_rates(x_t)
  on = w > 0
  log_s = jnp.where(on, log_s, 0.0)  # entries off the graph never reach exp or the gradient
  k = jnp.where(r > 0, r * jnp.log(jnp.where(r > 0, r, 1.0)), 0.0) - r
  return jnp.sum(jnp.where(on, w * (jnp.exp(log_s) - r * log_s + k), 0.0), axis=-1)


def integrand(schedule, graph, log_s, x0, x_t, t) -> jax.Array:
  """σ(t) Σ_l DSE, nats per sequence [B] (t [B])."""
  a, om = schedule.alpha(t)[:, None], schedule.one_minus_alpha(t)[:, None]
  return discrete.noise_rate(schedule, t) * jnp.sum(dse(graph, log_s, x0, x_t, a, om), axis=-1)


def prior_kl(schedule, graph, x0) -> jax.Array:
  """KL(q(x_1 | x_0) ‖ π) summed over tokens [B]; 0 on the absorbing graph (see the docstring)."""
  if graph.absorbing:
    return jnp.zeros(x0.shape[:1])
  one = jnp.ones(x0.shape[:1])
  q = discrete.marginal(
      graph,
      jax.nn.one_hot(x0, graph.num_states),
      schedule.alpha(one)[:, None],
      schedule.one_minus_alpha(one)[:, None],
  )
  return jnp.sum(discrete.kl_categorical(q, graph.stationary()), axis=-1)


def nelbo(log_s_fn, schedule, graph, x0, rng, *, t_min: float = 1e-3, antithetic: bool = True):
  """One-sample NELBO estimate, nats per sequence [B]; log_s_fn(x_t, t) -> log s_θ."""
  rng_t, rng_x = jax.random.split(rng)
  t = discrete.sample_t(rng_t, x0.shape[0], t_min, antithetic)
  x_t = discrete.sample_marginal(graph, rng_x, x0, schedule.one_minus_alpha(t)[:, None])
  value = (1.0 - t_min) * integrand(schedule, graph, log_s_fn(x_t, t), x0, x_t, t)
  return value + prior_kl(schedule, graph, x0)


def euler_probs(schedule, graph, log_s, x, t, dt) -> jax.Array:
  """Euler step probabilities [B, L, S] from time t back by dt (t, dt [B]), clamped ≥ 0."""
  rates = discrete.noise_rate(schedule, t)[:, None, None] * graph.in_rates(x) * jnp.exp(log_s)
  probs = dt[:, None, None] * rates
  onehot = jax.nn.one_hot(x, graph.num_states)
  probs = probs + onehot * (1.0 - jnp.sum(probs, axis=-1, keepdims=True))
  return jnp.maximum(probs, 0.0)


def tweedie_probs(graph, log_s, x, dsigma) -> jax.Array:
  """Tweedie τ-leaping probabilities [B, L, S] for a step of total noise dsigma [B], clamped ≥ 0."""
  s = jnp.exp(log_s)
  e = jnp.expm1(dsigma)[:, None, None]  # e^{Δσ̄} − 1
  onehot = jax.nn.one_hot(x, graph.num_states)
  if graph.absorbing:
    # x = mask: p(y) = (e^Δ − 1) s_y for data y, p(mask) = 1 − (e^Δ − 1) Σ_data s; else stay.
    data = jnp.arange(graph.num_states) != graph.mask
    reveal = jnp.where(data, e * s, 0.0)
    probs = reveal + (1.0 - jnp.sum(reveal, axis=-1, keepdims=True)) * (~data)
    probs = jnp.where((x == graph.mask)[..., None], probs, onehot)
  else:
    n = graph.num_states
    stag = (1.0 + e) * s - e / n * jnp.sum(s, axis=-1, keepdims=True)  # exp(−Δσ̄ Q) s
    back = (onehot + e / n) / (1.0 + e)  # exp(Δσ̄ Q)[x, y] = e^{−Δ}δ + (1 − e^{−Δ})/n
    probs = stag * back
  return jnp.maximum(probs, 0.0)


def sample(log_s_fn, schedule, graph, rng, shape, num_steps: int, *, predictor: str, t_end=1e-5):
  """SEDD's sampler (`get_pc_sampler`, no corrector): N predictor steps from 1 to t_end, then the
  Tweedie denoising step to 0 without the mask. Returns x_0 [B, L]."""
  ts = jnp.linspace(1.0, t_end, num_steps + 1)
  rng, rng_prior = jax.random.split(rng)
  x = graph.sample_prior(rng_prior, shape)
  batch = jnp.ones(shape[:1])

  def step(carry, i):
    x, key = carry
    t, s = ts[i] * batch, ts[i + 1] * batch
    log_s = log_s_fn(x, t)
    if predictor == "euler":
      probs = euler_probs(schedule, graph, log_s, x, t, t - s)
    else:
      probs = tweedie_probs(graph, log_s, x, schedule.total_noise(t) - schedule.total_noise(s))
    key, sub = jax.random.split(key)
    return (discrete.sample_categorical(sub, probs), key), None

  x, rng = jax.lax.scan(step, (x, rng), jnp.arange(num_steps))[0]
  t = ts[-1] * batch
  probs = tweedie_probs(graph, log_s_fn(x, t), x, schedule.total_noise(t))
  if graph.absorbing:
    probs = probs.at[..., graph.mask].set(0.0)
  return discrete.sample_categorical(rng, probs)
