"""PyTorch state_dicts of the reference DiT and DDPM U-Net -> diffjax Flax parameter trees.

The conversion is pure NumPy: a state_dict is any mapping {name: array} (e.g.
`{k: v.numpy() for k, v in torch.load(path).items()}`, or an npz), so no torch is needed here.
Two references are supported, with their own parameter names:
  * `dit_params`: facebookresearch/DiT `models.py` `DiT` (Peebles & Xie 2023, arXiv:2212.09748),
    into `diffjax.models.dit.DiT`;
  * `ddpm_unet_params`: pesser/pytorch_diffusion `Model`, the PyTorch port of Ho et al.'s
    `diffusion_tf/models/unet.py` (arXiv:2006.11239) that loads the official DDPM checkpoints,
    into `diffjax.models.unet.UNet`.
Layout rules (PyTorch -> Flax): Linear weight [out, in] -> kernel [in, out]; Conv2d weight
[out, in, kh, kw] -> kernel [kh, kw, in, out] (NCHW -> NHWC); a 1x1 Conv2d used as a per-pixel
linear map -> Dense kernel [in, out]; GroupNorm weight/bias -> scale/bias; DiT's fused qkv Linear
[3D, D] (rows ordered q, k, v, then head, then head channel, as timm's `Attention`) -> Flax
MultiHeadDotProductAttention query/key/value kernels [D, heads, D/heads].

Both converters take `like`, our parameter tree (arrays or `jax.ShapeDtypeStruct`s, e.g. from
`param_shapes`), which fixes the structure; every leaf of `like` must come from exactly one entry,
and every entry must be used. Missing, unexpected or misshaped entries raise one ValueError that
names them all.
"""

from collections.abc import Callable, Mapping, Sequence
import re
from typing import Any

from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models import dit

Path = tuple[str, ...]


def param_shapes(module, x_shape: Sequence[int], *, with_label: bool | None = None) -> dict:
  """Our parameter tree as `jax.ShapeDtypeStruct`s (no computation): the `like` of the converters.

  Args:
    module: an unbound diffjax network (`models.make(cfg)`).
    x_shape: input shape [B, H, W, C].
    with_label: pass labels at init (default: when the module has `num_classes` > 0).

  Returns:
    The "params" collection of `module.init`, as shapes.
  """
  if with_label is None:
    with_label = getattr(module, "num_classes", 0) > 0
  b = x_shape[0]
  label = jnp.zeros((b,), jnp.int32) if with_label else None
  init = lambda: module.init(
      {"params": jax.random.key(0)}, jnp.zeros(x_shape), jnp.zeros((b,)), label, train=False
  )
  return jax.eval_shape(init)["params"]


# -- Leaf transforms ------------------------------------------------------------------------------


def _kernel(w: np.ndarray, want_ndim: int) -> np.ndarray:
  """PyTorch weight -> Flax kernel.

  Linear [o, i] -> [i, o]; Conv2d [o, i, kh, kw] -> [kh, kw, i, o]; a 1x1 Conv2d that our model
  runs as a Dense (want_ndim 2) -> [i, o].
  """
  if w.ndim == 2:
    return w.T
  if w.ndim == 4 and want_ndim == 2 and w.shape[2:] == (1, 1):
    return w[:, :, 0, 0].T
  if w.ndim == 4:
    return w.transpose(2, 3, 1, 0)
  return w  # wrong rank: left as is, so the shape check reports it


# A rule maps (our leaf path, its shape) to (PyTorch key, transform: PyTorch array -> our array);
# it raises KeyError for a leaf the reference has no counterpart for.
Rule = Callable[[Path, tuple[int, ...]], tuple[str, Callable[[np.ndarray], np.ndarray]]]


