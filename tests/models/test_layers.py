"""Resampling without depthwise convolutions, and fused GroupNorm+SiLU, against their references.

`layers.downsample`/`upsample` must equal the depthwise convolutions they replace
(`_downsample_conv`/`_upsample_conv`, NVlabs/edm's formulation) for the box and FIR filters, every
padding the models use, float32 and bfloat16, forward and gradient, and inside whole DDPM++/NCSN++
networks. Measured on CPU: float32 max |new - conv| ≤ 2.4e-7 (unit-variance inputs; gradients
≤ 4.8e-7), the networks ≤ 6e-7 relative; bfloat16: within one bfloat16 rounding (2^-8) of the
float32 result, as the convolution is (the new code sums in float32 and rounds once).

`fused_norm.group_norm_silu` ("jnp", and the Pallas kernels in interpret mode on tiny shapes) must
equal nn.GroupNorm → (scale-shift) → nn.silu, forward and gradient; tolerances at each test.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from diffjax import models
from diffjax.models import fused_norm, layers

BOX, FIR = (1, 1), (1, 3, 3, 1)


def _x(shape, dtype=jnp.float32, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), dtype)


def _max_rel(a, b):
  a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _outputs_and_grads(new, ref, x, *args):
  """Both functions' outputs and gradients of sum(w·f(x)) (w random), in one jitted program."""
  w = _x(jax.eval_shape(lambda x: ref(x, *args), x.astype(jnp.float32)).shape, seed=1)

  def run(x):
    res = []
    for f in (new, ref):
      out, vjp = jax.vjp(lambda x: f(x, *args), x)
      res += [out, vjp(w.astype(out.dtype))[0]]
    return res

  return jax.jit(run)(x)


# (taps, pad, input height, channels): the defaults, and EDM's fused conv + downsample (residual
# encoder): pad 0 after a conv padded by 1 + (k-1)//2, i.e. an input of H + 2 (FIR) or H (box). Odd
# sizes and pad 1 with the box filter take the separable path rather than the 2x2 mean.
DOWN_CASES = [
    (BOX, None, 8, 3),
    (BOX, 0, 8, 4),
    (BOX, 0, 7, 3),
    (BOX, 1, 8, 4),
    (FIR, None, 8, 3),
    (FIR, 0, 10, 4),
    (FIR, None, 7, 4),
]


class ResampleTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters(*DOWN_CASES)
  def test_downsample_equals_depthwise_conv(self, taps, pad, h, channels):
    x = _x((2, h, h, channels))
    out, grad, ref, grad_ref = _outputs_and_grads(
        layers.downsample, layers._downsample_conv, x, taps, pad
    )
    chex.assert_equal_shape([out, ref])
    chex.assert_trees_all_close(out, ref, atol=1e-6, rtol=0)
    chex.assert_trees_all_close(grad, grad_ref, atol=1e-6, rtol=0)

  @parameterized.parameters((BOX, 4, 3), (BOX, 5, 4), (FIR, 4, 4), (FIR, 5, 3))
  def test_upsample_equals_depthwise_conv(self, taps, h, channels):
    x = _x((2, h, h + 1, channels))
    out, grad, ref, grad_ref = _outputs_and_grads(layers.upsample, layers._upsample_conv, x, taps)
    chex.assert_equal_shape([out, ref])
    chex.assert_trees_all_close(out, ref, atol=1e-6, rtol=0)
    chex.assert_trees_all_close(grad, grad_ref, atol=1e-6, rtol=0)
    if taps == BOX:  # nearest neighbour, exactly (including the last row and column)
      np.testing.assert_array_equal(out, jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2))

  @parameterized.parameters(
      (layers.downsample, layers._downsample_conv, BOX, None),
      (layers.downsample, layers._downsample_conv, FIR, 0),
      (layers.upsample, layers._upsample_conv, FIR),
  )
  def test_bfloat16_within_one_rounding(self, new, ref, taps, *args):
    x = _x((2, 8, 8, 5), jnp.bfloat16)
    # The reference filter on the same bfloat16 values, in float32: the exact answer.
    out, grad, exact, grad_exact = _outputs_and_grads(
        lambda x, *a: new(x.astype(jnp.bfloat16), *a), ref, x.astype(jnp.float32), taps, *args
    )
    self.assertEqual(new(x, taps, *args).dtype, jnp.bfloat16)
    self.assertLessEqual(_max_rel(out, exact), 2.0**-8)  # one bfloat16 rounding
    # The cotangent rounds to bfloat16 too: two roundings.
    self.assertLessEqual(_max_rel(grad, grad_exact), 2.0**-7)

  @parameterized.parameters(
      dict(kind="ddpmpp", encoder_type="skip", decoder_type="skip"),
      dict(kind="ncsnpp", decoder_type="skip"),  # residual encoder: the pad=0 downsample
  )
  def test_networks_unchanged(self, **cfg):
    module = models.make(
        dict(cfg, model_channels=8, channel_mult=(1, 2), num_blocks=1, attn_resolutions=())
    )
    x, c = _x((2, 8, 8, 3)), jnp.array([0.3, -0.5])
    v = models.random_variables(module, x, c)
    apply = jax.jit(lambda v, x: module.apply(v, x, c, train=False))
    out = apply(v, x)
    with absltest.mock.patch.multiple(
        layers, downsample=layers._downsample_conv, upsample=layers._upsample_conv
    ):
      ref = jax.jit(lambda v, x: module.apply(v, x, c, train=False))(v, x)
    self.assertGreater(float(jnp.std(ref)), 0.1)
    self.assertLess(_max_rel(out, ref), 1e-5)


