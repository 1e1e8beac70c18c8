"""A token Transformer with adaLN time conditioning (SEDD's DiT-style "DDiT", Lou et al. 2023).

Tokens [B, L] int32 are embedded (table of `vocab_size` rows: the data tokens, plus the mask token
of absorbing processes), rotary position embeddings (Su et al. 2021) are applied to queries and
keys, and pre-LN blocks are modulated by c = SiLU(MLP(sinusoid(cond_scale·noise_cond))):
  x += gate_msa · Attn(LN(x)·(1 + scale_msa) + shift_msa);  x += gate_mlp · MLP(... same ...),
the six modulation vectors a zero-initialised linear map of c (adaLN-Zero), so every block starts
as the identity; the final adaLN + linear layer is zero-initialised too (SEDD `DDitFinalLayer`).
The output is float32 logits [B, L, out_size]. `causal=True` masks attention to the past (the
autoregressive baseline); `time_conditioning=False` feeds zeros as the noise level (MDLM's default).
Activations run in `dtype` (bfloat16 in the configs); parameters are float32. Sizes of SEDD small:
hidden 768, 12 blocks, 12 heads, cond_dim 128 (`configs/*/shakespeare.py:size=paper`).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.models import embeddings


def rotary(x: jax.Array, base: float = 10_000.0) -> jax.Array:
  """Rotary position embedding of x [B, L, H, D] (D even): pairs (x_i, x_{i+D/2}) rotated by
  position·base^(−2i/D), as SEDD's `rotary.apply_rotary_pos_emb` (rotate-half layout)."""
  _, length, _, dim = x.shape
  inv_freq = 1.0 / base ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
  angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq[None, :]  # [L, D/2]
  cos = jnp.concatenate([jnp.cos(angles)] * 2, -1)[None, :, None, :]
  sin = jnp.concatenate([jnp.sin(angles)] * 2, -1)[None, :, None, :]
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  return (x.astype(jnp.float32) * cos + rotated * sin).astype(x.dtype)


def _modulate(x, shift, scale):
  return x * (1 + scale[:, None, :]) + shift[:, None, :]


class Block(nn.Module):
  """Pre-LN block with rotary self-attention and adaLN-Zero modulation; x [B, L, D], c [B, C]."""

  hidden_size: int
  num_heads: int
  mlp_ratio: float
  dropout: float
  causal: bool
  dtype: Any

  @nn.compact
  def __call__(self, x, c, train: bool):
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    b, length, d = x.shape
    heads = self.num_heads
    mod = nn.Dense(6 * d, kernel_init=nn.initializers.zeros_init(), name="adaLN_modulation", **kw)(
        c
    )
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = jnp.split(mod, 6, axis=-1)
    norm = lambda name: nn.LayerNorm(epsilon=1e-5, use_bias=False, name=name, **kw)
    h = _modulate(norm("norm1")(x), shift_msa, scale_msa)
    qkv = nn.Dense(3 * d, use_bias=False, name="attn_qkv", **kw)(h)
    q, k, v = jnp.split(qkv.reshape(b, length, 3 * heads, d // heads), 3, axis=2)
    h = jax.nn.dot_product_attention(rotary(q), rotary(k), v, is_causal=self.causal)
    h = nn.Dense(d, use_bias=False, name="attn_out", **kw)(h.reshape(b, length, d))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    x = x + gate_msa[:, None, :] * h
    h = _modulate(norm("norm2")(x), shift_mlp, scale_mlp)
    h = nn.Dense(int(self.mlp_ratio * d), name="mlp_fc1", **kw)(h)
    h = nn.Dense(d, name="mlp_fc2", **kw)(nn.gelu(h, approximate=True))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return x + gate_mlp[:, None, :] * h


class TokenTransformer(nn.Module):
  """`models.make({"kind": "token_transformer", ...})`; the Method fills in the vocabulary sizes.

  Attributes:
    vocab_size: input token ids are in [0, vocab_size).
    out_size: logits per position (0: vocab_size).
    hidden_size, depth, num_heads, mlp_ratio: the Transformer (head size hidden/heads, even).
    cond_dim: width of the conditioning vector c (SEDD: 128).
    freq_dim: sinusoidal features of the noise level (256).
    cond_scale: noise_cond is multiplied by this before the sinusoids (times t ∈ [0, 1]: 1000).
    dropout: on both residual branches in train mode (SEDD: 0.1).
    causal: causal attention (the autoregressive baseline).
    time_conditioning: False feeds noise level 0 whatever noise_cond is (MDLM's default).
    num_classes, label_dropout: unconditional only (0); kept for the model protocol.
    dtype: activation dtype; parameters float32, logits float32.
  """

  vocab_size: int = 0
  out_size: int = 0
  hidden_size: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_ratio: float = 4.0
  cond_dim: int = 128
  freq_dim: int = 256
  cond_scale: float = 1000.0
  dropout: float = 0.1
  causal: bool = False
  time_conditioning: bool = True
  num_classes: int = 0
  label_dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, noise_cond, label=None, *, train: bool):
    """Logits float32 [B, L, out_size] for tokens x [B, L] int and noise_cond [B]."""
    if self.vocab_size < 1:
      raise ValueError("model.vocab_size must be set (the Method sets it from its vocabulary)")
    if self.num_classes:
      raise ValueError("model.num_classes: the token Transformer is unconditional; set 0")
    if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
      raise ValueError(
          f"model.hidden_size={self.hidden_size} must be num_heads={self.num_heads} times an "
          "even head size (rotary embeddings)"
      )
    del label
    kw = dict(dtype=self.dtype, param_dtype=jnp.float32)
    h = embeddings.lookup(
        self.vocab_size,
        self.hidden_size,
        x.astype(jnp.int32),
        embedding_init=nn.initializers.normal(0.02),
        dtype=self.dtype,
        name="embed",
    )
    cond = noise_cond.astype(jnp.float32) * self.cond_scale
    if not self.time_conditioning:
      cond = jnp.zeros_like(cond)
    feats = embeddings.positional_embedding(cond, self.freq_dim).astype(self.dtype)
    c = nn.Dense(self.cond_dim, name="t_fc1", **kw)(feats)
    c = nn.silu(nn.Dense(self.cond_dim, name="t_fc2", **kw)(nn.silu(c)))
    for i in range(self.depth):
      h = Block(
          self.hidden_size,
          self.num_heads,
          self.mlp_ratio,
          self.dropout,
          self.causal,
          self.dtype,
          name=f"block{i}",
      )(h, c, train)
    zero = nn.initializers.zeros_init()
    shift, scale = jnp.split(
        nn.Dense(2 * self.hidden_size, kernel_init=zero, name="final_adaLN", **kw)(c), 2, axis=-1
    )
    h = _modulate(
        nn.LayerNorm(epsilon=1e-5, use_bias=False, name="final_norm", **kw)(h), shift, scale
    )
    out = nn.Dense(self.out_size or self.vocab_size, kernel_init=zero, name="final_linear", **kw)(h)
    return out.astype(jnp.float32)
