"""Building blocks shared by the U-Nets: group norm (+SiLU), FIR resampling, spatial attention.

Images are NHWC throughout. Resampling filters follow Song et al. 2021 (NCSN++, FIR kernel [1,3,3,1]
from StyleGAN2, Karras et al. 2020) and DDPM++ (box kernel [1,1]), as NVlabs/edm's `Conv2d` applies
them: the 2-D kernel is the outer product of the taps normalised to sum 1. `downsample`/`upsample`
compute that separable filter without EDM's depthwise convolutions (slow grouped convolutions in
cuDNN); the convolutions stay as `_downsample_conv`/`_upsample_conv`, the tests' reference.
"""

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models import fused_norm


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


FUSED_NORMS = ("none",) + fused_norm.IMPLS


def norm_silu(
    channels: int,
    *,
    eps: float = 1e-5,
    dtype: Any = jnp.float32,
    fused: str = "none",
    name: str | None = None,
) -> Callable[..., jax.Array]:
  """GroupNorm → (optional scale-shift) → SiLU, as the models' `fused_norm` attribute picks it.

  Returns f(x, scale=None, shift=None) = silu(norm(x)·(1 + scale) + shift) (scale-shift: ADM's
  adaptive norm, [B, 1, 1, C]). fused="none" is nn.GroupNorm then nn.silu, op for op as before;
  "jnp"/"pallas" is `fused_norm.GroupNormSiLU` (one op, same parameter names and shapes).

  Raises:
    ValueError: unknown `fused`.
  """
  if fused not in FUSED_NORMS:
    raise ValueError(f"fused_norm must be one of {FUSED_NORMS}, got {fused!r}")
  if fused != "none":
    return fused_norm.GroupNormSiLU(
        num_groups(channels), epsilon=eps, dtype=dtype, impl=fused, name=name
    )
  norm = group_norm(channels, eps=eps, dtype=dtype, name=name)

  def apply(x, scale=None, shift=None):
    h = norm(x)
    return nn.silu(h if scale is None else h * (scale + 1) + shift)

  return apply


def _filter_2d(taps: Sequence[float]) -> np.ndarray:
  """Outer product of the taps, normalised to sum 1: [k, k] (the reference convolutions' kernel)."""
  f = np.asarray(taps, np.float32)
  return np.outer(f, f) / np.square(f.sum())


def _is_box(taps: Sequence[float]) -> bool:
  return len(taps) == 2 and taps[0] == taps[1] != 0


def _taps_1d(taps: Sequence[float], gain: float) -> list[float]:
  """The 1-D factor of the separable filter: gain·taps/Σtaps (outer(f, f) = gain²·_filter_2d)."""
  f = np.asarray(taps, np.float64)
  return [float(v) for v in gain * f / f.sum()]


def _down_axis(x: jax.Array, f: Sequence[float], pad: int, axis: int) -> jax.Array:
  """out[i] = Σ_a f[a]·x_p[2i + a] along `axis`, x_p = x zero-padded by `pad` on both sides."""
  k = len(f)
  cfg = [(0, 0, 0)] * x.ndim
  cfg[axis] = (pad, pad, 0)
  xp = jax.lax.pad(x, jnp.zeros((), x.dtype), cfg)  # negative pad crops, as in the convolution
  n = (xp.shape[axis] - k) // 2 + 1
  tap = lambda a: jax.lax.slice_in_dim(xp, a, a + 2 * (n - 1) + 1, stride=2, axis=axis)
  return sum(f[a] * tap(a) for a in range(1, k)) + f[0] * tap(0)


