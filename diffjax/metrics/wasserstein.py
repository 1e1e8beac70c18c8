"""Sliced Wasserstein distance between two point clouds (Rabin et al. 2011; Bonneel et al. 2015)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sliced_wasserstein(
    x: jax.Array, y: jax.Array, rng: jax.Array, num_projections: int = 256, p: int = 2
) -> jax.Array:
  """SW_p(x, y) = (E_θ[W_p^p(θ·x, θ·y)])^(1/p) over uniform directions θ on the sphere.

  Each 1-D W_p between equal-size empirical measures is exact: sort both and match in order.

  Args:
    x: `[N, D]` samples.
    y: `[N, D]` samples (same N).
    rng: key for the random directions.
    num_projections: Monte-Carlo directions.
    p: order (1 or 2, or any p ≥ 1).

  Returns:
    Scalar SW_p.
  """
  if x.ndim != 2 or y.ndim != 2 or x.shape != y.shape:
    raise ValueError(f"x {x.shape} and y {y.shape}: expected two [N, D] arrays of the same shape")
  theta = jax.random.normal(rng, (x.shape[1], num_projections))
  theta = theta / jnp.linalg.norm(theta, axis=0, keepdims=True)
  px, py = jnp.sort(x @ theta, axis=0), jnp.sort(y @ theta, axis=0)
  return jnp.mean(jnp.abs(px - py) ** p) ** (1.0 / p)
