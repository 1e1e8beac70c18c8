"""Noise-level and class-label embeddings shared by every diffjax network.

Two noise-level embeddings appear in the papers:
  * positional (sinusoidal) features, Vaswani et al. 2017 §3.5, used by DDPM (Ho et al. 2020),
    DDPM++, ADM and DiT;
  * random Fourier features, Tancik et al. 2020 / Song et al. 2021 (NCSN++), frequencies drawn once
    from N(0, scale²) and then frozen.
Label handling follows classifier-free guidance (Ho & Salimans 2022): label == num_classes is the
"null" label, and in train mode a fraction `label_dropout` of labels is replaced by it.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def positional_embedding(
    x: jax.Array,
    num_channels: int,
    *,
    max_positions: float = 10_000.0,
    endpoint: bool = False,
    flip_sin_to_cos: bool = False,
) -> jax.Array:
  """Sinusoidal features [cos(x·f_k), sin(x·f_k)] with f_k = max_positions^(-k/(K-e)).

  K = num_channels/2 and e = 1 if `endpoint` else 0. endpoint=True: DDPM (Ho et al.,
  diffusion_tf `get_timestep_embedding` divides by K - 1) and EDM's DDPM++; endpoint=False: ADM
  (guided-diffusion, EDM's DhariwalUNet) and DiT, frequency exp(-ln(10000)·k/K), the Transformer
  encoding of Vaswani et al. 2017 §3.5.

  Args:
    x: [B] noise levels (or times) in whatever units the parameterisation conditions on.
    num_channels: even output width.
    max_positions: the period scale (10000 in all the papers).
    endpoint: whether the lowest frequency is exactly 1/max_positions.
    flip_sin_to_cos: put the sin half first, [sin, cos] (DDPM; EDM's DDPM++ and NCSN++ swap to it),
      instead of [cos, sin] (ADM/guided-diffusion, EDM's DhariwalUNet, DiT). It only permutes
      channels, so it matters only when loading reference weights.

  Returns:
    [B, num_channels] float32.
  """
  if num_channels % 2:
    raise ValueError(f"num_channels must be even, got {num_channels}")
  half = num_channels // 2
  k = jnp.arange(half, dtype=jnp.float32) / (half - (1 if endpoint else 0))
  freqs = (1.0 / max_positions) ** k  # [K]
  angles = x.astype(jnp.float32)[:, None] * freqs[None, :]  # [B, K]
  parts = (
      [jnp.sin(angles), jnp.cos(angles)] if flip_sin_to_cos else [jnp.cos(angles), jnp.sin(angles)]
  )
  return jnp.concatenate(parts, axis=-1)


def fourier_frequencies(num_channels: int, *, scale: float = 16.0, seed: int = 0) -> jax.Array:
  """Frozen random frequencies f ~ N(0, scale²), [num_channels/2] (NCSN++: scale 16, EDM default).

  They are a deterministic function of `seed`, so they are not stored as parameters (EDM keeps them
  as a non-trainable buffer; its parameter counts exclude them, and so do ours).
  """
  if num_channels % 2:
    raise ValueError(f"num_channels must be even, got {num_channels}")
  return scale * jax.random.normal(jax.random.key(seed), (num_channels // 2,), jnp.float32)


def fourier_embedding(x: jax.Array, freqs: jax.Array) -> jax.Array:
  """Random Fourier features [cos(2π f x), sin(2π f x)] (Tancik et al. 2020; NCSN++).

  Args:
    x: [B] noise levels.
    freqs: [K] frequencies from `fourier_frequencies`.

  Returns:
    [B, 2K] float32.
  """
  angles = 2.0 * math.pi * x.astype(jnp.float32)[:, None] * freqs[None, :]
  return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def resolve_labels(
    label: jax.Array | None,
    batch_size: int,
    *,
    num_classes: int,
    label_dropout: float,
    train: bool,
    rng_fn,
) -> jax.Array | None:
  """Labels the network actually conditions on, with classifier-free-guidance dropout.

  Args:
    label: [B] int32 in [0, num_classes], or None. The value num_classes is the null label.
    batch_size: B.
    num_classes: 0 for an unconditional network (then the result is None).
    label_dropout: probability, in train mode only, of replacing a label by the null label
      (Ho & Salimans 2022; EDM's `label_dropout`, DiT's `class_dropout_prob`).
    train: whether the network runs in train mode.
    rng_fn: zero-argument callable returning a key (a module's `make_rng("dropout")`); called only
      when dropout is actually applied.

  Returns:
    [B] int32 labels (None when num_classes == 0). A missing label means "all null".
  """
  if num_classes <= 0:
    return None
  if not 0.0 <= label_dropout < 1.0:
    raise ValueError(f"label_dropout must be in [0, 1), got {label_dropout}")
  if label is None:
    return jnp.full((batch_size,), num_classes, jnp.int32)
  label = label.astype(jnp.int32)
  if train and label_dropout > 0.0:
    drop = jax.random.bernoulli(rng_fn(), label_dropout, (batch_size,))
    label = jnp.where(drop, num_classes, label)
  return label


def module_labels(module, label: jax.Array | None, batch_size: int, *, train: bool):
  """`resolve_labels` with a network's own `num_classes`, `label_dropout` and "dropout" rng."""
  return resolve_labels(
      label,
      batch_size,
      num_classes=module.num_classes,
      label_dropout=module.label_dropout,
      train=train,
      rng_fn=lambda: module.make_rng("dropout"),
  )


def lookup(
    num_embeddings: int,
    features: int,
    ids: jax.Array,
    *,
    dtype,
    name: str,
    embedding_init=nn.linear.default_embed_init,
) -> jax.Array:
  """`nn.Embed` rows for integer `ids`, looked up in float32 and cast to the activation `dtype`.

  Call from inside a compact module (the table is a submodule `name`, parameter "embedding", as
  nn.Embed). Forward values equal a lookup in a `dtype` copy of the table (rounding commutes with
  the gather); the difference is the backward pass: the gradient of a lookup is a scatter-add of
  the output cotangents into the table's rows, and with `dtype` bfloat16 that scatter-add
  accumulates in bfloat16 (a sum of 4,096 terms of size 1 is then off by whole units) and runs on
  GPUs as compare-and-swap loops. For the token Transformer (97 rows, 16,384 tokens per batch) that
  one kernel took 71 of the 74 ms of an H200 training step (benchmarks/results/
  train_throughput.md); in float32 it is native atomics.
  """
  table = nn.Embed(
      num_embeddings,
      features,
      embedding_init=embedding_init,
      dtype=jnp.float32,
      param_dtype=jnp.float32,
      name=name,
  )
  return table(ids).astype(dtype)
