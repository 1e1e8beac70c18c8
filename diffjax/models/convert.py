"""NVlabs/edm U-Net weights (Karras et al. 2022, arXiv:2206.00364) as diffjax Flax parameters.

EDM's `training/networks.py` defines `SongUNet` (DDPM++ / NCSN++, Song et al. 2021) and
`DhariwalUNet` (ADM, Dhariwal & Nichol 2021); diffjax's `song_unet.SongUNet` and `adm.ADMUNet`
compute the same functions (tests/models/test_edm_parity.py checks the outputs against EDM's code
run with the same weights). This module maps a PyTorch `state_dict`, given as NumPy arrays, onto
the Flax parameter tree, with no torch import:

  net = pickle.load(f)["ema"]          # EDM's released snapshots (needs EDM's code and torch)
  state = {k: v.detach().cpu().numpy() for k, v in net.model.state_dict().items()}
  model_cfg, params = convert.from_edm(type(net.model).__name__, net.model.init_kwargs, state)
  raw = models.make(model_cfg).apply({"params": params}, x_nhwc, c_noise, label, train=False)

The raw networks correspond 1:1: EDM's `noise_labels` is diffjax's `noise_cond` (for EDMPrecond
both are c_noise = ln(σ)/4, the "edm" parameterisation), images are NCHW there and NHWC here, and
EDM's one-hot `class_labels` are integer labels here, an all-zero row (a dropped label) being the
null label num_classes.

Layout rules: Linear [out, in] -> Dense kernel [in, out]; Conv2d [out, in, kh, kw] -> Conv kernel
[kh, kw, in, out] (both frameworks cross-correlate, so no flip); GroupNorm weight -> scale. EDM's
attention splits the qkv channels per head as (head, channel, q/k/v) with q/k/v fastest; diffjax
splits q | k | v first, so the qkv rows are permuted. The buffers (NCSN++'s Fourier frequencies,
the resampling filters) are not parameters: they are checked against the module's own.
"""

import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from diffjax import models
from diffjax.models import adm, song_unet

# Constructor defaults of EDM's classes (networks.py), used for kwargs a snapshot leaves out.
_SONG_DEFAULTS = dict(
    label_dim=0,
    augment_dim=0,
    model_channels=128,
    channel_mult=(1, 2, 2, 2),
    channel_mult_emb=4,
    num_blocks=4,
    attn_resolutions=(16,),
    dropout=0.10,
    label_dropout=0.0,
    embedding_type="positional",
    channel_mult_noise=1,
    encoder_type="standard",
    decoder_type="standard",
    resample_filter=(1, 1),
)
_DHARIWAL_DEFAULTS = dict(
    label_dim=0,
    augment_dim=0,
    model_channels=192,
    channel_mult=(1, 2, 3, 4),
    channel_mult_emb=4,
    num_blocks=3,
    attn_resolutions=(32, 16, 8),
    dropout=0.10,
    label_dropout=0.0,
)
EDM_CLASSES = {"SongUNet": _SONG_DEFAULTS, "DhariwalUNet": _DHARIWAL_DEFAULTS}
_SHAPE_KWARGS = ("img_resolution", "in_channels", "out_channels")
FREQS_KEY = "map_noise.freqs"


