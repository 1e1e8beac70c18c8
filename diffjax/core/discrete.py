r"""Discrete diffusion's forward process: per-token noise schedules and the two graphs.

Convention (DESIGN.md): t ∈ [0, 1], t = 0 data, t = 1 noise. Every token is corrupted on its own
by a continuous-time Markov chain whose transition from time 0 to t is

    q(x_t = j | x_0 = i) = α_t δ_ij + (1 − α_t) m_j,                      (1)

with m the graph's stationary distribution: the mask token (absorbing graph, SEDD's `Absorbing`,
MDLM, D3PM's absorbing matrix) or the uniform distribution (uniform graph, SEDD's `Uniform`, D3PM's
uniform matrix, discrete flow matching's uniform source). SEDD writes (1) as exp(σ̄(t) Q) with the
total noise σ̄ = −log α_t and the rate matrix Q = m 1ᵀ − I (Q[to, from]); MDLM writes α_t; discrete
flow matching (Gat et al. 2024, time τ = 1 − t, τ = 1 data) writes κ_τ = α_{1−τ}.

Small-σ precision: 1 − α_t is computed without cancellation (`one_minus_alpha`), and
expm1(σ̄) = (1 − α)/α from it, as SEDD's `expm1` guards do.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class LogLinear:
  """α_t = 1 − (1 − eps)·t, σ̄(t) = −log1p(−(1 − eps)·t) (SEDD `LogLinearNoise`, MDLM; eps=1e-3)."""

  eps: float = 1e-3

  def alpha(self, t):
    return 1.0 - (1.0 - self.eps) * t

  def one_minus_alpha(self, t):
    return (1.0 - self.eps) * t

  def dalpha(self, t):
    """dα/dt (< 0)."""
    return -(1.0 - self.eps) * jnp.ones_like(t)

  def total_noise(self, t):
    """σ̄(t) = −log α_t."""
    return -jnp.log1p(-(1.0 - self.eps) * t)


@dataclasses.dataclass(frozen=True)
class Polynomial:
  """α_t = (1 − t)^n: discrete flow matching's `PolynomialConvexScheduler` κ_τ = τ^n at τ = 1 − t."""

  exponent: float = 1.0

  def alpha(self, t):
    return jnp.power(1.0 - t, self.exponent)

  def one_minus_alpha(self, t):
    return -jnp.expm1(self.exponent * jnp.log1p(-t))

  def dalpha(self, t):
    return -self.exponent * jnp.power(1.0 - t, self.exponent - 1.0)

  def total_noise(self, t):
    return -self.exponent * jnp.log1p(-t)


SCHEDULES = {"loglinear": LogLinear, "polynomial": Polynomial}


def make_schedule(kind: str, **kwargs):
  """The discrete schedule `schedule.kind` names (ValueError naming the field otherwise)."""
  if kind not in SCHEDULES:
    raise ValueError(f"schedule.kind={kind!r}: discrete processes take one of {sorted(SCHEDULES)}")
  return SCHEDULES[kind](**kwargs)


def sample_t(rng, batch: int, t_min: float, antithetic: bool) -> jax.Array:
  """t ~ U[t_min, 1] [batch]; antithetic: (u/B + i/B) mod 1 for one u (MDLM `_sample_t`)."""
  u = jax.random.uniform(rng, (batch,))
  if antithetic:
    u = jnp.mod(u[:1] / batch + jnp.arange(batch) / batch, 1.0)
  return (1.0 - t_min) * u + t_min


def jump_rate(schedule, t):
  """−α'_t / (1 − α_t): the rate at which a still-noisy token is revealed (MDLM's ELBO weight
  dσ̄/expm1(σ̄), discrete flow matching's κ̇/(1 − κ))."""
  return -schedule.dalpha(t) / schedule.one_minus_alpha(t)


def noise_rate(schedule, t):
  """σ(t) = dσ̄/dt = −α'_t/α_t (SEDD's `rate_noise`, the `dsigma` weighting its loss)."""
  return -schedule.dalpha(t) / schedule.alpha(t)


@dataclasses.dataclass(frozen=True)
class Absorbing:
  """Tokens 0..V−1 jump to the mask token V (state space V + 1; SEDD `Absorbing`)."""

  vocab_size: int
  absorbing = True

  @property
  def num_states(self) -> int:
    return self.vocab_size + 1

  @property
  def mask(self) -> int:
    return self.vocab_size

  def stationary(self) -> jax.Array:
    return jax.nn.one_hot(self.mask, self.num_states)

  def sample_prior(self, rng, shape) -> jax.Array:
    del rng
    return jnp.full(shape, self.mask, jnp.int32)

  def in_rates(self, x: jax.Array) -> jax.Array:
    """Q[x, y] for y ≠ x (rates into the current state x from each y), [..., S]; 0 at y = x."""
    into_mask = (jnp.arange(self.num_states) != self.mask).astype(jnp.float32)
    return jnp.where((x == self.mask)[..., None], into_mask, 0.0)