def _up_axis(x: jax.Array, f: Sequence[float], axis: int) -> jax.Array:
  """The zero-inserting transposed convolution along `axis`, as two polyphase filters.

  The reference dilates x to xd (xd[2i] = x[i], zeros between), pads by p = k-1-(k-1)//2 and
  correlates with the flipped taps g = f[::-1]: out[o] = Σ_a g[a]·xd[o + a - p]. For o = 2i + r only
  the taps with o + a - p even meet a sample, x[i + (r + a - p)/2]; e.g. [1,3,3,1]/4 gives
  out[2i] = (x[i-1] + 3x[i])/4 and out[2i+1] = (3x[i] + x[i+1])/4 (zero outside the image).
  """
  k, h = len(f), x.shape[axis]
  g, p = f[::-1], k - 1 - (k - 1) // 2
  phases = [[(g[a], (r + a - p) // 2) for a in range(k) if (r + a - p) % 2 == 0] for r in (0, 1)]
  lo = max(0, -min(s for ph in phases for _, s in ph))
  hi = max(0, max(s for ph in phases for _, s in ph))
  cfg = [(0, 0, 0)] * x.ndim
  cfg[axis] = (lo, hi, 0)
  xp = jax.lax.pad(x, jnp.zeros((), x.dtype), cfg)
  tap = lambda s: jax.lax.slice_in_dim(xp, lo + s, lo + s + h, axis=axis)
  out = [sum(w * tap(s) for w, s in ph[1:]) + ph[0][0] * tap(ph[0][1]) for ph in phases]
  shape = list(x.shape)
  shape[axis] = 2 * h
  return jnp.stack(out, axis=axis + 1).reshape(shape)


def downsample(x: jax.Array, taps: Sequence[float] = (1, 1), pad: int | None = None) -> jax.Array:
  """Filter then subsample by 2: the filter is outer(taps, taps)/Σ², padding (k-1)//2 by default.

  Taps (1, 1) is 2x2 average pooling; (1, 3, 3, 1) is the FIR filter of NCSN++. Equal (up to float
  rounding) to `_downsample_conv`, NVlabs/edm's depthwise stride-2 convolution, without a grouped
  convolution (cuDNN runs those slowly): the box filter at padding 0 is a reshape and a
  2x2 mean; any other filter is separable, two 1-D passes of strided slices that XLA fuses into one
  elementwise kernel. Sums run in float32 and round once to x's dtype.

  Args:
    x: [B, H, W, C].
    taps: 1-D filter taps.
    pad: zero padding on each side; None = (k-1)//2. EDM's fused conv + downsample passes 0 after a
      conv that padded by (k-1)//2 extra.

  Returns:
    [B, (H + 2 pad - k)//2 + 1, (W + 2 pad - k)//2 + 1, C] in x's dtype ([B, H/2, W/2, C] with the
    default padding and even H, W).
  """
  k = len(taps)
  pad = (k - 1) // 2 if pad is None else pad
  b, h, w, c = x.shape
  x32 = x.astype(jnp.float32)
  if _is_box(taps) and pad == 0 and h % 2 == 0 and w % 2 == 0:
    out = x32.reshape(b, h // 2, 2, w // 2, 2, c).sum(axis=(2, 4)) * 0.25
  else:
    f = _taps_1d(taps, 1.0)
    out = _down_axis(_down_axis(x32, f, pad, 1), f, pad, 2)
  return out.astype(x.dtype)


def upsample(x: jax.Array, taps: Sequence[float] = (1, 1)) -> jax.Array:
  """Upsampling by 2: zero insertion, then the filter scaled by 4 (a transposed convolution).

  Taps (1, 1) is nearest-neighbour upsampling (each pixel repeated 2x2, exactly); (1, 3, 3, 1) is
  the FIR upsampler of NCSN++. Equal (up to float rounding) to `_upsample_conv`, NVlabs/edm's
  depthwise convolution of the zero-inserted input, without the grouped convolution or the zeros:
  per axis the filter splits into two polyphase filters, e.g. [1, 3]/4 and [3, 1]/4, whose outputs
  interleave (`_up_axis`). Sums run in float32 and round once to x's dtype.

  Args:
    x: [B, H, W, C].
    taps: 1-D filter taps (an even number of them; an odd count falls back to the convolution).

  Returns:
    [B, 2H, 2W, C] in x's dtype.
  """
  b, h, w, c = x.shape
  if _is_box(taps):
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c))
    return x.reshape(b, 2 * h, 2 * w, c)
  if len(taps) % 2:
    return _upsample_conv(x, taps)
  f = _taps_1d(taps, 2.0)
  return _up_axis(_up_axis(x.astype(jnp.float32), f, 1), f, 2).astype(x.dtype)


def _downsample_conv(x: jax.Array, taps: Sequence[float] = (1, 1), pad: int | None = None):
  """Reference for `downsample`: depthwise stride-2 convolution, as NVlabs/edm's `Conv2d`."""
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


def _upsample_conv(x: jax.Array, taps: Sequence[float] = (1, 1)) -> jax.Array:
  """Reference for `upsample`: zero insertion (lhs_dilation) and a depthwise convolution."""
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
