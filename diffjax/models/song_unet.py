"""DDPM++ and NCSN++ (Song et al. 2021, arXiv:2011.13456) as EDM configures them for CIFAR-10.

The layer structure follows NVlabs/edm `training/networks.py:SongUNet` (Karras et al. 2022,
App. F.2, Table 7), which re-implements score_sde's `ddpm.py`/`ncsnpp.py`:
  * DDPM++: positional noise embedding, box resampling (1, 1), "standard" encoder;
  * NCSN++: random Fourier embedding (scale 16) twice as wide, FIR resampling (1, 3, 3, 1), and a
    "residual" encoder that carries a progressively downsampled input branch;
  * both: residual sums scaled by 1/√2, one attention head at 16x16, 4 blocks per resolution,
    channel_mult (2, 2, 2), width 128, embedding width 512, dropout 0.13 (EDM CIFAR-10).
Augmentation labels (EDM's non-leaky augmentation, 9 numbers per image) enter through a bias-free
linear map added to the noise embedding. DDPM++ at these settings, unconditional, with
augment_dim=9 has exactly 55,733,891 parameters, the count NVlabs/edm reports.

`fused_norm="jnp"|"pallas"` runs each GroupNorm → SiLU pair as one op (`fused_norm.GroupNormSiLU`,
same parameters, outputs equal up to rounding); the default "none" keeps nn.GroupNorm + nn.silu.
"""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import edm_blocks, embeddings, layers


