"""Gaussian mixtures with known parameters: samples, exact log-density, score and denoiser.

p(x) = Σ_k w_k N(x; μ_k, C_k). Each C_k is stored with its eigendecomposition
C_k = U_k diag(s_k) U_kᵀ, which makes the mixture noised in the σ-frame of EDM (Karras et al.
2022, x = x₀ + σ·ε) closed form for every σ: p_σ = Σ_k w_k N(μ_k, U_k diag(s_k + σ²) U_kᵀ).
Its score and the exact denoiser
  D(x, σ) = E[x₀ | x] = Σ_k r_k(x) (μ_k + U_k diag(s_k / (s_k + σ²)) U_kᵀ (x - μ_k)),
with r_k the posterior component probabilities, are what solver and loss tests compare against
(DESIGN.md, "Results people can trust"). Tweedie's formula D = x + σ² ∇log p_σ(x) ties the two
(Efron 2011).

The density functions take `xp=jnp` (default; traceable, differentiable) or `xp=np` (float64 NumPy).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianMixture:
  """Σ_k w_k N(μ_k, C_k) in d dimensions.

  Attributes:
    weights: float64 [K], positive, summing to 1.
    means: float64 [K, d].
    covs: float64 [K, d, d], symmetric positive definite.
  """

  weights: np.ndarray
  means: np.ndarray
  covs: np.ndarray

  @property
  def dim(self) -> int:
    return self.means.shape[1]

  @property
  def num_components(self) -> int:
    return self.means.shape[0]

  @functools.cached_property
  def eig(self) -> tuple[np.ndarray, np.ndarray]:
    """(s [K, d], U [K, d, d]) with C_k = U_k diag(s_k) U_kᵀ."""
    s, u = np.linalg.eigh(self.covs)
    return s, u

  def mean(self) -> np.ndarray:
    """E[x] = Σ_k w_k μ_k, [d]."""
    return self.weights @ self.means

  def covariance(self) -> np.ndarray:
    """Cov[x] = Σ_k w_k (C_k + μ_k μ_kᵀ) - E[x] E[x]ᵀ, [d, d] (law of total covariance)."""
    m = self.mean()
    second = np.einsum(
        "k,kij->ij", self.weights, self.covs + np.einsum("ki,kj->kij", self.means, self.means)
    )
    return second - np.outer(m, m)


def mixture(weights: Any, means: Any, covs: Any) -> GaussianMixture:
  """Builds and checks a mixture from explicit parameters.

  Args:
    weights: [K] non-negative (normalised here).
    means: [K, d].
    covs: [K, d, d] full covariances, [K, d] diagonal variances, or [K] isotropic variances.

  Returns:
    The `GaussianMixture`, float64.

  Raises:
    ValueError: naming `data.weights`, `data.means` or `data.covs` when shapes or values are bad.
  """
  means = np.asarray(means, np.float64)
  if means.ndim != 2:
    raise ValueError(f"data.means must have shape [K, d], got {means.shape}")
  k, d = means.shape
  weights = np.asarray(weights, np.float64)
  if weights.shape != (k,) or np.any(weights < 0) or weights.sum() <= 0:
    raise ValueError(f"data.weights must be {k} non-negative numbers, got {weights.tolist()}")
  covs = np.asarray(covs, np.float64)
  if covs.shape == (k,):
    covs = covs[:, None, None] * np.eye(d)
  elif covs.shape == (k, d):
    covs = np.einsum("ki,ij->kij", covs, np.eye(d))
  elif covs.shape != (k, d, d):
    raise ValueError(
        f"data.covs must have shape [K, d, d], [K, d] or [K] with K={k}, d={d}; "
        f"got {covs.shape}"
    )
  if not np.allclose(covs, np.swapaxes(covs, 1, 2)) or np.any(np.linalg.eigvalsh(covs) <= 0):
    raise ValueError("data.covs must be symmetric positive definite")
  return GaussianMixture(weights / weights.sum(), means, covs)


COVARIANCE_KINDS = ("isotropic", "diag", "full")


def random_mixture(
    seed: int,
    dim: int,
    num_components: int,
    *,
    covariance: str = "diag",
    mean_scale: float = 2.0,
    std_range: Sequence[float] = (0.2, 0.6),
    random_weights: bool = False,
) -> GaussianMixture:
  """A reproducible random mixture: a pure function of its arguments.

  μ_k ~ N(0, mean_scale² I); per-axis standard deviations ~ U[std_range]; "full" rotates the axes
  by a random orthogonal matrix (QR of a Gaussian matrix with sign-fixed diagonal); weights are
  uniform, or Dirichlet(5, ..., 5) when `random_weights`.
  """
  if covariance not in COVARIANCE_KINDS:
    raise ValueError(f"data.covariance must be one of {COVARIANCE_KINDS}, got {covariance!r}")
  if dim < 1 or num_components < 1:
    raise ValueError(f"data.dim and data.num_components must be >= 1, got {dim}, {num_components}")
  lo, hi = (float(v) for v in std_range)
  if not 0 < lo <= hi:
    raise ValueError(f"data.std_range must be 0 < lo <= hi, got {tuple(std_range)}")
  rng = np.random.default_rng([int(seed), 7919])
  means = mean_scale * rng.standard_normal((num_components, dim))
  if covariance == "isotropic":
    stds = np.repeat(rng.uniform(lo, hi, (num_components, 1)), dim, axis=1)
  else:
    stds = rng.uniform(lo, hi, (num_components, dim))
  covs = np.einsum("ki,ij->kij", stds**2, np.eye(dim))
  if covariance == "full":
    q, r = np.linalg.qr(rng.standard_normal((num_components, dim, dim)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    covs = q @ covs @ np.swapaxes(q, 1, 2)
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
  weights = (
      rng.dirichlet(np.full(num_components, 5.0))
      if random_weights
      else np.full(num_components, 1.0 / num_components)
  )
  return GaussianMixture(weights, means, covs)


def sample(mix: GaussianMixture, rng: np.random.Generator, n: int) -> np.ndarray:
  """n i.i.d. draws, float64 [n, d]: k ~ Cat(w), x = μ_k + U_k diag(√s_k) ξ, ξ ~ N(0, I)."""
  s, u = mix.eig
  k = rng.choice(mix.num_components, size=n, p=mix.weights)
  xi = rng.standard_normal((n, mix.dim)) * np.sqrt(s[k])
  return mix.means[k] + np.einsum("nij,nj->ni", u[k], xi)


def _projected(mix: GaussianMixture, x: Any, sigma: Any, xp) -> tuple[Any, Any, Any]:
  """(x - μ_k) in each component's eigenbasis [..., K, d], noised variances [..., K, d], log w."""
  s, u = mix.eig
  x = xp.asarray(x)
  if xp is np or not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(np.float64 if xp is np else jnp.float32)
  sigma = xp.asarray(sigma, dtype=x.dtype)
  sigma = xp.broadcast_to(sigma, x.shape[:-1])
  diff = x[..., None, :] - xp.asarray(mix.means, dtype=x.dtype)  # [..., K, d]
  proj = xp.einsum("kij,...ki->...kj", xp.asarray(u, dtype=x.dtype), diff)  # U_kᵀ (x - μ_k)
  var = xp.asarray(s, dtype=x.dtype) + xp.square(sigma)[..., None, None]  # [..., K, d]
  return proj, var, xp.log(xp.asarray(mix.weights, dtype=x.dtype))