def _convert(
    state_dict: Mapping[str, Any],
    like: Mapping[str, Any],
    rule: Rule,
    *,
    extra_used: Sequence[str] = (),
    what: str,
) -> dict:
  """Applies `rule` to every leaf of `like`; collects missing/misshaped/unexpected, then raises."""
  sd = {k: np.asarray(v) for k, v in state_dict.items()}
  out, used, missing, misshaped = {}, set(extra_used), [], []
  for path, leaf in sorted(traverse_util.flatten_dict(like).items()):
    want = tuple(leaf.shape)
    try:
      key, transform = rule(path, want)
    except KeyError as e:  # a Flax module the reference does not have
      missing.append(f"{'/'.join(path)} (no {what} counterpart: {e.args[0]})")
      continue
    if key not in sd:
      missing.append(f"{key} (for {'/'.join(path)})")
      continue
    used.add(key)
    value = transform(sd[key])
    if tuple(value.shape) != want:
      misshaped.append(
          f"{key}: shape {tuple(sd[key].shape)} gives {tuple(value.shape)}, but {'/'.join(path)} "
          f"needs {want}"
      )
      continue
    out[path] = np.asarray(value, dtype=np.float32)  # views where possible: no copy of big weights
  unexpected = sorted(set(sd) - used)
  problems = [
      f"{name} {what} entries: {', '.join(items)}"
      for name, items in (
          ("missing", missing),
          ("unexpected", unexpected),
          ("misshaped", misshaped),
      )
      if items
  ]
  if problems:
    raise ValueError("state_dict does not match the diffjax parameters: " + "; ".join(problems))
  return traverse_util.unflatten_dict(out)


def _leaf_rule(torch_prefix: str, leaf: str, want: tuple[int, ...]):
  """kernel/bias of a Linear or Conv2d, scale/bias of a GroupNorm, embedding of an Embedding."""
  if leaf == "kernel":
    return f"{torch_prefix}.weight", lambda w: _kernel(w, len(want))
  if leaf == "bias":
    return f"{torch_prefix}.bias", lambda w: w
  if leaf in ("scale", "embedding"):
    return f"{torch_prefix}.weight", lambda w: w
  raise KeyError(leaf)


# -- DiT ------------------------------------------------------------------------------------------

_DIT_MODULES = {
    "x_embedder": "x_embedder.proj",
    "t_embedder_fc1": "t_embedder.mlp.0",
    "t_embedder_fc2": "t_embedder.mlp.2",
    "y_embedder": "y_embedder.embedding_table",
    "final_adaLN_modulation": "final_layer.adaLN_modulation.1",
    "final_linear": "final_layer.linear",
}
_DIT_BLOCK_MODULES = {
    "adaLN_modulation": "adaLN_modulation.1",
    "mlp_fc1": "mlp.fc1",
    "mlp_fc2": "mlp.fc2",
}
_QKV = {"query": 0, "key": 1, "value": 2}


def _dit_rule(path: Path, want: tuple[int, ...]):
  if len(path) == 2:
    return _leaf_rule(_DIT_MODULES[path[0]], path[1], want)
  match = re.fullmatch(r"block(\d+)", path[0])
  if match is None:
    raise KeyError(path[0])
  block = f"blocks.{match.group(1)}"
  if len(path) == 3:
    return _leaf_rule(f"{block}.{_DIT_BLOCK_MODULES[path[1]]}", path[2], want)
  if path[1] != "attn" or len(path) != 4:
    raise KeyError("/".join(path))
  sub, leaf = path[2], path[3]
  if sub == "out":  # proj Linear [D, D] -> [heads, D/heads, D]
    if leaf == "kernel":
      return f"{block}.attn.proj.weight", lambda w: (
          w.T.reshape(want) if w.shape == (want[2], want[0] * want[1]) else w
      )
    return f"{block}.attn.proj.bias", lambda w: w
  i = _QKV[sub]  # fused qkv: rows [i·D, (i+1)·D) belong to q, k or v
  if leaf == "kernel":  # want [D, heads, D/heads]
    d = want[0]
    return f"{block}.attn.qkv.weight", lambda w: (
        w[i * d : (i + 1) * d].T.reshape(want) if w.shape == (3 * d, d) else w
    )
  d = int(np.prod(want))  # bias [heads, D/heads]
  return f"{block}.attn.qkv.bias", lambda w: (
      w[i * d : (i + 1) * d].reshape(want) if w.shape == (3 * d,) else w
  )


