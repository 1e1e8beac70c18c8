r"""Memorization and generalization metrics of a diffusion model against its training set.

- Nearest-neighbour ratio (Yoon et al. 2023, "Diffusion probabilistic models generalize when they
  fail to memorize"; Gu et al. 2023, "On memorization in diffusion models"): for a generated x,
  r(x) = ‖x - NN₁(x)‖ / ‖x - NN₂(x)‖ with NN₁, NN₂ its nearest and second-nearest training
  examples in L2 over all pixels. A sample is a copy when r < 1/3 (their threshold); the copy
  fraction is the share of such samples. Held-out test images give the value of a model that
  copies nothing (their r is rarely < 1/3 unless the training set has near-duplicates).
- Train vs held-out denoising loss per noise level (Li et al. 2023 frame generalization as the gap
  between the two): E‖D(x + σε, σ) - x‖² / d per σ, on n training and n held-out examples with the
  same ε. A model that memorizes fits its training images better than unseen ones at the noise
  levels where it denoises towards training examples; the gap grows with training.

Distances are brute force: ‖q‖² + ‖r‖² - 2 q·r over reference chunks on the device (float32),
then the two nearest are re-measured exactly as ‖q - r‖, so a copy's distance is not lost to
cancellation.
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

COPY_THRESHOLD = 1.0 / 3.0


@functools.partial(jax.jit, static_argnames=("k",))
def _chunk_topk(q, r, r_sq, offset, k):
  d2 = jnp.sum(q * q, axis=1)[:, None] + r_sq[None] - 2.0 * q @ r.T  # [Q, C]
  neg, idx = jax.lax.top_k(-d2, k)
  return -neg, idx + offset


def nearest_two(queries, reference, chunk: int = 8192, k: int = 8) -> tuple[np.ndarray, ...]:
  """(d₁ [Q], d₂ [Q], index of NN₁ [Q]): exact L2 distances of each query to its two nearest rows of
  `reference` (arrays [Q, ...] and [N, ...], flattened). Candidates are the k nearest by the
  expanded formula (per chunk, then over chunks); the two nearest of them are re-measured."""
  q = jnp.asarray(np.reshape(queries, (len(queries), -1)), jnp.float32)
  ref = np.reshape(reference, (len(reference), -1)).astype(np.float32)
  if len(ref) < 2:
    raise ValueError(f"the reference set needs at least 2 examples; got {len(ref)}")
  k = min(k, len(ref))
  best_d, best_i = [], []
  for lo in range(0, len(ref), chunk):
    part = ref[lo : lo + chunk]
    r_sq = np.sum(part.astype(np.float64) ** 2, axis=1).astype(np.float32)
    if len(part) < k:  # a short last chunk: padding rows at infinite distance are never chosen
      r_sq = np.concatenate([r_sq, np.full(k - len(part), np.inf, np.float32)])
      part = np.concatenate([part, np.zeros((k - len(part), part.shape[1]), np.float32)])
    d, i = _chunk_topk(q, jnp.asarray(part), jnp.asarray(r_sq), lo, k)
    best_d.append(np.asarray(d))
    best_i.append(np.asarray(i))
  # The k nearest over all chunks (at least k real rows exist, so no padding row survives).
  order = np.argsort(np.concatenate(best_d, axis=1), axis=1)[:, :k]
  cand = np.take_along_axis(np.concatenate(best_i, axis=1), order, axis=1)  # [Q, k]
  # Exact distances to the candidates (float64), then the two smallest.
  qh = np.asarray(q, np.float64)
  exact = np.linalg.norm(ref[cand].astype(np.float64) - qh[:, None], axis=-1)  # [Q, k]
  two = np.argsort(exact, axis=1)[:, :2]
  d = np.take_along_axis(exact, two, axis=1)
  return d[:, 0], d[:, 1], np.take_along_axis(cand, two[:, :1], axis=1)[:, 0]


def nn_ratio(queries, reference, **kwargs) -> tuple[np.ndarray, np.ndarray]:
  """(r = d₁/d₂ [Q], d₁ [Q]) of each query against the reference set (module docstring)."""
  d1, d2, _ = nearest_two(queries, reference, **kwargs)
  return d1 / np.maximum(d2, 1e-12), d1


def copy_fraction(ratio: np.ndarray, threshold: float = COPY_THRESHOLD) -> float:
  """Share of queries with nearest-neighbour ratio below `threshold`."""
  return float(np.mean(np.asarray(ratio) < threshold))


def denoising_loss_per_sigma(
    denoiser: Callable[[jax.Array, jax.Array], jax.Array],
    x: jax.Array,
    rng: jax.Array,
    sigmas: Sequence[float],
) -> jax.Array:
  """Mean over examples and dimensions of (D(x + σε, σ) - x)² at each σ, [S]; the same ε for
  every σ (and for every call with the same rng and shape, so train and held-out sets compare
  on equal noise). Jittable."""
  eps = jax.random.normal(rng, x.shape, jnp.float32)

  def one(sigma):
    s = jnp.full(x.shape[:1], sigma, jnp.float32)
    return jnp.mean(jnp.square(denoiser(x + sigma * eps, s) - x))

  return jax.lax.map(one, jnp.asarray(sigmas, jnp.float32))
