"""The residual block shared by DDPM++, NCSN++ (Song et al. 2021) and ADM (Dhariwal & Nichol 2021).

One block covers all three, as NVlabs/edm's `UNetBlock` does (Karras et al. 2022, App. F.2):
GroupNorm → SiLU → (resample) conv3x3 → add or scale-shift the embedding → GroupNorm → SiLU →
dropout → conv3x3, plus a (resampled, projected) skip path, the sum scaled by `skip_scale`
(1/√2 in DDPM++/NCSN++), and an optional self-attention sub-block scaled the same way.

`fused_norm="jnp"|"pallas"` runs each GroupNorm → SiLU pair as one op (`fused_norm.GroupNormSiLU`,
same parameters, outputs equal up to rounding); the default "none" keeps nn.GroupNorm + nn.silu.
"""

from collections.abc import Sequence
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import layers

Initializer = Callable[..., jax.Array]


def scaled_init(weight: float, mode: str) -> Initializer:
  """EDM's `weight_init(mode) * weight` as a Flax initialiser (fans include the receptive field).

  xavier_uniform: U(±sqrt(6/(fan_in+fan_out))); kaiming_uniform: U(±sqrt(3/fan_in));
  kaiming_normal: N(0, 1/fan_in). Scaling the draw by `weight` scales the variance by weight².
  """
  if weight == 0.0:
    return nn.initializers.zeros_init()
  fan, dist = {
      "xavier_uniform": ("fan_avg", "uniform"),
      "kaiming_uniform": ("fan_in", "uniform"),
      "kaiming_normal": ("fan_in", "normal"),
  }[mode]
  # variance_scaling(s, fan_avg, uniform) draws U(±sqrt(3 s / fan_avg)) with fan_avg = (in+out)/2.
  return nn.initializers.variance_scaling(weight**2, fan, dist)


class EDMBlock(nn.Module):
  """Residual block with optional up/down-sampling and self-attention; NHWC.

  Attributes:
    out_ch: output channels.
    up, down: resample by 2 inside the block (filter `resample_filter`).
    attention: append a self-attention sub-block.
    num_heads: attention heads; None means out_ch // channels_per_head (ADM). With 0 heads (a
      layer narrower than channels_per_head) the block has no attention, as in EDM's UNetBlock.
    channels_per_head: see num_heads.
    dropout: dropout rate before the second convolution (train mode only).
    skip_scale: factor applied after each residual sum (1/√2 for DDPM++/NCSN++).
    eps: GroupNorm epsilon.
    resample_filter: FIR taps, (1, 1) box or (1, 3, 3, 1).
    resample_proj: use a 1x1 conv on the skip path when resampling even if widths match.
    adaptive_scale: embedding gives scale and shift (ADM) instead of an additive bias (DDPM++).
    fused_norm: "none" (nn.GroupNorm then SiLU), "jnp" or "pallas" (`fused_norm.GroupNormSiLU`)
      for norm0 and norm1 (norm2, before attention, has no SiLU); same parameters either way.
    init, init_zero, init_attn: kernel initialisers (last conv of each branch: init_zero).
    dtype: activation dtype.
  """

  out_ch: int
  up: bool = False
  down: bool = False
  attention: bool = False
  num_heads: int | None = None
  channels_per_head: int = 64
  dropout: float = 0.0
  skip_scale: float = 1.0
  eps: float = 1e-5
  resample_filter: Sequence[float] = (1, 1)
  resample_proj: bool = False
  adaptive_scale: bool = True
  fused_norm: str = "none"
  init: Initializer = nn.initializers.lecun_normal()
  init_zero: Initializer = nn.initializers.zeros_init()
  init_attn: Initializer | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, emb: jax.Array, train: bool) -> jax.Array:
    """x [B, H, W, C_in], emb [B, E] -> [B, H', W', out_ch] (H' = 2H up, H/2 down)."""
    c_in = x.shape[-1]
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    resample = lambda a: (
        layers.upsample(a, self.resample_filter)
        if self.up
        else layers.downsample(a, self.resample_filter)
        if self.down
        else a
    )
    norm_silu = lambda c, name: layers.norm_silu(
        c, eps=self.eps, dtype=self.dtype, fused=self.fused_norm, name=name
    )
    h = norm_silu(c_in, "norm0")(x)
    h = nn.Conv(self.out_ch, (3, 3), kernel_init=self.init, name="conv0", **kw)(resample(h))
    params = nn.Dense(
        self.out_ch * (2 if self.adaptive_scale else 1), kernel_init=self.init, name="affine", **kw
    )(emb)[:, None, None, :]
    norm1 = norm_silu(self.out_ch, "norm1")
    if self.adaptive_scale:  # ADM's scale-shift norm: silu(norm(h)·(1 + scale) + shift)
      scale, shift = jnp.split(params, 2, axis=-1)
      h = norm1(h, scale, shift)
    else:
      h = norm1(h + params)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.Conv(self.out_ch, (3, 3), kernel_init=self.init_zero, name="conv1", **kw)(h)

    skip = x
    if self.out_ch != c_in or self.up or self.down:
      skip = resample(skip)
      if self.resample_proj or self.out_ch != c_in:
        skip = nn.Conv(self.out_ch, (1, 1), kernel_init=self.init, name="skip", **kw)(skip)
    h = (h + skip) * self.skip_scale

    heads = self.num_heads if self.num_heads is not None else self.out_ch // self.channels_per_head
    if self.attention and heads > 0:  # EDM: a layer narrower than one head has no attention
      qkv = nn.Conv(
          3 * self.out_ch,
          (1, 1),
          name="qkv",
          **kw,
          kernel_init=self.init_attn if self.init_attn is not None else self.init,
      )(layers.group_norm(self.out_ch, eps=self.eps, dtype=self.dtype, name="norm2")(h))
      a = layers.spatial_attention(*jnp.split(qkv, 3, axis=-1), num_heads=heads)
      h = nn.Conv(self.out_ch, (1, 1), kernel_init=self.init_zero, name="proj", **kw)(a) + h
      h = h * self.skip_scale
    return h
