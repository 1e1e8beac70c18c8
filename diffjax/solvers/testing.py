"""Exact σ-frame denoisers for tests and benchmarks: diagonal Gaussian mixtures in closed form.

For x0 ~ Σ_k w_k N(μ_k, diag s_k²) and x = x0 + σ ε, x ~ Σ_k w_k N(μ_k, diag(s_k² + σ²)) and
  D(x, σ) = E[x0 | x] = Σ_k γ_k(x) (μ_k + s_k²/(s_k² + σ²) (x - μ_k)),
with γ_k the posterior component probabilities (Bayes). For one Gaussian the PF-ODE
dx/dσ = (x - D)/σ = (x - μ) σ/(s² + σ²) has the exact solution
  x(σ) = μ + (x(σ₀) - μ) √((s² + σ²)/(s² + σ₀²)).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)  # identity hash: its bound methods key jit caches
class GaussianMixture:
  """Diagonal Gaussian mixture in d dimensions.

  Attributes:
    means: [K, d] component means.
    stds: [K, d] component standard deviations (> 0).
    weights: [K] mixture weights (sum to 1).
  """

  means: np.ndarray
  stds: np.ndarray
  weights: np.ndarray

  @property
  def dim(self) -> int:
    return int(np.shape(self.means)[1])

  def _params(self, dtype):
    return (
        jnp.asarray(self.means, dtype),
        jnp.asarray(self.stds, dtype),
        jnp.asarray(self.weights, dtype),
    )

  def log_posterior(self, x: jax.Array, sigma: jax.Array) -> jax.Array:
    """log γ_k(x) = log p(component k | x at noise σ). x: [B, d], sigma: [B] -> [B, K]."""
    means, stds, weights = self._params(x.dtype)
    var = stds[None] ** 2 + sigma[:, None, None] ** 2  # [B, K, d]
    diff = x[:, None, :] - means[None]
    log_n = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), axis=-1)  # [B, K]
    logits = jnp.log(weights)[None] + log_n
    return logits - jax.nn.logsumexp(logits, axis=-1, keepdims=True)

  def log_prob(self, x: jax.Array, sigma: jax.Array) -> jax.Array:
    """log p_σ(x), [B]."""
    means, stds, weights = self._params(x.dtype)
    var = stds[None] ** 2 + sigma[:, None, None] ** 2
    diff = x[:, None, :] - means[None]
    log_n = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), axis=-1)
    return jax.nn.logsumexp(jnp.log(weights)[None] + log_n, axis=-1)

  def component_denoiser(self, k: int):
    """D_k(x, σ) = μ_k + s_k²/(s_k² + σ²)(x - μ_k): the denoiser of component k alone."""

    def denoise(x, sigma):
      mu = jnp.asarray(self.means[k], x.dtype)
      var = jnp.asarray(self.stds[k], x.dtype) ** 2
      return mu + var / (var + sigma[:, None] ** 2) * (x - mu)

    return denoise

  def denoiser(self, x: jax.Array, sigma: jax.Array) -> jax.Array:
    """E[x0 | x, σ], x: [B, d], sigma: [B] -> [B, d]."""
    means, stds, _ = self._params(x.dtype)
    gamma = jnp.exp(self.log_posterior(x, sigma))  # [B, K]
    var = stds[None] ** 2
    shrink = var / (var + sigma[:, None, None] ** 2)  # [B, K, d]
    comp = means[None] + shrink * (x[:, None, :] - means[None])
    return jnp.sum(gamma[..., None] * comp, axis=1)

  def sample(self, key: jax.Array, num: int, dtype=jnp.float32) -> tuple[jax.Array, jax.Array]:
    """(x0 [num, d], component index [num])."""
    key_c, key_n = jax.random.split(key)
    means, stds, weights = self._params(dtype)
    comp = jax.random.choice(key_c, weights.shape[0], (num,), p=weights)
    noise = jax.random.normal(key_n, (num, self.dim), dtype)
    return means[comp] + stds[comp] * noise, comp

  def moments(self) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean [d] and variance [d] of the mixture."""
    w = np.asarray(self.weights)[:, None]
    mean = np.sum(w * self.means, axis=0)
    second = np.sum(w * (np.asarray(self.stds) ** 2 + np.asarray(self.means) ** 2), axis=0)
    return mean, second - mean**2


def gaussian(mean, std) -> GaussianMixture:
  """A single diagonal Gaussian N(mean, diag std²) as a one-component mixture."""
  mean = np.atleast_1d(np.asarray(mean, np.float64))
  std = np.broadcast_to(np.asarray(std, np.float64), mean.shape)
  return GaussianMixture(mean[None], np.array(std)[None], np.ones(1))


def gaussian_ode_solution(x, sigma_from, sigma_to, mean, std):
  """Exact PF-ODE map for N(mean, diag std²): μ + (x - μ)√((s² + σ_to²)/(s² + σ_from²)).

  x: [B, d]; mean, std: [d]; sigma_from, sigma_to: scalars (sigma_to may be 0).
  """
  mean = jnp.asarray(mean, x.dtype)
  var = jnp.asarray(std, x.dtype) ** 2
  return mean + (x - mean) * jnp.sqrt((var + sigma_to**2) / (var + sigma_from**2))
