r"""The heat equation on an image grid, solved in the DCT basis (Rissanen et al. 2023, IHDM, §2).

∂u/∂τ = Δu on [0, H] × [0, W] with reflecting (Neumann) boundaries, pixels at cell centres
(i + ½). The orthonormal DCT-II basis cos(π k (i + ½)/N) samples the Laplacian's eigenfunctions,
with eigenvalues -λ_{k,l}, λ_{k,l} = π² (k²/H² + l²/W²), so
  u(τ) = F(τ) u(0),   F(τ) = Vᵀ diag(exp(-λ τ)) V   (V = 2-D DCT-II),
which is a Gaussian blur of standard deviation √(2τ) pixels with reflected images at the borders
(tests/core/test_heat.py checks it against that analytic kernel). IHDM's blur schedule is
τ = σ_B²/2; blurring diffusion (Hoogeboom & Salimans 2023) uses the same per-frequency factors.
Images are [B, H, W, C]; τ is a scalar or [B].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.fft as jfft
import numpy as np


def eigenvalues(height: int, width: int) -> np.ndarray:
  """λ_{k,l} = π²(k²/H² + l²/W²), [H, W] float32 (frequency 0 at [0, 0])."""
  k = np.arange(height)[:, None] / height
  l = np.arange(width)[None, :] / width
  return (np.pi**2 * (k**2 + l**2)).astype(np.float32)


def dct(x: jax.Array) -> jax.Array:
  """Orthonormal 2-D DCT-II over H, W of [B, H, W, C]."""
  return jfft.dctn(x, type=2, axes=(1, 2), norm="ortho")


def idct(u: jax.Array) -> jax.Array:
  """Inverse of `dct` (orthonormal DCT-III)."""
  return jfft.idctn(u, type=2, axes=(1, 2), norm="ortho")


def frequency_scale(tau: jax.Array, shape) -> jax.Array:
  """exp(-λ τ) as [B or 1, H, W, 1] for images of spatial shape `shape` = (H, W)."""
  lam = jnp.asarray(eigenvalues(*shape))
  tau = jnp.reshape(jnp.asarray(tau, jnp.float32), (-1, 1, 1, 1))
  return jnp.exp(-lam[None, :, :, None] * tau)


def heat(x: jax.Array, tau: jax.Array) -> jax.Array:
  """F(τ) x: the image after heat dissipation for time τ (blur std √(2τ) pixels)."""
  return idct(frequency_scale(tau, x.shape[1:3]) * dct(x)).astype(x.dtype)


def tau_from_blur_std(sigma_blur) -> jax.Array:
  """τ = σ_B²/2 (IHDM's schedule in terms of the blur's standard deviation in pixels)."""
  return 0.5 * jnp.square(sigma_blur)
