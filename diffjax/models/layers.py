"""Building blocks shared by the U-Nets: group norm, FIR resampling, spatial attention.

Images are NHWC throughout. Resampling filters follow Song et al. 2021 (NCSN++, FIR kernel [1,3,3,1]
from StyleGAN2, Karras et al. 2020) and DDPM++ (box kernel [1,1]), as NVlabs/edm's `Conv2d` applies
them: the 2-D kernel is the outer product of the taps normalised to sum 1.
"""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def num_groups(channels: int, max_groups: int = 32, min_channels_per_group: int = 4) -> int:
  """Groups for GroupNorm: min(32, C/4) as in EDM, lowered until it divides C (tiny test widths)."""
  g = max(1, min(max_groups, channels // min_channels_per_group))
  while channels % g:
    g -= 1
  return g


def group_norm(channels: int, *, eps: float = 1e-5, dtype: Any = jnp.float32, name=None):
  """GroupNorm with EDM's group rule (32 groups for the paper widths), float32 parameters."""
  return nn.GroupNorm(
      num_groups=num_groups(channels), epsilon=eps, dtype=dtype, param_dtype=jnp.float32, name=name
  )


def _filter_2d(taps: Sequence[float]) -> np.ndarray:
  """Outer product of the taps, normalised to sum 1: [k, k]."""
  f = np.asarray(taps, np.float32)
  return np.outer(f, f) / np.square(f.sum())


def downsample(x: jax.Array, taps: Sequence[float] = (1, 1), pad: int | None = None) -> jax.Array:
  """Filter then subsample by 2: depthwise stride-2 convolution with padding (k-1)//2.

  Taps (1, 1) is 2x2 average pooling; (1, 3, 3, 1) is the FIR filter of NCSN++.
  Args: x [B, H, W, C] with even H, W; pad overrides the padding (0 after a conv that already
  padded by (k-1)//2 extra, EDM's fused resampling). Returns [B, H/2, W/2, C].
  """
  f = _filter_2d(taps)
  c = x.shape[-1]
  pad = (f.shape[0] - 1) // 2 if pad is None else pad
  kernel = jnp.asarray(np.tile(f[:, :, None, None], (1, 1, 1, c)), x.dtype)  # HWIO, I = 1
  return jax.lax.conv_general_dilated(
      x,
      kernel,
      (2, 2),
      [(pad, pad)] * 2,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=c,
  )


def upsample(x: jax.Array, taps: Sequence[float] = (1, 1)) -> jax.Array:
  """Zero-insertion upsampling by 2 followed by the filter scaled by 4 (a transposed convolution).

  Taps (1, 1) is nearest-neighbour upsampling; (1, 3, 3, 1) is the FIR upsampler of NCSN++.
  Args: x [B, H, W, C]. Returns [B, 2H, 2W, C].
  """
  f = 4.0 * _filter_2d(taps)
  k, c = f.shape[0], x.shape[-1]
  pad = k - 1 - (k - 1) // 2  # transposed conv with padding (k-1)//2, as a dilated forward conv
  kernel = jnp.asarray(np.tile(f[::-1, ::-1, None, None], (1, 1, 1, c)), x.dtype)
  return jax.lax.conv_general_dilated(
      x,
      kernel,
      (1, 1),
      [(pad, pad)] * 2,
      lhs_dilation=(2, 2),
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=c,
  )


def spatial_attention(q: jax.Array, k: jax.Array, v: jax.Array, num_heads: int) -> jax.Array:
  """Multi-head dot-product self-attention over all H*W positions (Vaswani et al. 2017, eq. 1).

  softmax(q kᵀ / sqrt(d)) v per head, d = C / num_heads; logits and softmax in float32.
  Args: q, k, v [B, H, W, C]. Returns [B, H, W, C] in q's dtype.
  """
  b, h, w, c = q.shape
  if c % num_heads:
    raise ValueError(f"channels {c} not divisible by num_heads {num_heads}")
  d = c // num_heads
  split = lambda a: a.reshape(b, h * w, num_heads, d)
  logits = jnp.einsum(
      "bqnd,bknd->bnqk", split(q).astype(jnp.float32), split(k).astype(jnp.float32)
  ) / math.sqrt(d)
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bnqk,bknd->bqnd", weights, split(v)).reshape(b, h, w, c)


def check_resolution(x_shape: Sequence[int], num_levels: int) -> None:
  """Raises ValueError unless H and W are divisible by 2^(num_levels-1) (no silent padding)."""
  factor = 2 ** (num_levels - 1)
  if len(x_shape) != 4:
    raise ValueError(f"x must be [B, H, W, C], got shape {tuple(x_shape)}")
  if x_shape[1] % factor or x_shape[2] % factor:
    raise ValueError(
        f"x spatial size {tuple(x_shape[1:3])} must be divisible by 2^(len(ch_mult)-1) = {factor}; "
        "pad or crop the images, or use fewer resolution levels"
    )
