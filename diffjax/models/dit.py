"""DiT: diffusion transformer with adaLN-Zero (Peebles & Xie 2023, arXiv:2212.09748).

Images (or latents) [B, H, W, C] are cut into p x p patches, linearly embedded, given fixed 2-D
sine-cosine position embeddings (MAE, He et al. 2022) and processed by transformer blocks whose
LayerNorms are modulated by the conditioning c = emb(noise level) + emb(label):
  x += gate_msa · Attn(LN(x)·(1 + scale_msa) + shift_msa);  x += gate_mlp · MLP(... same ...),
with the six modulation vectors a linear map of SiLU(c) initialised to zero, so every block starts
as the identity (adaLN-Zero, paper §3.2). The final layer is also zero-initialised. Layer structure
from facebookresearch/DiT `models.py`: S/B/L/XL = (12, 384, 6), (12, 768, 12), (24, 1024, 16),
(28, 1152, 16) for (depth, width, heads), patch 2/4/8; DiT-XL/2 has 675 M parameters.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models import embeddings

# (depth, hidden_size, num_heads) per model size, paper Table 1.
SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
# "XL/2" -> the module attributes of that configuration.
PRESETS = {
    f"{size}/{p}": dict(depth=d, hidden_size=w, num_heads=h, patch_size=p)
    for size, (d, w, h) in SIZES.items()
    for p in (2, 4, 8)
}


def sincos_2d(embed_dim: int, grid_h: int, grid_w: int) -> np.ndarray:
  """Fixed 2-D position embedding [grid_h·grid_w, embed_dim] (MAE's `get_2d_sincos_pos_embed`).

  Token (i, j) (row-major) gets [sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)] with
  ω_k = 10000^(-k/(D/4)), k < D/4: the first half encodes the column, the second the row.
  """
  if embed_dim % 4:
    raise ValueError(
        f"hidden_size must be divisible by 4 for 2-D sin-cos embeddings, got {embed_dim}"
    )
  omega = 1.0 / 10000.0 ** (np.arange(embed_dim // 4, dtype=np.float64) / (embed_dim / 4))
  rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")

  def one_d(pos):
    out = np.outer(pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  return np.concatenate([one_d(cols), one_d(rows)], axis=1).astype(np.float32)


def _modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
  return x * (1 + scale[:, None, :]) + shift[:, None, :]


class DiTBlock(nn.Module):
  """Pre-LN transformer block with adaLN-Zero modulation; x [B, T, D], c [B, D]."""

  hidden_size: int
  num_heads: int
  mlp_ratio: float
  dropout: float
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array, c: jax.Array, train: bool) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    xavier = nn.initializers.xavier_uniform()
    mod = nn.Dense(
        6 * self.hidden_size,
        kernel_init=nn.initializers.zeros_init(),
        name="adaLN_modulation",
        **kw,
    )(nn.silu(c))
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mod, 6, axis=-1)
    norm = lambda name: nn.LayerNorm(epsilon=1e-6, use_scale=False, use_bias=False, name=name, **kw)
    h = _modulate(norm("norm1")(x), shift_msa, scale_msa)
    h = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads,
        qkv_features=self.hidden_size,
        out_features=self.hidden_size,
        kernel_init=xavier,
        dropout_rate=0.0,
        name="attn",
        **kw,
    )(h, h)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    x = x + gate_msa[:, None, :] * h
    h = _modulate(norm("norm2")(x), shift_mlp, scale_mlp)
    h = nn.Dense(int(self.hidden_size * self.mlp_ratio), kernel_init=xavier, name="mlp_fc1", **kw)(
        h
    )
    h = nn.gelu(h, approximate=True)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = nn.Dense(self.hidden_size, kernel_init=xavier, name="mlp_fc2", **kw)(h)
    return x + gate_mlp[:, None, :] * h


class DiT(nn.Module):
  """`models.make({"kind": "dit", "variant": "XL/2", ...})` or explicit sizes.

  Attributes:
    patch_size: p (2, 4 or 8 in the paper); H and W must be divisible by p.
    hidden_size: transformer width D.
    depth: number of blocks.
    num_heads: attention heads.
    mlp_ratio: MLP hidden width / D (4).
    freq_dim: width of the sinusoidal noise-level features (256).
    dropout: dropout on the attention and MLP branches (train mode only; DiT used 0).
    num_classes: 1000 for ImageNet, 0 unconditional. The label table always has a null row
      (DiT adds it only when class_dropout_prob > 0: one more row of D parameters).
    label_dropout: train-mode label-dropout probability (DiT: 0.1).
    learn_sigma: double the output channels (DiT default True: ε then the variance interpolant).
    dtype: activation dtype; parameters are float32.
  """

  patch_size: int = 2
  hidden_size: int = 1152
  depth: int = 28
  num_heads: int = 16
  mlp_ratio: float = 4.0
  freq_dim: int = 256
  dropout: float = 0.0
  num_classes: int = 1000
  label_dropout: float = 0.1
  learn_sigma: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(
      self, x: jax.Array, noise_cond: jax.Array, label: jax.Array | None = None, *, train: bool
  ) -> jax.Array:
    """Raw output [B, H, W, C·(2 if learn_sigma)] for x [B, H, W, C], noise_cond [B], label [B]."""
    b, height, width, c_in = x.shape
    p = self.patch_size
    if height % p or width % p:
      raise ValueError(f"x spatial size {(height, width)} must be divisible by patch_size {p}")
    gh, gw = height // p, width // p
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    xavier = nn.initializers.xavier_uniform()

    # Patch embedding (a p x p stride-p conv, initialised like a linear layer) + fixed positions.
    h = nn.Conv(
        self.hidden_size,
        (p, p),
        strides=(p, p),
        padding="VALID",
        kernel_init=xavier,
        name="x_embedder",
        **kw,
    )(x.astype(self.dtype)).reshape(b, gh * gw, self.hidden_size)
    h = h + jnp.asarray(sincos_2d(self.hidden_size, gh, gw), self.dtype)[None]

    # Conditioning c = t_emb + y_emb.
    feats = embeddings.positional_embedding(noise_cond, self.freq_dim).astype(self.dtype)
    normal = nn.initializers.normal(0.02)
    c = nn.Dense(self.hidden_size, kernel_init=normal, name="t_embedder_fc1", **kw)(feats)
    c = nn.Dense(self.hidden_size, kernel_init=normal, name="t_embedder_fc2", **kw)(nn.silu(c))
    label = embeddings.module_labels(self, label, b, train=train)
    if label is not None:
      c = c + embeddings.lookup(
          self.num_classes + 1,
          self.hidden_size,
          label,
          embedding_init=normal,
          dtype=self.dtype,
          name="y_embedder",
      )

    for i in range(self.depth):
      h = DiTBlock(
          self.hidden_size,
          self.num_heads,
          self.mlp_ratio,
          self.dropout,
          self.dtype,
          name=f"block{i}",
      )(h, c, train)

    out_ch = c_in * (2 if self.learn_sigma else 1)
    zero = nn.initializers.zeros_init()
    shift, scale = jnp.split(
        nn.Dense(2 * self.hidden_size, kernel_init=zero, name="final_adaLN_modulation", **kw)(
            nn.silu(c)
        ),
        2,
        axis=-1,
    )
    h = nn.LayerNorm(epsilon=1e-6, use_scale=False, use_bias=False, name="final_norm", **kw)(h)
    h = nn.Dense(p * p * out_ch, kernel_init=zero, name="final_linear", **kw)(
        _modulate(h, shift, scale)
    )
    # Unpatchify: [B, gh·gw, p·p·C] -> [B, gh·p, gw·p, C].
    h = h.reshape(b, gh, gw, p, p, out_ch).transpose(0, 1, 3, 2, 4, 5)
    return h.reshape(b, height, width, out_ch)
