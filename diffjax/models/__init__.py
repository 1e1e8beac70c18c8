"""Flax networks (architecture only): `module = models.make({"kind": ..., **kwargs})`.

Every module is called as `module.apply(variables, x, noise_cond, label=None, train=..., rngs=...)`
with x [B, ...] float, noise_cond [B] float32 and label [B] int32 (label == num_classes is the null
label of classifier-free guidance) and returns the raw output with x's shape (channels doubled when
learn_sigma=True). Dropout and label dropout draw from the rng collection "dropout".

Kinds (defaults = the paper's configuration; parameter counts are tested):
  mlp     residual MLP, Fourier/positional noise features (vector data)
  unet    DDPM U-Net, any size; "ddpm" = the same class (Ho et al. CIFAR-10: 35,746,307 params)
  ddpmpp  DDPM++ as EDM configures it for CIFAR-10 (augment_dim=9: 55,733,891 params)
  ncsnpp  NCSN++ as EDM configures it for CIFAR-10 (augment_dim=9: 56,397,827 params)
  adm     ADM, EDM's class-conditional ImageNet-64 model (295,899,267 params)
  dit     DiT; {"kind": "dit", "variant": "XL/2"} (674,834,720 params + frozen positions)
  token_transformer  tokens [B, L] int32 -> logits [B, L, out_size]: adaLN Transformer (SEDD)
Image models take NHWC inputs whose H and W are divisible by 2^(levels-1) (U-Nets) or the patch
size (DiT); other sizes raise ValueError (no padding). DDPM++/NCSN++/ADM also accept
`augment_labels=[B, augment_dim]` (EDM's augmentation conditioning).
"""

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models import adm, dit, mlp, song_unet, token_transformer, unet

MODELS: dict[str, type[nn.Module]] = {
    "mlp": mlp.MLP,
    "unet": unet.UNet,
    "ddpm": unet.UNet,  # the same class; its defaults are Ho et al.'s CIFAR-10 settings
    "ddpmpp": song_unet.DDPMpp,
    "ncsnpp": song_unet.NCSNpp,
    "adm": adm.ADMUNet,
    "dit": dit.DiT,
    "token_transformer": token_transformer.TokenTransformer,
}

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def make(model_cfg: Mapping[str, Any]) -> nn.Module:
  """Builds the network a config names.

  Args:
    model_cfg: dict or ConfigDict with "kind" (a key of MODELS) and that module's attributes;
      "dtype" may be a string ("bfloat16") or a jnp dtype. For "dit", "variant" ("S/2" ... "XL/8")
      fills depth, hidden_size, num_heads and patch_size (explicit keys override it).

  Returns:
    An unbound Flax module.

  Raises:
    ValueError: unknown kind, or an attribute the module does not have.
  """
  cfg = dict(model_cfg.to_dict() if hasattr(model_cfg, "to_dict") else model_cfg)
  kind = cfg.pop("kind", None)
  if kind not in MODELS:
    raise ValueError(f"model kind must be one of {sorted(MODELS)}, got {kind!r}")
  cls = MODELS[kind]
  if kind == "dit" and "variant" in cfg:
    variant = cfg.pop("variant")
    if variant not in dit.PRESETS:
      raise ValueError(f"variant must be one of {sorted(dit.PRESETS)}, got {variant!r}")
    cfg = {**dit.PRESETS[variant], **cfg}
  allowed = {f.name for f in dataclasses.fields(cls)} - {"parent", "name"}
  unknown = sorted(set(cfg) - allowed)
  if unknown:
    raise ValueError(
        f"unknown argument(s) {unknown} for model kind {kind!r}; allowed: {sorted(allowed)}"
    )
  if isinstance(cfg.get("dtype"), str):
    if cfg["dtype"] not in _DTYPES:
      raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {cfg['dtype']!r}")
    cfg["dtype"] = _DTYPES[cfg["dtype"]]
  for key, value in cfg.items():  # ConfigDict/ml_collections give lists where modules want tuples
    if isinstance(value, list):
      cfg[key] = tuple(value)
  return cls(**cfg)


def param_count(module: nn.Module, x_shape: tuple[int, ...], **call_kwargs) -> int:
  """Number of parameters, via `jax.eval_shape` (no allocation; seconds even for 675 M params).

  Args:
    module: an unbound module from `make`.
    x_shape: input shape [B, ...] (B = 1 is enough).
    **call_kwargs: extra keyword arguments of `__call__` (e.g. label, augment_labels).
  """

  def init(key):
    x = jnp.zeros(x_shape, jnp.float32)
    return module.init(
        {"params": key, "dropout": key},
        x,
        jnp.ones(x_shape[:1], jnp.float32),
        train=False,
        **call_kwargs,
    )

  shapes = jax.eval_shape(init, jax.random.key(0))
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes["params"]))


def random_variables(
    module: nn.Module,
    x: jax.Array,
    noise_cond: jax.Array,
    label: jax.Array | None = None,
    *,
    seed: int = 0,
    **call_kwargs,
):
  """Variables of the right shapes drawn in NumPy: no initialiser is compiled (tests, benchmarks).

  Kernels ~ N(0, 1/fan_in), norm scales 1 + N(0, 0.1²), biases and other vectors N(0, 0.1²),
  embedding tables N(0, 1). Unlike `module.init` nothing is zero (DiT's adaLN-Zero, ADM's output
  conv), so every input visibly reaches the output.
  """
  shapes = jax.eval_shape(
      lambda: module.init(
          {"params": jax.random.key(0)}, x, noise_cond, label, train=False, **call_kwargs
      )
  )
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    z = rng.standard_normal(leaf.shape).astype(np.float32)
    if "scale" in name:
      z = 1.0 + 0.1 * z
    elif "embedding" in name:
      pass
    elif "bias" in name or len(leaf.shape) == 1:
      z = 0.1 * z
    else:
      z = z / np.sqrt(math.prod(leaf.shape[:-1]))
    return jnp.asarray(z, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)
