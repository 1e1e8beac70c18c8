r"""EDM's non-leaky augmentation with conditioning labels (Karras et al. 2022, arXiv:2206.00364).

EDM (App. F.2, "augmentation regularization") trains CIFAR-10 with the geometric part of the
StyleGAN2-ADA pipeline (Karras et al. 2020, arXiv:2006.06676) applied with probability p = 0.12
per transform, and conditions the network on a vector of augmentation labels, so the augmented
images never leak into the samples: at sampling time the labels are zero (= no augmentation).

    x_aug, labels = augment.edm_augment(rng, x)      # x: [B, H, W, C] in [-1, 1], NHWC
    raw = module.apply(variables, z_in, noise_cond, augment_labels=labels, ...)

With EDM's CIFAR-10 setting (`AugmentPipe(p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1,
aniso=1, translate_frac=1)`) the label vector has `LABEL_DIM = 9` entries, in EDM's order:

  0     xflip           1 if the image was mirrored left-right, else 0
  1     yflip           1 if mirrored top-bottom, else 0
  2     scale           w ~ N(0, 1); the image is magnified by s = 2^(scale_std·w)
  3, 4  rotate_frac     cos θ − 1, sin θ; θ ~ U(−π·rotate_frac_max, π·rotate_frac_max)
  5, 6  aniso           w·cos r, w·sin r; stretch by 2^(aniso_std·w) along the axis at angle r
  7, 8  translate_frac  t_x, t_y ~ N(0, 1); shift by (t_x·W, t_y·H)·translate_frac_std pixels

Each transform is applied to an example with probability min(1, multiplier·p), independently;
when it is not applied, its parameter is the identity and its labels are 0 (cos 0 − 1 = 0). So
xflip=1e8 makes the left-right flip a fair coin for every image, whatever p is. The other EDM
knobs (integer rotation/translation, colour transforms) are supported with EDM's defaults (off);
each enabled transform adds its labels in EDM's order (`label_dim()` gives the width).

Where this deviates from NVlabs/edm `training/augment.py` (the parameters, probabilities, label
values, transform order and matrix conventions are the same):
  * Resampling: EDM reflect-pads, upsamples 2x with the sym6 wavelet filter, samples bilinearly
    at 2x and downsamples 2x with the same filter. Here the affine warp is one direct resample
    at the original resolution with interpolating cubic B-splines (Unser 1999: a mirror-boundary
    prefilter, then the 4x4-tap cubic B-spline kernel), the same interpolant as
    scipy.ndimage.affine_transform(order=3, mode="mirror"). It is jittable with static shapes
    (EDM's padding width depends on the batch) and closer to the exact warp: on smooth test
    images (≤ 0.085 cycles/pixel) it is within 2e-3 of the exact image, EDM's within 2e-2, and
    the two agree within 2e-2 given EDM's labels (tests/data/test_augment.py).
    Neither pipeline pre-filters when shrinking (EDM's 2x supersampling aliases a little less).
  * Out-of-image samples: whole-sample mirror reflection (torch/NumPy `reflect`, scipy `mirror`)
    repeated indefinitely; EDM reflect-pads at most W − 1 pixels and reads zeros beyond that,
    which only matters for transforms that pull in content from more than one image width away.
  * Examples whose geometric transform is exactly the identity (about (1 − p)^4 ≈ 60 % of them
    at p = 0.12) are returned untouched; EDM sends every image through its filters.

EDM's anisotropic label is not injective: (w, r) and (−w, r + π) give the same two label
entries but reciprocal stretches, and both are equally likely (r ~ U(−π, π) with probability
aniso_rotate_prob). This module reproduces EDM's labels as they are.
"""

from __future__ import annotations

import inspect
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

LABEL_DIM = 9  # width of the labels with edm_augment's defaults (EDM's CIFAR-10 setting)

