r"""GroupNorm → affine → SiLU as one pass over the activations (GPU memory traffic).

Every residual block of the U-Nets (Ho et al. 2020; Song et al. 2021; Dhariwal & Nichol 2021)
normalises with GroupNorm (Wu & He 2018, arXiv:1803.08494), applies a per-channel (and, in ADM's
scale-shift norm, per-example) affine map and then SiLU (Elfwing et al. 2018). Written as separate
ops, XLA reads and writes the activation several times (statistics, normalise, affine, SiLU; the
same again in the backward pass). `group_norm_silu` computes

    y = silu(((x - μ_bg) · rsqrt(σ²_bg + eps)) · scale_bc + bias_bc),

μ, σ² over the H·W·C/G values of group g of example b, in float32 (σ² = E[x²] - μ², clipped at 0,
as flax.linen.GroupNorm computes it), with
  * impl="jnp": plain jax.numpy, the reference (and what XLA fuses as well as it can);
  * impl="pallas": a Pallas (Triton) GPU kernel, one program per (example, group): it reduces the
    group in float32, then normalises, applies scale/shift and SiLU and writes x's dtype. Its
    custom VJP is a second kernel of the same shape, two passes: the per-channel sums Σ dz and
    Σ dz·u (u = (x - μ)·rstd, z = u·scale + bias), then dx = rstd·(du - mean(du) - u·mean(du·u))
    with du = dz·scale; with pallas_backward=False it is the jnp version's VJP (recomputation).
    The kernel needs C/G a power of two (Triton block shapes); other widths (e.g. ADM's 192
    channels in 32 groups) use the jnp version. On CPU it runs in Pallas interpret mode (tests
    only: slow).

`GroupNormSiLU` is the Flax layer the models use when their `fused_norm` attribute is "jnp" or
"pallas"; its parameters are named and shaped as nn.GroupNorm's ("scale", "bias", [C], float32), so
checkpoints and converted weights load either way. With fused_norm="none" (the default) the models
run nn.GroupNorm then nn.silu, unchanged. The fused versions differ from it only by float rounding:
they apply the affine map and SiLU in float32 and round once (nn.GroupNorm rounds its output to the
activation dtype before the scale-shift and SiLU).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

IMPLS = ("jnp", "pallas")
# Elements of one [rows, C/G] tile a program holds: one tile in the forward pass (a 32x32 group of
# 8 channels fits whole, so x is read once), half in the backward pass (it holds x and dy).
_FWD_TILE = 8192
_BWD_TILE = 4096


def group_norm_silu(
    x: jax.Array,
    scale: jax.Array,
    bias: jax.Array,
    num_groups: int,
    eps: float,
    *,
    impl: str = "jnp",
    out_dtype: Any = None,
    interpret: bool | None = None,
    pallas_backward: bool = True,
) -> jax.Array:
  """silu(GroupNorm(x)·scale + bias) (module docstring), statistics in float32.

  Args:
    x: [B, ..., C] (NHWC images), any float dtype.
    scale, bias: [C] (GroupNorm's affine parameters) or [B, C] (folded with a per-example
      scale-shift: scale = γ·(1 + s), bias = β·(1 + s) + t).
    num_groups: G, dividing C.
    eps: added to the variance.
    impl: "jnp" or "pallas".
    out_dtype: output dtype; None = x's.
    interpret: run the Pallas kernel in interpret mode; None = only on CPU (there is no TPU
      kernel: impl="pallas" on TPU raises).
    pallas_backward: impl="pallas" differentiates with the Pallas backward kernel (True) or with
      the jnp version's VJP (False).

  Returns:
    [B, ..., C] in out_dtype.

  Raises:
    ValueError: unknown impl, G not dividing C, or impl="pallas" compiled for TPU.
  """
  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
  b, c = x.shape[0], x.shape[-1]
  if c % num_groups:
    raise ValueError(f"num_groups {num_groups} does not divide the {c} channels")
  out_dtype = x.dtype if out_dtype is None else out_dtype
  cg = c // num_groups
  x4 = x.reshape(b, -1, num_groups, cg)  # [B, N, G, C/G]: a free view of NHWC
  per_group = lambda v: jnp.broadcast_to(v, (b, c)).reshape(b, num_groups, cg)
  scale, bias = per_group(scale), per_group(bias)
  if impl == "pallas" and pallas_supported(x.shape, num_groups):
    if interpret is None:
      interpret = jax.default_backend() == "cpu"
    if not interpret and jax.default_backend() == "tpu":
      raise ValueError('impl="pallas" is a Triton (GPU) kernel; use impl="jnp" on TPU')
    y = _pallas(x4, scale, bias, float(eps), jnp.dtype(out_dtype), interpret, pallas_backward)
  else:
    y = _reference(x4, scale, bias, float(eps), out_dtype)
  return y.reshape(x.shape)


def pallas_supported(x_shape: tuple[int, ...], num_groups: int) -> bool:
  """Whether impl="pallas" runs the kernel for this shape (C/G a power of two, ≤ a tile)."""
  cg = x_shape[-1] // num_groups
  return cg & (cg - 1) == 0 and cg <= _BWD_TILE


def _reference(x4, scale, bias, eps, out_dtype):
  """The jnp version on [B, N, G, C/G], scale and bias [B, G, C/G] (nn.GroupNorm's math)."""
  x = x4.astype(jnp.float32)
  mean = jnp.mean(x, axis=(1, 3), keepdims=True)
  var = jnp.maximum(jnp.mean(jnp.square(x), axis=(1, 3), keepdims=True) - jnp.square(mean), 0.0)
  z = (x - mean) * (jax.lax.rsqrt(var + eps) * scale[:, None]) + bias[:, None]
  return jax.nn.silu(z).astype(out_dtype)


# Pallas kernels. Each program sees one group: x_ref [N, C/G] (a strided view of the NHWC array),
# scale/bias refs [C/G], statistics refs [1]. Tiles are [rows, C/G] with rows a power of two
# dividing N (Triton block shapes are powers of two); float32 throughout.


def _tile_rows(n: int, cg: int, tile: int) -> int:
  """Largest power of two dividing n with rows·cg ≤ tile (at least 1)."""
  rows = n & -n
  while rows > 1 and rows * cg > tile:
    rows //= 2
  return rows


def _tiles(ref, rows):
  """(number of tiles, load(i) -> float32 tile i, the slice of tile i)."""
  count = ref.shape[0] // rows
  at = lambda i: pl.ds(i * rows if isinstance(i, int) else pl.multiple_of(i * rows, rows), rows)
  return count, lambda i: ref[at(i), :].astype(jnp.float32), at


def _fwd_kernel(x_ref, scale_ref, bias_ref, y_ref, mean_ref, rstd_ref, *, eps, rows):
  n_tiles, load, at = _tiles(x_ref, rows)
  if n_tiles == 1:
    x = load(0)
    s1, s2 = jnp.sum(x), jnp.sum(x * x)
  else:

    def stats(i, acc):
      x = load(i)
      return acc[0] + x, acc[1] + x * x

    zeros = jnp.zeros((rows, x_ref.shape[1]), jnp.float32)
    a1, a2 = jax.lax.fori_loop(0, n_tiles, stats, (zeros, zeros))
    s1, s2 = jnp.sum(a1), jnp.sum(a2)
  count = x_ref.shape[0] * x_ref.shape[1]
  mean = s1 / count
  rstd = jax.lax.rsqrt(jnp.maximum(s2 / count - mean * mean, 0.0) + eps)
  mul = (scale_ref[...].astype(jnp.float32) * rstd)[None, :]
  add = bias_ref[...].astype(jnp.float32)[None, :]

  def write(i, x):
    z = (x - mean) * mul + add
    y_ref[at(i), :] = (z * jax.nn.sigmoid(z)).astype(y_ref.dtype)

  if n_tiles == 1:
    write(0, x)
  else:
    jax.lax.fori_loop(0, n_tiles, lambda i, _: write(i, load(i)), None)
  mean_ref[...] = jnp.full((1,), mean, jnp.float32)
  rstd_ref[...] = jnp.full((1,), rstd, jnp.float32)


def _bwd_kernel(
    x_ref, scale_ref, bias_ref, mean_ref, rstd_ref, dy_ref, dx_ref, dscale_ref, dbias_ref, *, rows
):
  n_tiles, load_x, at = _tiles(x_ref, rows)
  load_dy = _tiles(dy_ref, rows)[1]
  mean, rstd = jnp.sum(mean_ref[...]), jnp.sum(rstd_ref[...])
  scale_c = scale_ref[...].astype(jnp.float32)
  scale, bias = scale_c[None, :], bias_ref[...].astype(jnp.float32)[None, :]

  def grads(i):
    """x̂ and dL/dz (z = x̂·scale + bias, y = silu(z)) on tile i."""
    xhat = (load_x(i) - mean) * rstd
    z = xhat * scale + bias
    s = jax.nn.sigmoid(z)
    return xhat, load_dy(i) * (s * (1.0 + z * (1.0 - s)))

  if n_tiles == 1:
    xhat, dz = grads(0)
    dbias, dscale = jnp.sum(dz, axis=0), jnp.sum(dz * xhat, axis=0)
  else:

    def sums(i, acc):
      xhat, dz = grads(i)
      return acc[0] + jnp.sum(dz, axis=0), acc[1] + jnp.sum(dz * xhat, axis=0)

    zeros = jnp.zeros((x_ref.shape[1],), jnp.float32)
    dbias, dscale = jax.lax.fori_loop(0, n_tiles, sums, (zeros, zeros))
  # dx̂ = dz·scale; Σ dx̂ = Σ_c scale_c·Σ dz, Σ dx̂·x̂ = Σ_c scale_c·Σ dz·x̂.
  count = x_ref.shape[0] * x_ref.shape[1]
  m1 = jnp.sum(scale_c * dbias) / count
  m2 = jnp.sum(scale_c * dscale) / count

  def write(i, xhat, dz):
    dx_ref[at(i), :] = (rstd * (dz * scale - m1 - xhat * m2)).astype(dx_ref.dtype)

  if n_tiles == 1:
    write(0, xhat, dz)
  else:
    jax.lax.fori_loop(0, n_tiles, lambda i, _: write(i, *grads(i)), None)
  dscale_ref[...] = dscale
  dbias_ref[...] = dbias


def _call(kernel, args, out_shape, tile, interpret, name):
  """pallas_call over grid (B, G); program (b, g) sees group g of example b of each operand:
  [N, C/G] of a [B, N, G, C/G] array, [C/G] or [1] of a [B, G, C/G] or [B, G, 1] one."""
  b, n, g, cg = args[0].shape
  rows = _tile_rows(n, cg, tile)

  def spec(shape):
    if len(shape) == 4:
      return pl.BlockSpec((None, n, None, cg), lambda i, j: (i, 0, j, 0))
    return pl.BlockSpec((None, None, shape[-1]), lambda i, j: (i, j, 0))

  num_warps = max(1, min(8, rows * cg // 256))
  return pl.pallas_call(
      functools.partial(kernel, rows=rows),
      grid=(b, g),
      in_specs=[spec(a.shape) for a in args],
      out_specs=[spec(s.shape) for s in out_shape],
      out_shape=out_shape,
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=interpret,
      name=name,
  )(*args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _pallas(x4, scale, bias, eps, out_dtype, interpret, pallas_backward):
  return _pallas_fwd(x4, scale, bias, eps, out_dtype, interpret, pallas_backward)[0]


def _pallas_fwd(x4, scale, bias, eps, out_dtype, interpret, pallas_backward):
  b, _, g, _ = x4.shape
  stat = jax.ShapeDtypeStruct((b, g, 1), jnp.float32)
  y, mean, rstd = _call(
      functools.partial(_fwd_kernel, eps=eps),
      (x4, scale, bias),
      [jax.ShapeDtypeStruct(x4.shape, out_dtype), stat, stat],
      _FWD_TILE,
      interpret,
      "group_norm_silu_fwd",
  )
  del pallas_backward
  return y, (x4, scale, bias, mean, rstd)


def _pallas_bwd(eps, out_dtype, interpret, pallas_backward, res, dy):
  x4, scale, bias, mean, rstd = res
  if not pallas_backward:
    return jax.vjp(lambda *a: _reference(*a, eps, out_dtype), x4, scale, bias)[1](dy)
  dx, dscale, dbias = _call(
      _bwd_kernel,
      (x4, scale, bias, mean, rstd, dy),
      [
          jax.ShapeDtypeStruct(x4.shape, x4.dtype),
          jax.ShapeDtypeStruct(scale.shape, jnp.float32),
          jax.ShapeDtypeStruct(bias.shape, jnp.float32),
      ],
      _BWD_TILE,
      interpret,
      "group_norm_silu_bwd",
  )
  return dx, dscale.astype(scale.dtype), dbias.astype(bias.dtype)


_pallas.defvjp(_pallas_fwd, _pallas_bwd)


class GroupNormSiLU(nn.Module):
  """silu(GroupNorm(x)·(1 + scale) + shift): nn.GroupNorm's parameters, one fused op.

  Attributes:
    num_groups: G.
    epsilon: added to the variance.
    dtype: output dtype (as nn.GroupNorm's `dtype`).
    impl: "jnp" or "pallas" (`group_norm_silu`).
  """

  num_groups: int
  epsilon: float = 1e-5
  dtype: Any = jnp.float32
  impl: str = "jnp"

  @nn.compact
  def __call__(
      self, x: jax.Array, scale: jax.Array | None = None, shift: jax.Array | None = None
  ) -> jax.Array:
    """x [B, ..., C]; scale, shift: None or ADM's per-example scale-shift, [B, (1, 1,) C]."""
    b, c = x.shape[0], x.shape[-1]
    gamma = self.param("scale", nn.initializers.ones_init(), (c,), jnp.float32)
    beta = self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
    if scale is not None:
      s = 1.0 + scale.reshape(b, c).astype(jnp.float32)
      gamma, beta = gamma * s, beta * s + shift.reshape(b, c).astype(jnp.float32)
    return group_norm_silu(
        x, gamma, beta, self.num_groups, self.epsilon, impl=self.impl, out_dtype=self.dtype
    )