def model_config(
    edm_class: str,
    edm_kwargs: Mapping[str, Any],
    state_dict: Mapping[str, Any] | None = None,
    *,
    prefix: str = "",
) -> dict:
  """The `models.make` config of the network EDM builds as `edm_class(**edm_kwargs)`.

  Args:
    edm_class: "SongUNet" or "DhariwalUNet".
    edm_kwargs: its constructor arguments (a snapshot's `init_kwargs`), including img_resolution,
      in_channels and out_channels (= in_channels, or twice it for a learned variance).
    state_dict: optional; for NCSN++ its `map_noise.freqs` buffer becomes `fourier_freqs` (EDM
      draws the frequencies at random, so they must travel with the weights).
    prefix: prefix of the state_dict names ("model." for an EDMPrecond's state_dict).

  Returns:
    dict with "kind" ("ddpmpp", "ncsnpp" or "adm") and every attribute set explicitly.

  Raises:
    ValueError: unknown class, unknown or missing kwargs, or out_channels not in_channels·{1, 2}.
  """
  if edm_class not in EDM_CLASSES:
    raise ValueError(f"edm_class must be one of {sorted(EDM_CLASSES)}, got {edm_class!r}")
  defaults = EDM_CLASSES[edm_class]
  unknown = sorted(set(edm_kwargs) - set(defaults) - set(_SHAPE_KWARGS))
  if unknown:
    raise ValueError(f"edm_kwargs has unknown argument(s) {unknown} for {edm_class}")
  missing = [k for k in _SHAPE_KWARGS if k not in edm_kwargs]
  if missing:
    raise ValueError(f"edm_kwargs is missing {missing}")
  kw = {**defaults, **edm_kwargs}
  if kw["out_channels"] not in (kw["in_channels"], 2 * kw["in_channels"]):
    raise ValueError(
        f"edm_kwargs out_channels must be in_channels ({kw['in_channels']}) or twice it, "
        f"got {kw['out_channels']}"
    )
  cfg = dict(
      model_channels=kw["model_channels"],
      channel_mult=tuple(kw["channel_mult"]),
      channel_mult_emb=kw["channel_mult_emb"],
      num_blocks=kw["num_blocks"],
      attn_resolutions=tuple(kw["attn_resolutions"]),
      dropout=float(kw["dropout"]),
      augment_dim=kw["augment_dim"],
      num_classes=kw["label_dim"],
      label_dropout=float(kw["label_dropout"]),
      learn_sigma=kw["out_channels"] == 2 * kw["in_channels"],
  )
  if edm_class == "DhariwalUNet":
    return dict(kind="adm", channels_per_head=64, **cfg)
  cfg.update(
      embedding_type=kw["embedding_type"],
      channel_mult_noise=kw["channel_mult_noise"],
      encoder_type=kw["encoder_type"],
      decoder_type=kw["decoder_type"],
      resample_filter=tuple(float(f) for f in kw["resample_filter"]),
  )
  if kw["embedding_type"] == "fourier" and state_dict is not None:
    if prefix + FREQS_KEY not in state_dict:
      raise ValueError(f"state_dict has no {prefix + FREQS_KEY!r} (NCSN++'s Fourier frequencies)")
    freqs = np.asarray(state_dict[prefix + FREQS_KEY], np.float32)
    cfg["fourier_freqs"] = tuple(float(f) for f in freqs.reshape(-1))
  return dict(kind="ncsnpp" if kw["embedding_type"] == "fourier" else "ddpmpp", **cfg)


def _edm_module(flax_path: tuple[str, ...]) -> str:
  """("enc16_block0", "conv0") -> "enc.16x16_block0.conv0"."""
  m = re.fullmatch(r"(enc|dec)(\d+)_(.+)", flax_path[0])
  head = f"{m[1]}.{m[2]}x{m[2]}_{m[3]}" if m else flax_path[0]
  return ".".join((head,) + tuple(flax_path[1:]))