def dit_params(state_dict: Mapping[str, Any], like: Mapping[str, Any]) -> dict:
  """Converts a facebookresearch/DiT `DiT.state_dict()` into `diffjax.models.dit.DiT` params.

  The reference's `pos_embed` is a frozen buffer-like tensor that we compute instead: it is checked
  against `dit.sincos_2d` (|diff| ≤ 1e-5) and otherwise dropped. The label table must have the
  classifier-free-guidance null row (DiT has it when class_dropout_prob > 0; ours always does).

  Args:
    state_dict: {name: array} with PyTorch names and layouts.
    like: our params tree (or shapes) for the same configuration, e.g. `param_shapes(module, ...)`.

  Returns:
    Nested dict of float32 NumPy arrays, usable as `module.apply({"params": ...}, ...)`.

  Raises:
    ValueError: naming every missing, unexpected or misshaped entry, or a `pos_embed` that is not
      DiT's fixed sin-cos table.
  """
  extra = []
  if "pos_embed" in state_dict:
    pos = np.asarray(state_dict["pos_embed"])
    tokens, width = pos.shape[-2:] if pos.ndim == 3 else (0, 0)
    side = int(round(np.sqrt(tokens)))
    if pos.ndim != 3 or pos.shape[0] != 1 or tokens == 0 or side * side != tokens or width % 4:
      raise ValueError(f"pos_embed has shape {pos.shape}; DiT's is [1, side², hidden_size]")
    err = np.max(np.abs(pos[0] - dit.sincos_2d(width, side, side)))
    if err > 1e-5:
      raise ValueError(
          f"pos_embed differs from the fixed 2-D sin-cos embedding by {err:.3g}; diffjax's DiT "
          "computes that table and cannot load a different one"
      )
    extra.append("pos_embed")
  return _convert(state_dict, like, _dit_rule, extra_used=extra, what="DiT")


# -- DDPM U-Net -----------------------------------------------------------------------------------

_RES = {
    "norm0": "norm1",
    "conv0": "conv1",
    "emb_proj": "temb_proj",
    "norm1": "norm2",
    "conv1": "conv2",
    "shortcut": "nin_shortcut",
}
_ATTN = {"norm": "norm", "q": "q", "k": "k", "v": "v", "proj": "proj_out"}
_TOP = {
    "emb_dense0": ("temb.dense.0", None),
    "emb_dense1": ("temb.dense.1", None),
    "conv_in": ("conv_in", None),
    "norm_out": ("norm_out", None),
    "conv_out": ("conv_out", None),
    "mid_res0": ("mid.block_1", _RES),
    "mid_attn": ("mid.attn_1", _ATTN),
    "mid_res1": ("mid.block_2", _RES),
}


def _unet_module(name: str) -> tuple[str, dict[str, str] | None]:
  """Our top-level module name -> (PyTorch prefix, sub-layer names or None for a leaf layer)."""
  match = re.fullmatch(r"(down|up)(\d+)_(res|attn)(\d+)", name)
  if match:
    side, level, kind, i = match.groups()
    prefix = f"{side}.{level}.{'block' if kind == 'res' else 'attn'}.{i}"
    return prefix, _RES if kind == "res" else _ATTN
  match = re.fullmatch(r"(down|up)(\d+)_(downsample|upsample)", name)
  if match:
    side, level, kind = match.groups()
    return f"{side}.{level}.{kind}.conv", None
  return _TOP[name]


def _unet_rule(path: Path, want: tuple[int, ...]):
  prefix, subs = _unet_module(path[0])
  if subs is None:
    if len(path) != 2:
      raise KeyError("/".join(path))
    return _leaf_rule(prefix, path[1], want)
  if len(path) != 3:
    raise KeyError("/".join(path))
  return _leaf_rule(f"{prefix}.{subs[path[1]]}", path[2], want)


def ddpm_unet_params(state_dict: Mapping[str, Any], like: Mapping[str, Any]) -> dict:
  """Converts a pesser/pytorch_diffusion `Model.state_dict()` into `models.unet.UNet` params.

  The reference is Ho et al.'s unconditional U-Net with 1x1 ("NIN") shortcuts and convolutional
  resampling. Our optional label embedding has no counterpart there (reported as missing), nor
  has the reference's optional 3x3 `conv_shortcut` one here (reported as unexpected). The
  reference's `t` is the 0-based step index of a 1000-step chain: with diffjax's `DiscreteChain`
  (node i at t = (i-1)/(T-1)) that is noise_cond = 999·t (`noise_cond_scale=999`, as
  configs/ddpm/cifar10.py sets), not the default 1000·t.

  Args:
    state_dict: {name: array} with PyTorch names and layouts (e.g. the official DDPM CIFAR-10
      checkpoint that `pytorch_diffusion` loads).
    like: our params tree (or shapes) for the same configuration, e.g. `param_shapes(module, ...)`.

  Returns:
    Nested dict of float32 NumPy arrays, usable as `module.apply({"params": ...}, ...)`.

  Raises:
    ValueError: naming every missing, unexpected or misshaped entry.
  """
  return _convert(state_dict, like, _unet_rule, what="DDPM U-Net")