@dataclasses.dataclass(frozen=True)
class Uniform:
  """Every token jumps to a uniformly drawn one, Q = 11ᵀ/V − I (state space V; SEDD `Uniform`)."""

  vocab_size: int
  absorbing = False

  @property
  def num_states(self) -> int:
    return self.vocab_size

  def stationary(self) -> jax.Array:
    return jnp.full((self.num_states,), 1.0 / self.num_states)

  def sample_prior(self, rng, shape) -> jax.Array:
    return jax.random.randint(rng, shape, 0, self.num_states)

  def in_rates(self, x: jax.Array) -> jax.Array:
    rates = jnp.full(x.shape + (self.num_states,), 1.0 / self.num_states)
    return jnp.where(jax.nn.one_hot(x, self.num_states) > 0, 0.0, rates)


GRAPHS = {"absorbing": Absorbing, "uniform": Uniform}


def make_graph(kind: str, vocab_size: int):
  if kind not in GRAPHS:
    raise ValueError(f"method.graph={kind!r}: expected one of {sorted(GRAPHS)}")
  return GRAPHS[kind](int(vocab_size))


def _bcast(a, ndim):
  a = jnp.asarray(a, jnp.float32)
  return a.reshape(a.shape + (1,) * (ndim - a.ndim))


def marginal(graph, x0_probs: jax.Array, alpha, one_minus_alpha) -> jax.Array:
  """q(x_t | x_0) of (1) for a distribution x0_probs [..., S] over x_0: α p + (1 − α) m."""
  a = _bcast(alpha, x0_probs.ndim)
  b = _bcast(one_minus_alpha, x0_probs.ndim)
  return a * x0_probs + b * graph.stationary()


def sample_marginal(graph, rng, x0: jax.Array, one_minus_alpha) -> jax.Array:
  """x_t ~ q(x_t | x_0) of (1) for tokens x0 [B, L] (one_minus_alpha broadcast to [B, L])."""
  rng_move, rng_to = jax.random.split(rng)
  move = jax.random.uniform(rng_move, x0.shape) < _bcast(one_minus_alpha, x0.ndim)
  return jnp.where(move, graph.sample_prior(rng_to, x0.shape), x0).astype(jnp.int32)


def reverse_step_probs(graph, x_t: jax.Array, x0_probs: jax.Array, alpha_s, alpha_t) -> jax.Array:
  """Σ_{x0} q(x_s, x_t | x0) p(x0) normalised over x_s, [..., S] (0 ≤ t_s < t): the posterior
  q(x_s | x_t, x0) for a one-hot p, D3PM's p_θ(x_s | x_t) (Austin et al. 2021, eq. 4) for a
  predicted p̃(x0 | x_t).

  q(x_t = a | x_s = b) = r δ_ab + (1 − r) m_a with r = α_t/α_s, and q(x_s = b | p) =
  α_s p_b + (1 − α_s) m_b."""
  nd = x0_probs.ndim
  a_s, a_t = _bcast(alpha_s, nd), _bcast(alpha_t, nd)
  r = a_t / a_s
  m = graph.stationary()
  onehot = jax.nn.one_hot(x_t, graph.num_states)
  m_a = jnp.sum(onehot * m, axis=-1, keepdims=True)  # m at the current state
  from_s = a_s * x0_probs + (1.0 - a_s) * m  # q(x_s = b)
  joint = ((1.0 - r) * m_a + r * onehot) * from_s
  return joint / jnp.sum(joint, axis=-1, keepdims=True)


def sample_categorical(rng, probs: jax.Array) -> jax.Array:
  """One draw per row of unnormalised non-negative probs [..., S] (Gumbel-max on log probs)."""
  logits = jnp.log(jnp.maximum(probs, 0.0))
  return jax.random.categorical(rng, logits, axis=-1).astype(jnp.int32)


def kl_categorical(q: jax.Array, p: jax.Array) -> jax.Array:
  """Σ_b q_b log(q_b / p_b) over the last axis, with 0 log 0 = 0."""
  safe_p = jnp.where(q > 0, p, 1.0)
  return jnp.sum(
      jnp.where(q > 0, q * (jnp.log(jnp.where(q > 0, q, 1.0)) - jnp.log(safe_p)), 0.0), -1
  )