class SongUNet(nn.Module):
  """DDPM++ / NCSN++ U-Net; `models.make({"kind": "ddpmpp" | "ncsnpp", ...})`.

  Attributes:
    model_channels: base width (128).
    channel_mult: width multiplier per resolution level ((2, 2, 2) for CIFAR-10).
    channel_mult_emb: embedding width = model_channels * this (4).
    channel_mult_noise: noise-feature width = model_channels * this (1 DDPM++, 2 NCSN++).
    num_blocks: residual blocks per level (4; "deep" variants 8).
    attn_resolutions: spatial sizes with self-attention ((16,)).
    dropout: dropout rate (EDM CIFAR-10: 0.13).
    embedding_type: "positional" (DDPM++) or "fourier" (NCSN++).
    encoder_type: "standard" (DDPM++), "skip" or "residual" (NCSN++).
    decoder_type: "standard" (both) or "skip".
    resample_filter: (1, 1) (DDPM++) or (1, 3, 3, 1) (NCSN++).
    fourier_freqs: NCSN++'s frozen frequencies [noise_ch / 2], None = the N(0, 16²) draw of
      `embeddings.fourier_frequencies` (seed 0). EDM draws its own; `convert.model_config` copies
      them from a state_dict so that EDM's weights give EDM's function.
    augment_dim: augmentation-label width (9 with EDM augmentation, 0 without).
    num_classes: 0 = unconditional; labels enter as scaled one-hot vectors through a linear map, so
      the null label num_classes (all-zero one-hot) gives exactly EDM's dropped-label input.
    label_dropout: train-mode probability of replacing a label by the null label.
    learn_sigma: double the output channels.
    fused_norm: GroupNorm+SiLU as "none" (nn.GroupNorm, nn.silu), "jnp" or "pallas" (one fused
      op, `fused_norm.group_norm_silu`); parameters and outputs (up to rounding) are the same.
    dtype: activation dtype; parameters are float32.
  """

  model_channels: int = 128
  channel_mult: Sequence[int] = (2, 2, 2)
  channel_mult_emb: int = 4
  channel_mult_noise: int = 1
  num_blocks: int = 4
  attn_resolutions: Sequence[int] = (16,)
  dropout: float = 0.13
  embedding_type: str = "positional"
  encoder_type: str = "standard"
  decoder_type: str = "standard"
  resample_filter: Sequence[float] = (1, 1)
  fourier_freqs: Sequence[float] | None = None
  augment_dim: int = 0
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
      augment_labels: jax.Array | None = None,
      interval_cond: jax.Array | None = None,
  ) -> jax.Array:
    """Raw output [B, H, W, C·(2 if learn_sigma)].

    Args:
      x: [B, H, W, C] network input (already scaled by the parameterisation's c_in).
      noise_cond: [B] noise conditioning (EDM: c_noise = ln(σ)/4).
      label: [B] int32 labels in [0, num_classes] or None.
      train: dropout and label dropout on.
      augment_labels: [B, augment_dim] augmentation parameters, or None (= zeros, no augmentation).
      interval_cond: [B] a second time input (CTM's s, MeanFlow's t − r, guided PD's w), embedded
        like noise_cond and mapped by its own `interval_map` layer into the sum of conditionings
        (as EDM adds labels and augmentation); networks called without it have no such layer.
    """
    if self.embedding_type not in ("positional", "fourier"):
      raise ValueError(
          f"embedding_type must be 'positional' or 'fourier', got {self.embedding_type!r}"
      )
    if self.encoder_type not in ("standard", "skip", "residual"):
      raise ValueError(
          f"encoder_type must be 'standard', 'skip' or 'residual', got {self.encoder_type!r}"
      )
    if self.decoder_type not in ("standard", "skip"):
      raise ValueError(f"decoder_type must be 'standard' or 'skip', got {self.decoder_type!r}")
    layers.check_resolution(x.shape, len(self.channel_mult))
    b, height, _, c_in = x.shape
    out_ch = c_in * (2 if self.learn_sigma else 1)
    emb_ch = self.model_channels * self.channel_mult_emb
    noise_ch = self.model_channels * self.channel_mult_noise
    xavier = edm_blocks.scaled_init(1.0, "xavier_uniform")
    init_zero = edm_blocks.scaled_init(1e-5, "xavier_uniform")
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    block = lambda out, name, **extra: edm_blocks.EDMBlock(
        out,
        num_heads=1,
        dropout=self.dropout,
        skip_scale=math.sqrt(0.5),
        eps=1e-6,
        resample_filter=tuple(self.resample_filter),
        resample_proj=True,
        adaptive_scale=False,
        fused_norm=self.fused_norm,
        init=xavier,
        init_zero=init_zero,
        init_attn=edm_blocks.scaled_init(math.sqrt(0.2), "xavier_uniform"),
        dtype=self.dtype,
        name=name,
        **extra,
    )

    # Mapping network. EDM feeds [sin, cos] for both embeddings.
    def embed(cond):
      if self.embedding_type == "positional":
        e = embeddings.positional_embedding(cond, noise_ch, endpoint=True, flip_sin_to_cos=True)
      else:
        e = embeddings.fourier_embedding(cond, noise_frequencies(self))
        e = jnp.concatenate([e[:, noise_ch // 2 :], e[:, : noise_ch // 2]], axis=-1)
      return e.astype(self.dtype)

    emb = embed(noise_cond)
    if interval_cond is not None:
      emb = emb + nn.Dense(noise_ch, kernel_init=xavier, name="interval_map", **kw)(
          embed(interval_cond)
      )
    label = embeddings.module_labels(self, label, b, train=train)
    if label is not None:
      one_hot = jax.nn.one_hot(label, self.num_classes, dtype=self.dtype)  # null row -> zeros
      emb = emb + nn.Dense(noise_ch, kernel_init=xavier, name="map_label", **kw)(
          one_hot * math.sqrt(self.num_classes)
      )
    if self.augment_dim:
      aug = (
          jnp.zeros((b, self.augment_dim), self.dtype)
          if augment_labels is None
          else augment_labels.astype(self.dtype)
      )
      emb = emb + nn.Dense(noise_ch, use_bias=False, kernel_init=xavier, name="map_augment", **kw)(
          aug
      )
    emb = nn.silu(nn.Dense(emb_ch, kernel_init=xavier, name="map_layer0", **kw)(emb))
    emb = nn.silu(nn.Dense(emb_ch, kernel_init=xavier, name="map_layer1", **kw)(emb))

    # Encoder.
    h, aux = x.astype(self.dtype), x.astype(self.dtype)
    skips = []
    for level, mult in enumerate(self.channel_mult):
      res = height >> level
      if level == 0:
        h = nn.Conv(self.model_channels, (3, 3), kernel_init=xavier, name=f"enc{res}_conv", **kw)(h)
        skips.append(h)
      else:
        h = block(h.shape[-1], f"enc{res}_down", down=True)(h, emb, train)
        skips.append(h)
        if self.encoder_type == "skip":
          aux = layers.downsample(aux, self.resample_filter)
          h = skips[-1] = h + nn.Conv(
              h.shape[-1], (1, 1), kernel_init=xavier, name=f"enc{res}_aux_skip", **kw
          )(aux)
        elif self.encoder_type == "residual":
          # Fused conv + FIR downsample: 3x3 conv padded by 1 + (k-1)//2, then unpadded filtering.
          pad = 1 + (len(self.resample_filter) - 1) // 2
          r = nn.Conv(
              h.shape[-1],
              (3, 3),
              padding=[(pad, pad)] * 2,
              kernel_init=xavier,
              name=f"enc{res}_aux_residual",
              **kw,
          )(aux)
          r = layers.downsample(r, self.resample_filter, pad=0)
          h = skips[-1] = aux = (h + r) / math.sqrt(2.0)
      for i in range(self.num_blocks):
        h = block(
            self.model_channels * mult, f"enc{res}_block{i}", attention=res in self.attn_resolutions
        )(h, emb, train)
        skips.append(h)

    # Decoder.
    aux = None
    last = len(self.channel_mult) - 1
    for level in reversed(range(len(self.channel_mult))):
      res, width = height >> level, self.model_channels * self.channel_mult[level]
      if level == last:
        h = block(h.shape[-1], f"dec{res}_in0", attention=True)(h, emb, train)
        h = block(h.shape[-1], f"dec{res}_in1")(h, emb, train)
      else:
        h = block(h.shape[-1], f"dec{res}_up", up=True)(h, emb, train)
      for i in range(self.num_blocks + 1):
        h = block(
            width,
            f"dec{res}_block{i}",
            attention=i == self.num_blocks and res in self.attn_resolutions,
        )(jnp.concatenate([h, skips.pop()], axis=-1), emb, train)
      if self.decoder_type == "skip" or level == 0:
        if self.decoder_type == "skip" and level < last:
          aux = layers.upsample(aux, self.resample_filter)
        norm = layers.norm_silu(
            h.shape[-1],
            eps=1e-6,
            dtype=self.dtype,
            fused=self.fused_norm,
            name=f"dec{res}_aux_norm",
        )
        t = nn.Conv(out_ch, (3, 3), kernel_init=init_zero, name=f"dec{res}_aux_conv", **kw)(norm(h))
        aux = t if aux is None else t + aux
    assert not skips, "every skip connection is consumed"
    return aux


def noise_frequencies(module: SongUNet) -> jax.Array:
  """The Fourier-embedding frequencies [noise_ch / 2] a "fourier" SongUNet uses (float32).

  Raises:
    ValueError: fourier_freqs of the wrong length.
  """
  num = module.model_channels * module.channel_mult_noise // 2
  if module.fourier_freqs is None:
    return embeddings.fourier_frequencies(2 * num, scale=16.0)
  if len(module.fourier_freqs) != num:
    raise ValueError(
        f"fourier_freqs must have model_channels * channel_mult_noise / 2 = {num} entries, "
        f"got {len(module.fourier_freqs)}"
    )
  return jnp.asarray(module.fourier_freqs, jnp.float32)


class DDPMpp(SongUNet):
  """DDPM++ at EDM's CIFAR-10 settings (`kind: "ddpmpp"`); pass augment_dim=9 with augmentation."""


class NCSNpp(SongUNet):
  """NCSN++ at EDM's CIFAR-10 settings (`kind: "ncsnpp"`)."""

  channel_mult_noise: int = 2
  embedding_type: str = "fourier"
  encoder_type: str = "residual"
  resample_filter: Sequence[float] = (1, 3, 3, 1)