# Label entries per transform, in the order EDM concatenates them.
_LABEL_WIDTHS = dict(
    xflip=1,
    yflip=1,
    rotate_int=2,
    translate_int=2,
    scale=1,
    rotate_frac=2,
    aniso=2,
    translate_frac=2,
    brightness=1,
    contrast=1,
    lumaflip=1,
    hue=2,
    saturation=1,
)
# Columns of the two random draws per transform: uniform = (gate, values...), normal = values.
_UNIFORM_COLUMNS = dict(
    xflip=2,
    yflip=2,
    rotate_int=2,
    translate_int=3,
    scale=1,
    rotate_frac=2,
    aniso=3,
    translate_frac=1,
    brightness=1,
    contrast=1,
    lumaflip=2,
    hue=2,
    saturation=1,
)
_NORMAL_COLUMNS = dict(scale=1, aniso=1, translate_frac=2, brightness=1, contrast=1, saturation=1)
_GEOMETRIC = ("scale", "rotate_frac", "aniso", "translate_frac")
_COLOR = ("brightness", "contrast", "lumaflip", "hue", "saturation")


def edm_augment(
    rng: jax.Array,
    x: jax.Array,
    p=0.12,
    xflip: float = 1e8,
    yflip: float = 1.0,
    scale: float = 1.0,
    rotate_frac: float = 1.0,
    aniso: float = 1.0,
    translate_frac: float = 1.0,
    *,
    rotate_int: float = 0.0,
    translate_int: float = 0.0,
    translate_int_max: float = 0.125,
    scale_std: float = 0.2,
    rotate_frac_max: float = 1.0,
    aniso_std: float = 0.2,
    aniso_rotate_prob: float = 0.5,
    translate_frac_std: float = 0.125,
    brightness: float = 0.0,
    contrast: float = 0.0,
    lumaflip: float = 0.0,
    hue: float = 0.0,
    saturation: float = 0.0,
    brightness_std: float = 0.2,
    contrast_std: float = 0.5,
    hue_max: float = 1.0,
    saturation_std: float = 1.0,
) -> tuple[jax.Array, jax.Array]:
  """Augments a batch as EDM's `AugmentPipe` does, and returns its conditioning labels.

  The order is EDM's: pixel blitting (xflip, yflip, rotate_int, translate_int), then one affine
  warp composed of scale, rotate_frac, aniso and translate_frac, then the colour matrix
  (brightness, contrast, lumaflip, hue, saturation). In centred pixel coordinates (x right,
  y down, origin at the image centre) the warp is out(q) = in(G⁻¹ q) with
      G⁻¹ = S(1/s) · R(θ) · R(−r) S(1/a, a) R(r) · T(−t),  R(φ) = [[cos φ, −sin φ], [sin φ, cos φ]],
  so the content is magnified by s, rotated by θ (counter-clockwise as displayed), stretched by
  a = 2^(aniso_std·w) along the axis at angle r, then shifted by t.

  Args:
    rng: PRNG key.
    x: [B, H, W, C] float images (NHWC), nominally in [-1, 1].
    p: overall probability multiplier; may be a traced scalar (ADA-style adaptive p).
    xflip, yflip, scale, rotate_frac, aniso, translate_frac: per-transform probability
      multipliers (static Python floats; 0 disables the transform and drops its labels).
    rotate_int: multiplier for rotation by a multiple of 90° (needs H == W).
    translate_int: multiplier for integer translation by up to translate_int_max·(W, H).
    translate_int_max: range of the integer translation, relative to the image size.
    scale_std: log2 standard deviation of the isotropic scale.
    rotate_frac_max: range of the rotation, 1 = full circle.
    aniso_std: log2 standard deviation of the anisotropic scale.
    aniso_rotate_prob: probability that the anisotropic axis is rotated (r ~ U(−π, π), else 0).
    translate_frac_std: standard deviation of the translation, relative to the image size.
    brightness, contrast, lumaflip, hue, saturation: colour multipliers (need C in {1, 3}).
    brightness_std: standard deviation of the added brightness.
    contrast_std: log2 standard deviation of the contrast factor.
    hue_max: range of the hue rotation about the grey axis, 1 = full circle.
    saturation_std: log2 standard deviation of the saturation factor.

  Returns:
    (x_aug [B, H, W, C] with x's dtype, labels [B, label_dim(...)] float32; [B, 9] by default).

  Raises:
    ValueError: if x is not a [B, H, W, C] float array, a multiplier/std is negative, p is a
      negative number, rotate_int is on for a non-square image, or a colour transform is on for
      C not in {1, 3}.
  """
  knobs = {k: v for k, v in locals().items() if k not in ("rng", "x", "p")}
  _check_args(x, p, knobs)
  b, h, w, c = x.shape
  dtype = x.dtype
  x = x.astype(jnp.float32)
  p = jnp.asarray(p, jnp.float32)
  # All randomness in two draws (one threefry each: compiles in a fraction of the time of one
  # draw per parameter); every transform owns fixed columns, so enabling one transform does not
  # change the parameters of another.
  rng_uniform, rng_normal = jax.random.split(rng)
  uniform = _split_columns(
      jax.random.uniform(rng_uniform, (b, sum(_UNIFORM_COLUMNS.values()))), _UNIFORM_COLUMNS
  )  # name -> [B, k] ~ U[0, 1)
  normal = _split_columns(
      jax.random.normal(rng_normal, (b, sum(_NORMAL_COLUMNS.values()))), _NORMAL_COLUMNS
  )  # name -> [B, k] ~ N(0, 1)
  labels = []

  def gate(name, prob, value):
    """value where the transform's gate U[0, 1) draw is < prob (per example), else 0."""
    keep = uniform[name][:, 0] < prob
    return jnp.where(keep.reshape((b,) + (1,) * (value.ndim - 1)), value, jnp.zeros_like(value))

  # ---- Pixel blitting (exact permutations of pixels). ----
  for name, axis in (("xflip", 2), ("yflip", 1)):
    if knobs[name] > 0:
      flip = gate(name, knobs[name] * p, (uniform[name][:, 1] < 0.5).astype(jnp.int32))
      x = jnp.where(flip[:, None, None, None] == 1, jnp.flip(x, axis), x)
      labels.append(flip[:, None])

  if rotate_int > 0:
    quarter_turns = jnp.minimum(jnp.floor(4 * uniform["rotate_int"][:, 1]), 3).astype(jnp.int32)
    k = gate("rotate_int", rotate_int * p, quarter_turns)  # k·90°, k uniform on {0, 1, 2, 3}
    flip_w, flip_h = (k == 1) | (k == 2), (k == 2) | (k == 3)
    x = jnp.where(flip_w[:, None, None, None], jnp.flip(x, 2), x)
    x = jnp.where(flip_h[:, None, None, None], jnp.flip(x, 1), x)
    x = jnp.where(((k == 1) | (k == 3))[:, None, None, None], jnp.swapaxes(x, 1, 2), x)
    labels += [flip_w[:, None], flip_h[:, None]]  # = np.rot90(x, k, axes=(1, 2))

  if translate_int > 0:
    u = gate("translate_int", translate_int * p, 2 * uniform["translate_int"][:, 1:] - 1)
    tx = jnp.round(u[:, 0] * (w * translate_int_max)).astype(jnp.int32)
    ty = jnp.round(u[:, 1] * (h * translate_int_max)).astype(jnp.int32)
    # out[y, x] = in[y + ty, x − tx] (mirror-reflected): EDM shifts right by tx and UP by ty.
    rows = _reflect_index(jnp.arange(h)[None, :] + ty[:, None], h)  # [B, H]
    cols = _reflect_index(jnp.arange(w)[None, :] - tx[:, None], w)  # [B, W]
    x = _gather_pixels(x, rows[:, :, None, None, None], cols[:, None, :, None, None])[..., 0, 0, :]
    labels += [(tx / (w * translate_int_max))[:, None], (ty / (h * translate_int_max))[:, None]]

  # ---- Geometric transformations: one affine map G⁻¹ per example. ----
  g_inv = jnp.broadcast_to(jnp.eye(3), (b, 3, 3))
  if scale > 0:
    v = gate("scale", scale * p, normal["scale"][:, 0])
    s = jnp.exp2(v * scale_std)
    g_inv = g_inv @ _scale2d(1 / s, 1 / s)
    labels.append(v[:, None])

  if rotate_frac > 0:
    theta = gate(
        "rotate_frac",
        rotate_frac * p,
        (2 * uniform["rotate_frac"][:, 1] - 1) * (math.pi * rotate_frac_max),
    )
    g_inv = g_inv @ _rotate2d(theta)
    labels += [(jnp.cos(theta) - 1)[:, None], jnp.sin(theta)[:, None]]

  if aniso > 0:
    v = gate("aniso", aniso * p, normal["aniso"][:, 0])
    r = (2 * uniform["aniso"][:, 1] - 1) * math.pi
    r = jnp.where(uniform["aniso"][:, 2] < aniso_rotate_prob, r, jnp.zeros_like(r))
    a = jnp.exp2(v * aniso_std)
    # Skipped stretches (v = 0) give exactly I, not R(−r)R(r) up to rounding, so the example
    # can still take the identity path below.
    stretch = _rotate2d(-r) @ _scale2d(1 / a, a) @ _rotate2d(r)
    g_inv = g_inv @ jnp.where((v == 0)[:, None, None], jnp.eye(3), stretch)
    labels += [(v * jnp.cos(r))[:, None], (v * jnp.sin(r))[:, None]]

  if translate_frac > 0:
    t = gate("translate_frac", translate_frac * p, normal["translate_frac"])
    g_inv = g_inv @ _translate2d(
        -t[:, 0] * (w * translate_frac_std), -t[:, 1] * (h * translate_frac_std)
    )
    labels += [t[:, :1], t[:, 1:]]

  if any(knobs[name] > 0 for name in _GEOMETRIC):
    identity = jnp.all(g_inv == jnp.eye(3), axis=(1, 2))
    x = jnp.where(identity[:, None, None, None], x, warp(x, g_inv))

  # ---- Colour transformations: one 4x4 matrix per example acting on (r, g, b, 1). ----
  m = jnp.broadcast_to(jnp.eye(4), (b, 4, 4))
  luma = np.array([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)
  luma_proj = np.outer(luma, luma).astype(np.float32)  # projection onto the grey axis
  if brightness > 0:
    v = gate("brightness", brightness * p, normal["brightness"][:, 0])
    m = _translate3d(v * brightness_std) @ m  # x + b
    labels.append(v[:, None])

  if contrast > 0:
    v = gate("contrast", contrast * p, normal["contrast"][:, 0])
    m = _scale3d(jnp.exp2(v * contrast_std)) @ m  # c·x
    labels.append(v[:, None])

  if lumaflip > 0:
    v = gate("lumaflip", lumaflip * p, (uniform["lumaflip"][:, 1] < 0.5).astype(jnp.int32))
    m = (jnp.eye(4) - 2 * luma_proj * v[:, None, None]) @ m  # reflect through the grey plane
    labels.append(v[:, None])

  if hue > 0:
    theta = gate("hue", hue * p, (2 * uniform["hue"][:, 1] - 1) * (math.pi * hue_max))
    m = _rotate_about(luma, theta) @ m
    labels += [(jnp.cos(theta) - 1)[:, None], jnp.sin(theta)[:, None]]

  if saturation > 0:
    v = gate("saturation", saturation * p, normal["saturation"][:, 0])
    # P + 2^(std·v)·(I − P), written as I + (2^(std·v) − 1)(I − P) so v = 0 is exactly I.
    m = (
        jnp.eye(4) + (jnp.exp2(v * saturation_std) - 1)[:, None, None] * (jnp.eye(4) - luma_proj)
    ) @ m
    labels.append(v[:, None])

  if any(knobs[name] > 0 for name in _COLOR):
    if c == 3:
      x = jnp.einsum("bij,bhwj->bhwi", m[:, :3, :3], x) + m[:, None, None, :3, 3]
    else:  # grey images: EDM averages the RGB rows of the matrix.
      gain = jnp.sum(m[:, :3, :3], axis=(1, 2)) / 3
      x = x * gain[:, None, None, None] + jnp.mean(m[:, :3, 3], axis=1)[:, None, None, None]

  labels = (
      jnp.concatenate([l.astype(jnp.float32) for l in labels], axis=1)
      if labels
      else (jnp.zeros((b, 0), jnp.float32))
  )
  return x.astype(dtype), labels


def label_dim(**knobs) -> int:
  """Width of edm_augment's labels for the given multipliers (others at edm_augment's defaults).

  Example: `label_dim()` is 9 (= LABEL_DIM); `label_dim(xflip=0, brightness=1)` is 9.
  """
  defaults = {
      k: v.default
      for k, v in inspect.signature(edm_augment).parameters.items()
      if k in _LABEL_WIDTHS
  }
  unknown = set(knobs) - set(defaults)
  if unknown:
    raise ValueError(
        f"label_dim: unknown transform multiplier(s) {sorted(unknown)}; "
        f"known: {list(_LABEL_WIDTHS)}"
    )
  defaults.update(knobs)
  return sum(width for name, width in _LABEL_WIDTHS.items() if defaults[name] > 0)


def warp(x: jax.Array, g_inv: jax.Array) -> jax.Array:
  """Affine warp out(q) = x(G⁻¹ q) by cubic B-spline interpolation, mirror-reflected outside.

  Coordinates are centred pixel coordinates: pixel (row i, column j) sits at
  q = (j − (W − 1)/2, i − (H − 1)/2, 1), x to the right and y down (EDM's convention). The image
  is interpolated by the cubic spline s(u) = Σ_k c_k β³(u − k) through its pixels (Unser 1999,
  "Splines: a perfect fit", eqs. 4-6): the coefficients c solve (c_{k−1} + 4c_k + c_{k+1})/6 =
  x_k along each axis with whole-sample mirror boundaries (a fixed [n, n] matrix inverse), and
  β³(d) = 2/3 − d² + |d|³/2 for |d| < 1, (2 − |d|)³/6 for 1 ≤ |d| < 2. This equals
  scipy.ndimage.affine_transform(order=3, mode="mirror").

  Args:
    x: [B, H, W, C] images.
    g_inv: [B, 3, 3] affine maps from output to input coordinates (last row 0, 0, 1).

  Returns:
    [B, H, W, C] float32 warped images.
  """
  b, h, w, _ = x.shape
  coef = jnp.einsum("ij,bjwc->biwc", _spline_prefilter(h), x.astype(jnp.float32))
  coef = jnp.einsum("ij,bhjc->bhic", _spline_prefilter(w), coef)
  cx, cy = (w - 1) / 2, (h - 1) / 2
  qy, qx = jnp.meshgrid(
      jnp.arange(h, dtype=jnp.float32) - cy, jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij"
  )
  src_x = (
      g_inv[:, 0, 0, None, None] * qx
      + g_inv[:, 0, 1, None, None] * qy
      + g_inv[:, 0, 2, None, None]
      + cx
  )  # [B, H, W], in pixel indices
  src_y = (
      g_inv[:, 1, 0, None, None] * qx
      + g_inv[:, 1, 1, None, None] * qy
      + g_inv[:, 1, 2, None, None]
      + cy
  )
  cols, wx = _spline_taps(src_x, w)  # [B, H, W, 4]
  rows, wy = _spline_taps(src_y, h)
  patch = _gather_pixels(coef, rows[..., :, None], cols[..., None, :])  # [B, H, W, 4, 4, C]
  return jnp.einsum("bhwi,bhwj,bhwijc->bhwc", wy, wx, patch)


def _spline_prefilter(n):
  """[n, n] float32 inverse of the mirror-boundary cubic B-spline sampling matrix (NumPy)."""
  sampling = np.zeros((n, n))
  for i in range(n):
    for d, value in ((-1, 1 / 6), (0, 4 / 6), (1, 1 / 6)):
      sampling[i, _reflect_index(i + d, n)] += value
  return np.linalg.inv(sampling).astype(np.float32)


def _spline_taps(src, n):
  """Reflected tap indices [..., 4] and cubic B-spline weights [..., 4] along one axis."""
  idx = jnp.floor(src)[..., None] + jnp.arange(-1.0, 3.0)  # the 4 knots with |src − k| < 2
  d = jnp.abs(src[..., None] - idx)
  weights = jnp.where(d < 1, 2 / 3 - d**2 + d**3 / 2, jnp.maximum(2 - d, 0) ** 3 / 6)
  return _reflect_index(idx.astype(jnp.int32), n), weights


def _split_columns(draws, columns):
  """[B, Σk] -> {name: [B, k]} in the order of `columns`."""
  out, start = {}, 0
  for name, k in columns.items():
    out[name], start = draws[:, start : start + k], start + k
  return out


def _reflect_index(i, n):
  """Whole-sample mirror of integer index i into [0, n): … 2 1 | 0 1 … n−1 | n−2 … (period 2n−2)."""
  xp = np if isinstance(i, (np.ndarray, int)) else jnp  # NumPy for trace-time constants
  if n == 1:
    return xp.zeros_like(i)
  i = xp.mod(i, 2 * n - 2)
  return xp.where(i >= n, 2 * n - 2 - i, i)


def _gather_pixels(x, rows, cols):
  """x[b, rows, cols, :] for index arrays rows/cols broadcastable to [B, ...]; -> [B, ..., C]."""
  b, h, w, c = x.shape
  flat = jnp.broadcast_arrays(rows, cols)
  idx = (flat[0] * w + flat[1]).reshape(b, -1)
  out = jnp.take_along_axis(x.reshape(b, h * w, c), idx[:, :, None], axis=1)
  return out.reshape(flat[0].shape + (c,))


def _stack_matrix(rows):
  """[[entries]] of [B] arrays or Python numbers -> [B, n, n]."""
  ref = next(e for row in rows for e in row if isinstance(e, jax.Array))
  return jnp.stack(
      [
          jnp.stack([jnp.broadcast_to(jnp.asarray(e, jnp.float32), ref.shape) for e in row], -1)
          for row in rows
      ],
      -2,
  )


def _translate2d(tx, ty):
  return _stack_matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def _scale2d(sx, sy):
  return _stack_matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def _rotate2d(theta):
  """R(θ) = [[cos θ, −sin θ], [sin θ, cos θ]]: turns +x towards +y (y points down)."""
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  return _stack_matrix([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])


def _translate3d(v):
  return _stack_matrix([[1, 0, 0, v], [0, 1, 0, v], [0, 0, 1, v], [0, 0, 0, 1]])


def _scale3d(v):
  return _stack_matrix([[v, 0, 0, 0], [0, v, 0, 0], [0, 0, v, 0], [0, 0, 0, 1]])


def _rotate_about(axis, theta):
  """Rodrigues: cos θ·I + sin θ·[u]ₓ + (1 − cos θ)·u uᵀ about the unit axis u (3 of 4 coords)."""
  ux, uy, uz = (float(v) for v in axis[:3])
  c, s = jnp.cos(theta), jnp.sin(theta)
  cc = 1 - c
  return _stack_matrix(
      [
          [ux * ux * cc + c, ux * uy * cc - uz * s, ux * uz * cc + uy * s, 0],
          [uy * ux * cc + uz * s, uy * uy * cc + c, uy * uz * cc - ux * s, 0],
          [uz * ux * cc - uy * s, uz * uy * cc + ux * s, uz * uz * cc + c, 0],
          [0, 0, 0, 1],
      ]
  )


def _check_args(x, p, knobs):
  if getattr(x, "ndim", None) != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
        f"x must be a float [B, H, W, C] array, got {getattr(x, 'shape', x)} "
        f"{getattr(x, 'dtype', type(x))}"
    )
  if isinstance(p, numbers.Real) and p < 0:
    raise ValueError(f"p must be >= 0, got {p}")
  for name, value in knobs.items():
    if not isinstance(value, numbers.Real) or value < 0:
      raise ValueError(f"{name} must be a non-negative Python number (static), got {value!r}")
  _, h, w, c = x.shape
  if knobs["rotate_int"] > 0 and h != w:
    raise ValueError(f"rotate_int needs square images, got H={h}, W={w}")
  if any(knobs[name] > 0 for name in _COLOR) and c not in (1, 3):
    raise ValueError(f"colour transforms ({', '.join(_COLOR)}) need C in {{1, 3}}, got C={c}")