def _to_flax(edm: np.ndarray, leaf: str, module: str, ndim: int) -> np.ndarray:
  """One EDM tensor in Flax layout (see the module docstring)."""
  if module.endswith("qkv"):  # rows (head, channel, q/k/v) -> (q/k/v, head, channel)
    edm = edm.reshape(edm.shape[0] // 3, 3, *edm.shape[1:]).swapaxes(0, 1).reshape(edm.shape)
  if leaf == "kernel" and ndim == 4:
    return edm.transpose(2, 3, 1, 0)
  if leaf == "kernel" and ndim == 2:
    return edm.T
  return edm


def _edm_shape(flax_shape: tuple[int, ...], leaf: str) -> tuple[int, ...]:
  if leaf == "kernel" and len(flax_shape) == 4:
    kh, kw, cin, cout = flax_shape
    return (cout, cin, kh, kw)
  if leaf == "kernel" and len(flax_shape) == 2:
    return flax_shape[::-1]
  return flax_shape


def _filter_2d(taps) -> np.ndarray:
  f = np.asarray(taps, np.float32)
  return (np.outer(f, f) / np.square(f.sum()))[None, None]  # EDM's [1, 1, k, k] buffer


def _param_free_resamplers(module: nn.Module, height: int) -> set[str]:
  """EDM's kernel-0 Conv2d modules of the skip encoder/decoder (only a resample_filter buffer)."""
  names = set()
  if isinstance(module, song_unet.SongUNet):
    levels = len(module.channel_mult)
    for level in range(levels):
      res = height >> level
      if module.encoder_type == "skip" and level > 0:
        names.add(f"enc.{res}x{res}_aux_down")
      if module.decoder_type == "skip" and level < levels - 1:
        names.add(f"dec.{res}x{res}_aux_up")
  return names


def edm_to_params(
    state_dict: Mapping[str, Any],
    module: nn.Module,
    image_shape: tuple[int, int, int],
    *,
    prefix: str = "",
) -> dict:
  """Flax parameters of `module` from an EDM SongUNet/DhariwalUNet state_dict.

  Args:
    state_dict: {EDM name: array-like} (NumPy, or anything np.asarray accepts), parameters and
      buffers; float16/float32 values are converted to float32.
    module: a diffjax `SongUNet` (ddpmpp/ncsnpp) or `ADMUNet` configured like EDM's network, e.g.
      `models.make(model_config(...))`.
    image_shape: (H, W, C) of the network input (attention placement depends on H).
    prefix: prefix stripped from the names ("model." for an EDMPrecond's state_dict).

  Returns:
    The "params" tree, nested dicts of float32 NumPy arrays, for `module.apply({"params": ...})`.

  Raises:
    ValueError: naming every missing, unexpected and misshaped entry, a resampling filter that is
      not the module's, or Fourier frequencies that differ from the module's (build NCSN++ with
      `fourier_freqs`, which `model_config(..., state_dict)` does).
  """
  if not isinstance(module, (song_unet.SongUNet, adm.ADMUNet)):
    raise ValueError(f"module must be a diffjax SongUNet or ADMUNet, got {type(module).__name__}")
  if len(image_shape) != 3:
    raise ValueError(f"image_shape must be (H, W, C), got {image_shape!r}")
  sd = {}
  for name, value in state_dict.items():
    if not name.startswith(prefix):
      raise ValueError(f"state_dict entry {name!r} does not start with prefix {prefix!r}")
    sd[name[len(prefix) :]] = np.asarray(value, np.float32)

  shapes = jax.eval_shape(
      lambda: module.init(
          {"params": jax.random.key(0)}, jnp.zeros((1, *image_shape)), jnp.zeros((1,)), train=False
      )
  )["params"]
  missing, misshaped, used = [], [], set()
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(shapes)[0]:
    keys = tuple(p.key for p in path)
    edm_module = _edm_module(keys[:-1])
    name = f"{edm_module}.{'bias' if keys[-1] == 'bias' else 'weight'}"
    if name not in sd:
      missing.append(name)
      continue
    used.add(name)
    want = _edm_shape(leaf.shape, keys[-1])
    if sd[name].shape != want:
      misshaped.append(f"{name}: shape {sd[name].shape}, expected {want}")
      continue
    flat[keys] = _to_flax(sd[name], keys[-1], edm_module, len(want))

  modules = {
      _edm_module(tuple(p.key for p in path[:-1]))
      for path, _ in jax.tree_util.tree_flatten_with_path(shapes)[0]
  }
  # Up/down blocks whose widths match have a kernel-0 skip (resampling only, no parameters).
  modules |= {m[: -len("conv0")] + "skip" for m in modules if re.search(r"_(up|down)\.conv0$", m)}
  modules |= _param_free_resamplers(module, image_shape[0])
  taps = getattr(module, "resample_filter", (1, 1))
  bad_buffers = []
  for name, value in sd.items():
    owner, _, leaf = name.rpartition(".")
    if leaf == "resample_filter" and owner in modules:
      used.add(name)
      want = _filter_2d(taps)
      if value.shape != want.shape:
        misshaped.append(f"{name}: shape {value.shape}, expected {want.shape}")
      elif not np.allclose(value, want, rtol=1e-3, atol=0.0):
        bad_buffers.append(f"{name} is not the module's resample_filter {tuple(taps)}")
    elif name == FREQS_KEY and getattr(module, "embedding_type", None) == "fourier":
      used.add(name)
      ours = np.asarray(song_unet.noise_frequencies(module))
      if value.shape != ours.shape:
        misshaped.append(f"{name}: shape {value.shape}, expected {ours.shape}")
      elif not np.array_equal(value, ours):
        bad_buffers.append(
            f"{name} differs from the module's Fourier frequencies: build it with "
            "fourier_freqs=tuple(state_dict['map_noise.freqs']) (model_config does)"
        )
  if getattr(module, "embedding_type", None) == "fourier" and FREQS_KEY not in sd:
    missing.append(FREQS_KEY)
  unexpected = sorted(set(sd) - used)
  problems = []
  if missing:
    problems.append(f"missing {sorted(missing)}")
  if unexpected:
    hint = (
        " (EDMPrecond names: pass prefix='model.')"
        if all(n.startswith("model.") for n in unexpected)
        else ""
    )
    problems.append(f"unexpected {unexpected}{hint}")
  if misshaped:
    problems.append(f"misshaped {misshaped}")
  problems += bad_buffers
  if problems:
    raise ValueError(
        f"state_dict does not fit {type(module).__name__} at image_shape {tuple(image_shape)}: "
        + "; ".join(problems)
    )

  return traverse_util.unflatten_dict(flat)


def from_edm(
    edm_class: str, edm_kwargs: Mapping[str, Any], state_dict: Mapping[str, Any], *, prefix=""
) -> tuple[dict, dict]:
  """(model_cfg, params): `model_config` and `edm_to_params` in one call.

  The input image shape is (img_resolution, img_resolution, in_channels) from edm_kwargs.
  """
  cfg = model_config(edm_class, edm_kwargs, state_dict, prefix=prefix)
  res, channels = edm_kwargs["img_resolution"], edm_kwargs["in_channels"]
  params = edm_to_params(state_dict, models.make(cfg), (res, res, channels), prefix=prefix)
  return cfg, params
