"""Residual MLP for vector data (toy 2-D sets, Gaussian mixtures, flattened small images).

The noise level enters through Fourier or sinusoidal features followed by a two-layer MLP, the
scheme of the image networks (Ho et al. 2020 §B; Song et al. 2021 NCSN++), and is added to every
residual block, as in the MLP baselines of Tancik et al. 2020 / VDM's toy experiments.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import embeddings


class MLP(nn.Module):
  """Pre-norm residual MLP, conditioned on a [B] noise level and an optional class label.

  Attributes:
    width: hidden width.
    depth: number of residual blocks.
    emb_dim: width of the noise-level features (before the embedding MLP).
    embedding: "fourier" (frozen random frequencies, std `fourier_scale`) or "positional".
    fourier_scale: std of the Fourier frequencies (16 in NCSN++/EDM).
    num_classes: 0 for unconditional; otherwise labels in [0, num_classes], num_classes = null.
    label_dropout: train-mode probability of replacing a label by the null label.
    dropout: dropout rate inside the residual blocks (train mode only, rng "dropout").
    learn_sigma: double the output's last axis (IDDPM learned variance).
    dtype: activation dtype (params stay float32).
  """

  width: int = 256
  depth: int = 4
  emb_dim: int = 64
  embedding: str = "fourier"
  fourier_scale: float = 16.0
  num_classes: int = 0
  label_dropout: float = 0.0
  dropout: float = 0.0
  learn_sigma: bool = False
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
    """Raw output with x's shape ([B, ...]; last axis doubled when learn_sigma).

    Args:
      x: [B, ...] float data.
      noise_cond: [B] noise-level value chosen by the parameterisation.
      label: [B] int32 class labels or None.
      train: enables dropout and label dropout.
      interval_cond: [B] optional second time input (MeanFlow's t − r), embedded like noise_cond
        by its own layers and added to the embedding (absent: no such layers).
    """
    if self.embedding not in ("fourier", "positional"):
      raise ValueError(f"embedding must be 'fourier' or 'positional', got {self.embedding!r}")
    batch = x.shape[0]
    in_shape = x.shape
    if noise_cond.shape != (batch,):
      raise ValueError(f"noise_cond must have shape [{batch}], got {noise_cond.shape}")
    dense = lambda n, name=None: nn.Dense(n, dtype=self.dtype, param_dtype=jnp.float32, name=name)

    if self.embedding == "fourier":
      feats = embeddings.fourier_embedding(
          noise_cond, embeddings.fourier_frequencies(self.emb_dim, scale=self.fourier_scale)
      )
    else:
      feats = embeddings.positional_embedding(noise_cond, self.emb_dim)
    emb = dense(self.width, "emb_dense0")(feats.astype(self.dtype))
    if interval_cond is not None:
      if self.embedding == "fourier":
        feats2 = embeddings.fourier_embedding(
            interval_cond,
            embeddings.fourier_frequencies(self.emb_dim, scale=self.fourier_scale),
        )
      else:
        feats2 = embeddings.positional_embedding(interval_cond, self.emb_dim)
      emb = emb + dense(self.width, "interval_dense0")(feats2.astype(self.dtype))
    label = embeddings.module_labels(self, label, batch, train=train)
    if label is not None:
      # num_classes + 1 rows: the last one is the learned null (unconditional) embedding.
      emb = emb + embeddings.lookup(
          self.num_classes + 1, self.width, label, dtype=self.dtype, name="label_embed"
      )
    emb = dense(self.width, "emb_dense1")(nn.silu(emb))

    h = dense(self.width, "in_dense")(x.reshape(batch, -1).astype(self.dtype))
    for i in range(self.depth):
      r = nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32, name=f"block{i}_norm")(h)
      r = dense(self.width, f"block{i}_dense0")(r) + dense(self.width, f"block{i}_emb")(
          nn.silu(emb)
      )
      r = nn.silu(r)
      r = nn.Dropout(self.dropout, deterministic=not train)(r)
      r = dense(self.width, f"block{i}_dense1")(r)
      h = h + r
    h = nn.silu(nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32, name="out_norm")(h))
    out_shape = in_shape[:-1] + (in_shape[-1] * (2 if self.learn_sigma else 1),)
    out_dim = 1
    for n in out_shape[1:]:
      out_dim *= n
    return dense(out_dim, "out_dense")(h).reshape(out_shape)
