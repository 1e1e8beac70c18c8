"""The DDPM U-Net (Ho et al. 2020, arXiv:2006.11239, Appendix B), configurable in size.

Wide-ResNet blocks with GroupNorm and Swish, the noise-level embedding added inside every block,
single-head self-attention at the listed resolutions, stride-2 convolution down / nearest-neighbour
plus convolution up. At the paper's CIFAR-10 settings (ch=128, ch_mult=(1,2,2,2), 2 blocks,
attention at 16x16, dropout 0.1) it has 35.7 M parameters, the figure the paper states. The layer
structure was read from hojonathanho/diffusion `diffusion_tf/models/unet.py`.

Resolutions must be divisible by 2^(len(ch_mult)-1): a ValueError says so (no padding), e.g. a 28x28
Fashion-MNIST model uses ch_mult of length ≤ 3.

`fused_norm="jnp"|"pallas"` runs each GroupNorm → Swish pair as one op (`fused_norm.GroupNormSiLU`,
same parameters, outputs equal up to rounding); the default "none" keeps nn.GroupNorm + nn.silu.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import embeddings, layers

# Ho et al. initialise the last layer of each residual/attention branch and the output with
# init_scale=0, i.e. variance scaling with scale 1e-10: near zero, so each block starts as identity.
_ZERO_INIT = nn.initializers.variance_scaling(1e-10, "fan_avg", "uniform")
_EPS = 1e-6  # tf.contrib.layers.group_norm's epsilon, which Ho et al.'s GroupNorm uses


class ResBlock(nn.Module):
  """x + conv(drop(swish(norm(conv(swish(norm(x))) + dense(swish(emb)))))) (Ho et al. App. B)."""

  out_ch: int
  dropout: float
  dtype: Any
  fused_norm: str = "none"

  @nn.compact
  def __call__(self, x: jax.Array, emb: jax.Array, train: bool) -> jax.Array:
    conv = lambda name, **kw: nn.Conv(
        self.out_ch, (3, 3), dtype=self.dtype, param_dtype=jnp.float32, name=name, **kw
    )
    norm_swish = lambda c, name: layers.norm_silu(
        c, eps=_EPS, dtype=self.dtype, fused=self.fused_norm, name=name
    )
    h = norm_swish(x.shape[-1], "norm0")(x)
    h = conv("conv0")(h)
    h = (
        h
        + nn.Dense(self.out_ch, dtype=self.dtype, param_dtype=jnp.float32, name="emb_proj")(
            nn.swish(emb)
        )[:, None, None, :]
    )
    h = norm_swish(self.out_ch, "norm1")(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = conv("conv1", kernel_init=_ZERO_INIT)(h)
    if x.shape[-1] != self.out_ch:  # "NIN" 1x1 shortcut when the width changes
      x = nn.Dense(self.out_ch, dtype=self.dtype, param_dtype=jnp.float32, name="shortcut")(x)
    return x + h


class AttnBlock(nn.Module):
  """x + proj(attention(q, k, v)), q, k, v 1x1 projections of norm(x); single head by default."""

  num_heads: int
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c = x.shape[-1]
    dense = lambda name, **kw: nn.Dense(
        c, dtype=self.dtype, param_dtype=jnp.float32, name=name, **kw
    )
    h = layers.group_norm(c, eps=_EPS, dtype=self.dtype, name="norm")(x)
    a = layers.spatial_attention(dense("q")(h), dense("k")(h), dense("v")(h), self.num_heads)
    return x + dense("proj", kernel_init=_ZERO_INIT)(a)


class UNet(nn.Module):
  """Configurable DDPM U-Net; `models.make({"kind": "unet", ...})`.

  Attributes:
    ch: base width.
    ch_mult: width multiplier per resolution level (len = number of levels).
    num_res_blocks: residual blocks per level in the encoder (decoder: one more).
    attn_resolutions: spatial sizes (H) at which self-attention is applied.
    dropout: dropout rate in the residual blocks (train mode only).
    num_heads: attention heads (1 in Ho et al.).
    num_classes: 0 for unconditional; else a learned label embedding with a null row.
    label_dropout: train-mode probability of replacing a label by the null label.
    learn_sigma: double the output channels (IDDPM learned variance).
    fused_norm: GroupNorm+Swish as "none" (nn.GroupNorm, nn.swish), "jnp" or "pallas" (one fused
      op, `fused_norm.group_norm_silu`); parameters and outputs (up to rounding) are the same.
    dtype: activation dtype; parameters are float32.
  """

  ch: int = 128
  ch_mult: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  num_heads: int = 1
  num_classes: int = 0
  label_dropout: float = 0.0
  learn_sigma: bool = False
  fused_norm: str = "none"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
      self,
      x: jax.Array,
      noise_cond: jax.Array,
      label: jax.Array | None = None,
      *,
      train: bool,
      interval_cond: jax.Array | None = None,
  ) -> jax.Array:
    """Raw output [B, H, W, C·(2 if learn_sigma)] for x [B, H, W, C], noise_cond [B], label [B].

    `interval_cond` [B]: a second time input (MeanFlow's t − r), embedded like noise_cond by its
    own layers and added to the embedding; networks called without it have no such layers."""
    layers.check_resolution(x.shape, len(self.ch_mult))
    b, _, _, c_in = x.shape
    emb_ch = 4 * self.ch
    # Ho et al.'s sinusoid: frequencies exp(-ln(1e4) k/(K-1)) (endpoint) in [sin, cos] order.
    emb = embeddings.positional_embedding(noise_cond, self.ch, endpoint=True, flip_sin_to_cos=True)
    emb = nn.Dense(emb_ch, dtype=self.dtype, param_dtype=jnp.float32, name="emb_dense0")(
        emb.astype(self.dtype)
    )
    emb = nn.Dense(emb_ch, dtype=self.dtype, param_dtype=jnp.float32, name="emb_dense1")(
        nn.swish(emb)
    )
    if interval_cond is not None:
      e2 = embeddings.positional_embedding(
          interval_cond, self.ch, endpoint=True, flip_sin_to_cos=True
      )
      e2 = nn.Dense(emb_ch, dtype=self.dtype, param_dtype=jnp.float32, name="interval_dense0")(
          e2.astype(self.dtype)
      )
      emb = emb + nn.Dense(
          emb_ch, dtype=self.dtype, param_dtype=jnp.float32, name="interval_dense1"
      )(nn.swish(e2))
    label = embeddings.module_labels(self, label, b, train=train)
    if label is not None:
      emb = emb + embeddings.lookup(
          self.num_classes + 1, emb_ch, label, dtype=self.dtype, name="label_embed"
      )

    res_block = lambda out_ch, name: ResBlock(
        out_ch, self.dropout, self.dtype, self.fused_norm, name=name
    )
    attn_block = lambda name: AttnBlock(self.num_heads, self.dtype, name=name)
    h = nn.Conv(self.ch, (3, 3), dtype=self.dtype, param_dtype=jnp.float32, name="conv_in")(
        x.astype(self.dtype)
    )
    hs = [h]
    for level, mult in enumerate(self.ch_mult):
      for i in range(self.num_res_blocks):
        h = res_block(self.ch * mult, f"down{level}_res{i}")(hs[-1], emb, train)
        if h.shape[1] in self.attn_resolutions:
          h = attn_block(f"down{level}_attn{i}")(h)
        hs.append(h)
      if level != len(self.ch_mult) - 1:
        hs.append(
            nn.Conv(
                h.shape[-1],
                (3, 3),
                strides=(2, 2),
                dtype=self.dtype,
                param_dtype=jnp.float32,
                name=f"down{level}_downsample",
            )(hs[-1])
        )

    h = hs[-1]
    h = res_block(h.shape[-1], "mid_res0")(h, emb, train)
    h = attn_block("mid_attn")(h)
    h = res_block(h.shape[-1], "mid_res1")(h, emb, train)

    for level in reversed(range(len(self.ch_mult))):
      for i in range(self.num_res_blocks + 1):
        h = res_block(self.ch * self.ch_mult[level], f"up{level}_res{i}")(
            jnp.concatenate([h, hs.pop()], axis=-1), emb, train
        )
        if h.shape[1] in self.attn_resolutions:
          h = attn_block(f"up{level}_attn{i}")(h)
      if level != 0:
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest neighbour
        h = nn.Conv(
            h.shape[-1],
            (3, 3),
            dtype=self.dtype,
            param_dtype=jnp.float32,
            name=f"up{level}_upsample",
        )(h)
    assert not hs, "every skip connection is consumed"

    h = layers.norm_silu(
        h.shape[-1], eps=_EPS, dtype=self.dtype, fused=self.fused_norm, name="norm_out"
    )(h)
    out_ch = c_in * (2 if self.learn_sigma else 1)
    # The output conv runs in float32 whatever `dtype` is: the raw output is what the loss
    # regresses and what samplers integrate, so it keeps float32 resolution (one cheap layer).
    return nn.Conv(
        out_ch,
        (3, 3),
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        name="conv_out",
        kernel_init=_ZERO_INIT,
    )(h.astype(jnp.float32))