def _unfused(x, gamma, beta, groups, eps, scale=None, shift=None):
  """nn.GroupNorm → (·(1 + scale) + shift) → nn.silu: the models' fused_norm="none" path."""
  norm = layers.nn.GroupNorm(num_groups=groups, epsilon=eps, dtype=x.dtype)
  h = norm.apply({"params": {"scale": gamma, "bias": beta}}, x)
  return layers.nn.silu(h if scale is None else h * (scale + 1) + shift)


def _norm_args(b=2, h=4, w=4, c=8, adaptive=False, dtype=jnp.float32):
  """x with a non-zero mean, GroupNorm parameters and (adaptive) ADM's scale/shift [B, 1, 1, C]."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(2.0 * rng.standard_normal((b, h, w, c)) + 0.5, dtype)
  gamma = jnp.asarray(1.0 + 0.3 * rng.standard_normal(c), jnp.float32)
  beta = jnp.asarray(0.3 * rng.standard_normal(c), jnp.float32)
  if not adaptive:
    return x, gamma, beta, None, None
  scale, shift = (jnp.asarray(0.3 * rng.standard_normal((b, 1, 1, c)), dtype) for _ in range(2))
  return x, gamma, beta, scale, shift


def _fused(x, gamma, beta, groups, eps, scale=None, shift=None, **kwargs):
  """group_norm_silu with ADM's scale-shift folded in, as fused_norm.GroupNormSiLU does."""
  if scale is not None:
    s = 1.0 + scale.reshape(x.shape[0], -1).astype(jnp.float32)
    gamma, beta = gamma * s, beta * s + shift.reshape(x.shape[0], -1).astype(jnp.float32)
  return fused_norm.group_norm_silu(x, gamma, beta, groups, eps, **kwargs)


def _value_and_grads(f, args):
  """f(*args) and the gradients of sum(w·f) with respect to x, gamma and beta (w fixed, random)."""
  w = _x(args[0].shape, seed=1)
  loss = lambda *a: jnp.sum(w * f(*a).astype(jnp.float32))
  out = jax.jit(f)(*args)
  return out, jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(*args)


