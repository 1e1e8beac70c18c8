r"""Inception-v3 pool3 features for FID (Szegedy et al. 2016; Heusel et al. 2017), from a user file.

FID's feature network is the 2015-12-05 TF Inception graph; pytorch-fid ships it as the PyTorch
state dict `pt_inception-2015-12-05-6726825d.pth` (its `FIDInceptionV3`). Neither that pickle nor
the TF `.pb` can be read without torch/TF, so diffjax reads the same arrays from an **.npz whose
keys are the state-dict names and whose arrays are in PyTorch layout**, exported once where torch
is installed:

    sd = torch.load("pt_inception-2015-12-05-6726825d.pth", map_location="cpu")
    numpy.savez("pt_inception-2015-12-05.npz", **{k: v.numpy() for k, v in sd.items()})

Keys: `<block>.<branch>.conv.weight` [O, I, kh, kw] and `<block>.<branch>.bn.{weight, bias,
running_mean, running_var}` [O] for every BasicConv2d (e.g. `Mixed_6b.branch7x7_2.conv.weight`).
The classifier head (`fc.*`), `AuxLogits.*` (torchvision's weights) and `*.num_batches_tracked` are
accepted and ignored; any other unknown, missing or mis-shaped array is a ValueError.

The network is pytorch-fid's FIDInceptionV3 (Inception-v3 as in TF's FID graph): BasicConv2d =
conv (no bias) + BatchNorm(eps = 1e-3, running statistics) + ReLU; Mixed_5b-d are "A" blocks whose
pool branch averages with count_include_pad=False, Mixed_6b-e "C" blocks likewise, Mixed_7b an "E"
block with that average pool, Mixed_7c an "E" block with a 3×3/1 max pool; then a global average
pool to 2048 features. Inputs [B, H, W, C] in [-1, 1] (C = 1 is repeated to 3) are resized
bilinearly (half-pixel centres, no antialiasing, as `F.interpolate(align_corners=False)`) to 299².

    params = inception.load_npz("pt_inception-2015-12-05.npz")
    fd = frechet.frechet_distance(inception.features_fn(params), samples, reference)

Checks: the layer semantics (layout, padding, pooling, resize) against NumPy brute force and the
parameter count against Keras' published InceptionV3 figure (tests/metrics/test_frechet.py);
pool3 features against torchvision's Inception3 with the FID pools and random weights, through this
loader, to 7.6e-7 relative (experiments/fd_fmnist/inception_parity.py, run where torch is). NOT
checked: the real 2015-12-05 weights (not available here) against pytorch-fid's published numbers.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FEATURE_DIM = 2048
IGNORED_PREFIXES = ("fc.", "AuxLogits.")
IGNORED_SUFFIXES = (".num_batches_tracked",)
# torch state-dict leaf -> (Flax parameter name, torch array -> Flax array)
_LEAVES = {
    "conv.weight": ("kernel", lambda w: np.transpose(w, (2, 3, 1, 0))),  # OIHW -> HWIO
    "bn.weight": ("scale", lambda w: w),
    "bn.bias": ("bias", lambda w: w),
    "bn.running_mean": ("mean", lambda w: w),
    "bn.running_var": ("var", lambda w: w),
}
_TORCH_SHAPE = {"kernel": lambda s: (s[3], s[2], s[0], s[1])}  # HWIO -> OIHW


class BasicConv2d(nn.Module):
  """conv(kh×kw, stride, symmetric padding (ph, pw), no bias) → BatchNorm(eps=1e-3) → ReLU."""

  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param(
        "kernel", nn.initializers.lecun_normal(), (*self.kernel, x.shape[-1], self.features)
    )
    scale = self.param("scale", nn.initializers.ones, (self.features,))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    mean = self.param("mean", nn.initializers.zeros, (self.features,))
    var = self.param("var", nn.initializers.ones, (self.features,))
    ph, pw = self.padding
    y = jax.lax.conv_general_dilated(
        x,
        kernel,
        (self.stride, self.stride),
        ((ph, ph), (pw, pw)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return nn.relu((y - mean) * (scale * jax.lax.rsqrt(var + 1e-3)) + bias)


def max_pool(x: jax.Array, stride: int, padding: int = 0) -> jax.Array:
  """3×3 max pool (torch `F.max_pool2d(x, 3, stride, padding)`; padding counts as -inf)."""
  pad = ((0, 0), (padding, padding), (padding, padding), (0, 0))
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, stride, stride, 1), pad)


def avg_pool_exclude_pad(x: jax.Array) -> jax.Array:
  """3×3/1 average pool with padding 1 that averages only real pixels (count_include_pad=False)."""
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  window, strides = (1, 3, 3, 1), (1, 1, 1, 1)
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
  count = jax.lax.reduce_window(
      jnp.ones((1, *x.shape[1:3], 1), x.dtype), 0.0, jax.lax.add, window, strides, pad
  )
  return total / count


def resize(images: jax.Array, size: int) -> jax.Array:
  """Bilinear resize of [B, H, W, C] to [B, size, size, C], half-pixel centres, no antialiasing.

  Sample j reads source coordinate (j + ½)·H/size - ½ (clamped at the borders), which is
  `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` as pytorch-fid uses it.
  """
  return jax.image.resize(
      images, (images.shape[0], size, size, images.shape[3]), "bilinear", antialias=False
  )


class InceptionV3(nn.Module):
  """FIDInceptionV3 up to pool3: images [B, H, W, C] in [-1, 1] -> features [B, 2048 // divisor].

  Attributes:
    image_size: side the input is resized to (299 for FID; ≥ 75 works).
    channel_divisor: divides every channel count (1 = the real network; >1 only for tests).
  """

  image_size: int = 299
  channel_divisor: int = 1

  def _conv(self, name, features, kernel, stride=1, padding=(0, 0)):
    if isinstance(kernel, int):
      kernel = (kernel, kernel)
    return BasicConv2d(max(1, features // self.channel_divisor), kernel, stride, padding, name=name)

  def _block_a(self, x, name, pool_features):
    c = self._conv
    b1 = c(f"{name}_branch1x1", 64, 1)(x)
    b5 = c(f"{name}_branch5x5_1", 48, 1)(x)
    b5 = c(f"{name}_branch5x5_2", 64, 5, padding=(2, 2))(b5)
    b3 = c(f"{name}_branch3x3dbl_1", 64, 1)(x)
    b3 = c(f"{name}_branch3x3dbl_2", 96, 3, padding=(1, 1))(b3)
    b3 = c(f"{name}_branch3x3dbl_3", 96, 3, padding=(1, 1))(b3)
    bp = c(f"{name}_branch_pool", pool_features, 1)(avg_pool_exclude_pad(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)

  def _block_b(self, x, name):
    c = self._conv
    b3 = c(f"{name}_branch3x3", 384, 3, stride=2)(x)
    bd = c(f"{name}_branch3x3dbl_1", 64, 1)(x)
    bd = c(f"{name}_branch3x3dbl_2", 96, 3, padding=(1, 1))(bd)
    bd = c(f"{name}_branch3x3dbl_3", 96, 3, stride=2)(bd)
    return jnp.concatenate([b3, bd, max_pool(x, 2)], axis=-1)

  def _block_c(self, x, name, c7):
    c = self._conv
    b1 = c(f"{name}_branch1x1", 192, 1)(x)
    b7 = c(f"{name}_branch7x7_1", c7, 1)(x)
    b7 = c(f"{name}_branch7x7_2", c7, (1, 7), padding=(0, 3))(b7)
    b7 = c(f"{name}_branch7x7_3", 192, (7, 1), padding=(3, 0))(b7)
    bd = c(f"{name}_branch7x7dbl_1", c7, 1)(x)
    bd = c(f"{name}_branch7x7dbl_2", c7, (7, 1), padding=(3, 0))(bd)
    bd = c(f"{name}_branch7x7dbl_3", c7, (1, 7), padding=(0, 3))(bd)
    bd = c(f"{name}_branch7x7dbl_4", c7, (7, 1), padding=(3, 0))(bd)
    bd = c(f"{name}_branch7x7dbl_5", 192, (1, 7), padding=(0, 3))(bd)
    bp = c(f"{name}_branch_pool", 192, 1)(avg_pool_exclude_pad(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)

  def _block_d(self, x, name):
    c = self._conv
    b3 = c(f"{name}_branch3x3_1", 192, 1)(x)
    b3 = c(f"{name}_branch3x3_2", 320, 3, stride=2)(b3)
    b7 = c(f"{name}_branch7x7x3_1", 192, 1)(x)
    b7 = c(f"{name}_branch7x7x3_2", 192, (1, 7), padding=(0, 3))(b7)
    b7 = c(f"{name}_branch7x7x3_3", 192, (7, 1), padding=(3, 0))(b7)
    b7 = c(f"{name}_branch7x7x3_4", 192, 3, stride=2)(b7)
    return jnp.concatenate([b3, b7, max_pool(x, 2)], axis=-1)

  def _block_e(self, x, name, pool):
    c = self._conv
    b1 = c(f"{name}_branch1x1", 320, 1)(x)
    b3 = c(f"{name}_branch3x3_1", 384, 1)(x)
    b3 = jnp.concatenate(
        [
            c(f"{name}_branch3x3_2a", 384, (1, 3), padding=(0, 1))(b3),
            c(f"{name}_branch3x3_2b", 384, (3, 1), padding=(1, 0))(b3),
        ],
        axis=-1,
    )
    bd = c(f"{name}_branch3x3dbl_1", 448, 1)(x)
    bd = c(f"{name}_branch3x3dbl_2", 384, 3, padding=(1, 1))(bd)
    bd = jnp.concatenate(
        [
            c(f"{name}_branch3x3dbl_3a", 384, (1, 3), padding=(0, 1))(bd),
            c(f"{name}_branch3x3dbl_3b", 384, (3, 1), padding=(1, 0))(bd),
        ],
        axis=-1,
    )
    pooled = avg_pool_exclude_pad(x) if pool == "avg" else max_pool(x, 1, padding=1)
    bp = c(f"{name}_branch_pool", 192, 1)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError(f"images must be [B, H, W, 1 or 3], got shape {images.shape}")
    x = images.astype(jnp.float32)
    if x.shape[-1] == 1:
      x = jnp.repeat(x, 3, axis=-1)
    x = resize(x, self.image_size)
    c = self._conv
    x = c("Conv2d_1a_3x3", 32, 3, stride=2)(x)
    x = c("Conv2d_2a_3x3", 32, 3)(x)
    x = c("Conv2d_2b_3x3", 64, 3, padding=(1, 1))(x)
    x = max_pool(x, 2)
    x = c("Conv2d_3b_1x1", 80, 1)(x)
    x = c("Conv2d_4a_3x3", 192, 3)(x)
    x = max_pool(x, 2)
    x = self._block_a(x, "Mixed_5b", 32)
    x = self._block_a(x, "Mixed_5c", 64)
    x = self._block_a(x, "Mixed_5d", 64)
    x = self._block_b(x, "Mixed_6a")
    x = self._block_c(x, "Mixed_6b", 128)
    x = self._block_c(x, "Mixed_6c", 160)
    x = self._block_c(x, "Mixed_6d", 160)
    x = self._block_c(x, "Mixed_6e", 192)
    x = self._block_d(x, "Mixed_7a")
    x = self._block_e(x, "Mixed_7b", "avg")
    x = self._block_e(x, "Mixed_7c", "max")
    return jnp.mean(x, axis=(1, 2))  # pool3: adaptive average pool to 1×1


def _torch_prefix(flax_name: str) -> str:
  """'Mixed_6b_branch7x7_2' -> 'Mixed_6b.branch7x7_2'; stem names are unchanged."""
  if flax_name.startswith("Mixed_"):
    return flax_name[:8] + "." + flax_name[9:]
  return flax_name


def expected_arrays(channel_divisor: int = 1, image_size: int = 75) -> dict[str, tuple]:
  """The state-dict names and PyTorch-layout shapes the network consumes (by `jax.eval_shape`)."""
  module = InceptionV3(image_size=image_size, channel_divisor=channel_divisor)
  abstract = jax.eval_shape(
      module.init,
      jax.random.PRNGKey(0),
      jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32),
  )
  out = {}
  for block, leaves in abstract["params"].items():
    for flax_leaf, spec in leaves.items():
      torch_leaf = next(k for k, (name, _) in _LEAVES.items() if name == flax_leaf)
      shape = _TORCH_SHAPE.get(flax_leaf, lambda s: s)(spec.shape)
      out[f"{_torch_prefix(block)}.{torch_leaf}"] = tuple(shape)
  return out


def _ignored(name: str) -> bool:
  return name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES)


def convert(arrays: Mapping[str, Any], channel_divisor: int = 1) -> dict:
  """Maps named PyTorch-layout arrays onto the Flax parameter tree, validating every array.

  Args:
    arrays: state-dict name -> array (an `np.load`ed .npz or a dict).
    channel_divisor: 1 for the real network.

  Returns:
    The Flax `params` dict for `InceptionV3(channel_divisor=...)` (float32).

  Raises:
    ValueError: listing missing arrays, unexpected arrays (other than fc.*, AuxLogits.*,
      *.num_batches_tracked), or each array whose shape differs (name, got, expected).
  """
  expected = expected_arrays(channel_divisor)
  names = set(arrays)
  missing = sorted(set(expected) - names)
  unexpected = sorted(n for n in names - set(expected) if not _ignored(n))
  bad_shapes = [
      f"{n}: got {tuple(np.shape(arrays[n]))}, expected {expected[n]}"
      for n in sorted(set(expected) & names)
      if tuple(np.shape(arrays[n])) != expected[n]
  ]
  problems = []
  if missing:
    problems.append(f"{len(missing)} missing arrays: {missing[:8]}")
  if unexpected:
    problems.append(f"{len(unexpected)} unexpected arrays: {unexpected[:8]}")
  if bad_shapes:
    problems.append(f"{len(bad_shapes)} arrays with wrong shapes: {bad_shapes[:8]}")
  if problems:
    raise ValueError(
        "Inception weights do not match FIDInceptionV3 (see diffjax/metrics/"
        "inception.py for the expected .npz format): " + "; ".join(problems)
    )
  params: dict[str, dict[str, np.ndarray]] = {}
  for name in expected:
    torch_prefix, layer, leaf = name.rsplit(".", 2)  # e.g. "Mixed_6b.branch7x7_2", "conv", "weight"
    flax_leaf, to_flax = _LEAVES[f"{layer}.{leaf}"]
    value = np.asarray(to_flax(np.asarray(arrays[name])), np.float32)
    params.setdefault(torch_prefix.replace(".", "_"), {})[flax_leaf] = value
  return params


def load_npz(path: str, channel_divisor: int = 1) -> dict:
  """`convert` of the arrays in an .npz file (format in the module docstring)."""
  with np.load(path) as f:
    return convert({k: f[k] for k in f.files}, channel_divisor)


def features_fn(params: Any, *, image_size: int = 299, channel_divisor: int = 1) -> Callable:
  """A jitted `images [B, H, W, C] in [-1, 1] -> pool3 features [B, 2048]` for `frechet`."""
  module = InceptionV3(image_size=image_size, channel_divisor=channel_divisor)
  apply = jax.jit(lambda p, x: module.apply({"params": p}, x))
  return lambda images: apply(params, jnp.asarray(images, jnp.float32))
