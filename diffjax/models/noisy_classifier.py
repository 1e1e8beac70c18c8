"""A noise-conditional image classifier: the encoder half of a DDPM U-Net with a pooled linear head.

ADM's classifier (Dhariwal & Nichol 2021, §4.1, guided-diffusion `EncoderUNetModel`) is the U-Net's
downsampling trunk with attention pooling; this one keeps the trunk (`unet.ResBlock` with the
noise-level embedding, stride-2 convolutions) and pools by averaging. Called like every diffjax
network, `apply(variables, x [B, H, W, C], noise_cond [B], train=...)`, but returns logits
[B, num_classes]: it is not in `models.MODELS` (whose networks return x's shape) and is built by
`methods.classifier.NoisyClassifier`.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import embeddings, layers, unet


class NoisyClassifier(nn.Module):
  """Attributes: num_classes; ch, ch_mult, num_res_blocks as the U-Net's; dropout; dtype."""

  num_classes: int
  ch: int = 32
  ch_mult: Sequence[int] = (1, 2, 2)
  num_res_blocks: int = 1
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, noise_cond: jax.Array, *, train: bool) -> jax.Array:
    layers.check_resolution(x.shape, len(self.ch_mult))
    emb = embeddings.positional_embedding(noise_cond, self.ch, endpoint=True, flip_sin_to_cos=True)
    emb = nn.Dense(4 * self.ch, dtype=self.dtype, param_dtype=jnp.float32)(emb.astype(self.dtype))
    emb = nn.Dense(4 * self.ch, dtype=self.dtype, param_dtype=jnp.float32)(nn.swish(emb))
    h = nn.Conv(self.ch, (3, 3), dtype=self.dtype, param_dtype=jnp.float32)(x.astype(self.dtype))
    for level, mult in enumerate(self.ch_mult):
      for _ in range(self.num_res_blocks):
        h = unet.ResBlock(self.ch * mult, self.dropout, self.dtype)(h, emb, train)
      if level < len(self.ch_mult) - 1:
        h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), dtype=self.dtype, param_dtype=jnp.float32)(
            h
        )
    h = nn.swish(layers.group_norm(h.shape[-1], dtype=self.dtype)(h))
    h = jnp.mean(h, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32)(h)