def _component_log_probs(mix, x, sigma, xp):
  proj, var, log_w = _projected(mix, x, sigma, xp)
  log_n = -0.5 * xp.sum(xp.square(proj) / var + xp.log(var), axis=-1)
  log_n = log_n - 0.5 * mix.dim * math.log(2.0 * math.pi)
  return log_w + log_n, proj, var  # [..., K]


def _logsumexp(a, xp):
  m = xp.max(a, axis=-1, keepdims=True)
  if xp is jnp:  # the shift cancels exactly; keeping it out of autodiff avoids a 0·∞ in ∇max
    m = jax.lax.stop_gradient(m)
  return (m + xp.log(xp.sum(xp.exp(a - m), axis=-1, keepdims=True)))[..., 0]


def log_prob(mix: GaussianMixture, x: Any, sigma: Any = 0.0, *, xp=jnp) -> Any:
  """log p_σ(x) of the mixture convolved with N(0, σ² I) (σ = 0: the mixture itself).

  Args:
    mix: the mixture.
    x: [..., d].
    sigma: scalar or [...] (broadcast against x's leading dims).
    xp: `jnp` (default) or `np`.

  Returns:
    [...] log densities.
  """
  a, _, _ = _component_log_probs(mix, x, sigma, xp)
  return _logsumexp(a, xp)


def _responsibilities(a, xp):
  return xp.exp(a - _logsumexp(a, xp)[..., None])  # r_k(x) = w_k N_k(x) / p(x), [..., K]


def score(mix: GaussianMixture, x: Any, sigma: Any = 0.0, *, xp=jnp) -> Any:
  """∇ₓ log p_σ(x) = -Σ_k r_k(x) U_k diag(1/(s_k + σ²)) U_kᵀ (x - μ_k), shape [..., d]."""
  a, proj, var = _component_log_probs(mix, x, sigma, xp)
  r = _responsibilities(a, xp)
  u = xp.asarray(mix.eig[1], dtype=proj.dtype)
  return -xp.einsum("...k,kij,...kj->...i", r, u, proj / var)


def denoise(mix: GaussianMixture, x: Any, sigma: Any, *, xp=jnp) -> Any:
  """Exact E[x₀ | x₀ + σ ε = x] under the mixture prior, shape [..., d].

  Per component, Gaussian conditioning gives μ_k + C_k (C_k + σ² I)⁻¹ (x - μ_k); the components
  are mixed with their posterior probabilities r_k(x) under p_σ.

  Args:
    mix: the prior of x₀.
    x: [..., d] noisy points.
    sigma: scalar or [...] noise levels (σ-frame).
    xp: `jnp` (default) or `np`.
  """
  a, proj, var = _component_log_probs(mix, x, sigma, xp)
  r = _responsibilities(a, xp)
  s, u = mix.eig
  shrink = xp.asarray(s, dtype=proj.dtype) / var  # s_k / (s_k + σ²), [..., K, d]
  u = xp.asarray(u, dtype=proj.dtype)
  post = xp.asarray(mix.means, dtype=proj.dtype) + xp.einsum("kij,...kj->...ki", u, shrink * proj)
  return xp.einsum("...k,...ki->...i", r, post)