class FusedNormTest(chex.TestCase, parameterized.TestCase):

  @parameterized.product(dtype=(jnp.float32, jnp.bfloat16), adaptive=(False, True))
  def test_jnp_equals_group_norm_then_silu(self, dtype, adaptive):
    x, gamma, beta, scale, shift = _norm_args(adaptive=adaptive, dtype=dtype)
    rest = (2, 1e-5, scale, shift)
    out, grads = _value_and_grads(lambda *a: _fused(*a, *rest, impl="jnp"), (x, gamma, beta))
    ref, grads_ref = _value_and_grads(lambda *a: _unfused(*a, *rest), (x, gamma, beta))
    self.assertEqual(out.dtype, dtype)
    # Measured: float32 ≤ 1.7e-7 (output), 3e-7 (gradients) relative. bfloat16 ≤ 3.8e-3, 5.3e-3:
    # the unfused path rounds the normalised x (and the scale-shift) to bfloat16 before SiLU, the
    # fused one only its output.
    tol = 1e-6 if dtype == jnp.float32 else 2.0**-7
    self.assertLess(_max_rel(out, ref), tol)
    for g, g_ref in zip(grads, grads_ref):
      self.assertLess(_max_rel(g, g_ref), 2 * tol)

  @parameterized.parameters(
      (jnp.float32, False, True, "several"),
      (jnp.float32, True, True, "several"),
      (jnp.float32, True, True, "one"),
      (jnp.float32, False, False, "one"),
      (jnp.bfloat16, False, True, "several"),
      (jnp.bfloat16, True, True, "one"),
  )
  def test_pallas_kernel_equals_jnp(self, dtype, adaptive, pallas_backward, tiles):
    x, gamma, beta, scale, shift = _norm_args(h=8, c=16, adaptive=adaptive, dtype=dtype)
    rest = (4, 1e-5, scale, shift)
    args = (x.astype(jnp.float32), gamma, beta)
    # The exact answer: the jnp version on the same (bfloat16-valued) input, in float32.
    ref, grads_ref = _value_and_grads(lambda *a: _fused(*a, *rest, impl="jnp"), args)
    pallas = lambda x, *a: _fused(
        x.astype(dtype), *a, *rest, impl="pallas", interpret=True, pallas_backward=pallas_backward
    )
    # 64 positions x 4 channels per group; 32-element tiles: 8 forward, 8 backward tiles.
    small = 32 if tiles == "several" else 1 << 20
    with absltest.mock.patch.multiple(fused_norm, _FWD_TILE=small, _BWD_TILE=small):
      out, grads = _value_and_grads(pallas, args)
    self.assertEqual(out.dtype, dtype)
    # Measured: float32 ≤ 2.2e-7 relative (another summation order). bfloat16 ≤ 2.3e-3 (output),
    # 3.6e-3 (gradients): one rounding of the output, of the cotangent and of dx.
    tol = 4e-6 if dtype == jnp.float32 else 2.0**-8
    self.assertLess(_max_rel(out, ref), tol)
    for g, g_ref in zip(grads, grads_ref):
      self.assertLess(_max_rel(g, g_ref), 2 * tol)

  def test_channels_per_group_not_a_power_of_two_run_jnp(self):
    x, gamma, beta, _, _ = _norm_args(c=12)  # 2 groups of 6 channels: no Triton block shape
    self.assertFalse(fused_norm.pallas_supported(x.shape, 2))
    out = fused_norm.group_norm_silu(x, gamma, beta, 2, 1e-5, impl="pallas", interpret=True)
    np.testing.assert_array_equal(out, fused_norm.group_norm_silu(x, gamma, beta, 2, 1e-5))

  def test_unknown_impl_raises(self):
    x, gamma, beta, _, _ = _norm_args()
    with self.assertRaisesRegex(ValueError, "impl"):
      fused_norm.group_norm_silu(x, gamma, beta, 2, 1e-5, impl="cuda")
    with self.assertRaisesRegex(ValueError, "fused_norm"):
      models.make(dict(kind="ddpmpp", fused_norm="fast")).init(
          jax.random.key(0), _x((1, 8, 8, 3)), jnp.ones(1), train=False
      )

  @parameterized.parameters(
      dict(kind="ddpmpp", model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=()),
      dict(kind="adm", model_channels=8, channel_mult=(1,), num_blocks=1, attn_resolutions=()),
      dict(kind="unet", ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=()),
  )
  def test_networks_same_parameters_and_outputs(self, **cfg):
    x, c = _x((2, 8, 8, 3)), jnp.array([0.3, -0.5])
    label = jnp.array([1, 0]) if cfg["kind"] == "adm" else None
    modules = {f: models.make(dict(cfg, fused_norm=f)) for f in ("none", "jnp", "pallas")}
    v = models.random_variables(modules["none"], x, c, label)
    trees, outs = {}, {}
    for fused, module in modules.items():
      init = functools.partial(module.init, jax.random.key(0), x, c, label, train=False)
      trees[fused] = jax.eval_shape(init)
      apply = functools.partial(module.apply, noise_cond=c, label=label, train=False)
      outs[fused] = jax.jit(apply)(v, x)
    for fused in ("jnp", "pallas"):
      chex.assert_trees_all_equal_shapes_and_dtypes(trees[fused], trees["none"])
      self.assertLess(_max_rel(outs[fused], outs["none"]), 1e-5)
    self.assertGreater(float(jnp.std(outs["none"])), 0.1)


if __name__ == "__main__":
  absltest.main()
