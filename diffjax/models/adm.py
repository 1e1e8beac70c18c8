"""ADM U-Net (Dhariwal & Nichol 2021, arXiv:2105.05233) in EDM's ImageNet-64 configuration.

Structure as NVlabs/edm `training/networks.py:DhariwalUNet` re-implements guided-diffusion's
`unet.py` (Karras et al. 2022, App. F.2): scale-shift ("adaptive group") normalisation of the
embedding, 64 channels per attention head at 32, 16 and 8 pixels, residual up/down-sampling blocks,
3 blocks per level, width 192 with multipliers (1, 2, 3, 4), class labels through a bias-free
linear map added to the embedding. Class-conditional ImageNet-64 has about 296 M parameters
(EDM paper, Table 7). With learn_sigma=True (IDDPM/ADM's learned variance) the output doubles.

`fused_norm="jnp"|"pallas"` runs each GroupNorm → SiLU pair as one op (`fused_norm.GroupNormSiLU`,
same parameters, outputs equal up to rounding); the default "none" keeps nn.GroupNorm + nn.silu.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import edm_blocks, embeddings, layers


class ADMUNet(nn.Module):
  """`models.make({"kind": "adm", ...})`; defaults are EDM's class-conditional ImageNet-64 model.

  Attributes:
    model_channels: base width (192).
    channel_mult: per-level multipliers ((1, 2, 3, 4)).
    channel_mult_emb: embedding width = model_channels * this (4).
    num_blocks: residual blocks per level (3).
    attn_resolutions: spatial sizes with attention ((32, 16, 8)).
    channels_per_head: attention head width (64).
    dropout: dropout rate (0.1).
    augment_dim: augmentation-label width (0 for ImageNet).
    num_classes: 1000 for ImageNet; 0 unconditional. Null label num_classes adds nothing.
    label_dropout: train-mode probability of replacing a label by the null label.
    learn_sigma: double the output channels.
    fused_norm: GroupNorm+SiLU as "none" (nn.GroupNorm, nn.silu), "jnp" or "pallas" (one fused
      op, `fused_norm.group_norm_silu`; "pallas" needs C/32 a power of two, else it runs "jnp");
      parameters and outputs (up to rounding) are the same.
    dtype: activation dtype; parameters are float32.
  """

  model_channels: int = 192
  channel_mult: Sequence[int] = (1, 2, 3, 4)
  channel_mult_emb: int = 4
  num_blocks: int = 3
  attn_resolutions: Sequence[int] = (32, 16, 8)
  channels_per_head: int = 64
  dropout: float = 0.1
  augment_dim: int = 0
  num_classes: int = 1000
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
      augment_labels: jax.Array | None = None,
  ) -> jax.Array:
    """Raw output [B, H, W, C·(2 if learn_sigma)] for x [B, H, W, C], noise_cond [B], label [B]."""
    layers.check_resolution(x.shape, len(self.channel_mult))
    b, height, _, c_in = x.shape
    emb_ch = self.model_channels * self.channel_mult_emb
    # EDM: kaiming_uniform · sqrt(1/3) = U(±1/sqrt(fan_in)), PyTorch's default; zero last layers.
    init = edm_blocks.scaled_init(3**-0.5, "kaiming_uniform")
    zero = nn.initializers.zeros_init()
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    block = lambda out, name, **extra: edm_blocks.EDMBlock(
        out,
        channels_per_head=self.channels_per_head,
        dropout=self.dropout,
        adaptive_scale=True,
        init=init,
        init_zero=zero,
        fused_norm=self.fused_norm,
        dtype=self.dtype,
        name=name,
        **extra,
    )

    emb = embeddings.positional_embedding(noise_cond, self.model_channels).astype(self.dtype)
    if self.augment_dim:
      aug = (
          jnp.zeros((b, self.augment_dim), self.dtype)
          if augment_labels is None
          else augment_labels.astype(self.dtype)
      )
      emb = emb + nn.Dense(
          self.model_channels, use_bias=False, kernel_init=zero, name="map_augment", **kw
      )(aug)
    emb = nn.silu(nn.Dense(emb_ch, kernel_init=init, name="map_layer0", **kw)(emb))
    emb = nn.Dense(emb_ch, kernel_init=init, name="map_layer1", **kw)(emb)
    label = embeddings.module_labels(self, label, b, train=train)
    if label is not None:
      # A bias-free map of the one-hot label (rows ~ N(0, 1)); the null label is the zero vector.
      emb = emb + nn.Dense(
          emb_ch, use_bias=False, kernel_init=nn.initializers.normal(1.0), name="map_label", **kw
      )(jax.nn.one_hot(label, self.num_classes, dtype=self.dtype))
    emb = nn.silu(emb)

    h = x.astype(self.dtype)
    skips = []
    for level, mult in enumerate(self.channel_mult):
      res = height >> level
      if level == 0:
        h = nn.Conv(
            self.model_channels * mult, (3, 3), kernel_init=init, name=f"enc{res}_conv", **kw
        )(h)
      else:
        h = block(h.shape[-1], f"enc{res}_down", down=True)(h, emb, train)
      skips.append(h)
      for i in range(self.num_blocks):
        h = block(
            self.model_channels * mult, f"enc{res}_block{i}", attention=res in self.attn_resolutions
        )(h, emb, train)
        skips.append(h)

    for level in reversed(range(len(self.channel_mult))):
      res, width = height >> level, self.model_channels * self.channel_mult[level]
      if level == len(self.channel_mult) - 1:
        h = block(h.shape[-1], f"dec{res}_in0", attention=True)(h, emb, train)
        h = block(h.shape[-1], f"dec{res}_in1")(h, emb, train)
      else:
        h = block(h.shape[-1], f"dec{res}_up", up=True)(h, emb, train)
      for i in range(self.num_blocks + 1):
        h = block(width, f"dec{res}_block{i}", attention=res in self.attn_resolutions)(
            jnp.concatenate([h, skips.pop()], axis=-1), emb, train
        )
    assert not skips, "every skip connection is consumed"
    h = layers.norm_silu(h.shape[-1], dtype=self.dtype, fused=self.fused_norm, name="out_norm")(h)
    out_ch = c_in * (2 if self.learn_sigma else 1)
    return nn.Conv(out_ch, (3, 3), kernel_init=zero, name="out_conv", **kw)(h)
