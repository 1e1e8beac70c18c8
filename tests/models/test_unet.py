"""DDPM U-Net: the paper's parameter count, resampling vs brute force, resolution checks."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import models
from diffjax.models import layers


class DDPMUNetTest(chex.TestCase, parameterized.TestCase):

  def test_ho_cifar10_parameter_count(self):
    # Ho et al. 2020 (App. B): "Our CIFAR10 model has 35.7 million parameters".
    n = models.param_count(models.make({"kind": "ddpm"}), (1, 32, 32, 3))
    self.assertAlmostEqual(n / 35.7e6, 1.0, delta=0.01)
    self.assertEqual(n, 35_746_307)  # also the count third-party ports of the TF model report
    # learn_sigma adds only the extra output channels of the last 3x3 conv (128 -> 3 more).
    n2 = models.param_count(models.make({"kind": "ddpm", "learn_sigma": True}), (1, 32, 32, 3))
    self.assertEqual(n2 - n, 3 * (9 * 128 + 1))

  @parameterized.parameters(((28, 28, 1), (1, 2, 2)), ((32, 32, 1), (1, 2, 2, 2)))
  def test_fashion_mnist_shapes(self, shape, ch_mult):
    module = models.make(
        dict(
            kind="unet",
            ch=8,
            ch_mult=ch_mult,
            num_res_blocks=1,
            attn_resolutions=(14, 8),
            dropout=0.1,
            num_classes=10,
        )
    )
    x = jnp.ones((2,) + shape)
    out, _ = jax.eval_shape(
        lambda: module.init_with_output(
            {"params": jax.random.key(0)}, x, jnp.ones(2), jnp.zeros(2, jnp.int32), train=False
        )
    )
    self.assertEqual(out.shape, (2,) + shape)

  def test_indivisible_resolution_is_an_error(self):
    module = models.make(dict(kind="unet", ch=8, ch_mult=(1, 2, 2, 2), num_res_blocks=1))
    with self.assertRaisesRegex(ValueError, "divisible"):
      module.init({"params": jax.random.key(0)}, jnp.ones((1, 28, 28, 1)), jnp.ones(1), train=False)


def _transposed_conv_brute(x, f, pad):
  """Reference transposed convolution by scattering: out[2i+a-pad] += x[i] * f[a] (per channel)."""
  b, h, w, c = x.shape
  k = f.shape[0]
  full = np.zeros((b, 2 * h + k - 2, 2 * w + k - 2, c))
  for i in range(h):
    for j in range(w):
      full[:, 2 * i : 2 * i + k, 2 * j : 2 * j + k, :] += (
          x[:, i : i + 1, j : j + 1, :] * f[None, :, :, None]
      )
  return full[:, pad : pad + 2 * h, pad : pad + 2 * w, :]


def _strided_conv_brute(x, f, pad):
  b, h, w, c = x.shape
  k = f.shape[0]
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = np.zeros((b, h // 2, w // 2, c))
  for i in range(h // 2):
    for j in range(w // 2):
      out[:, i, j, :] = np.einsum("bhwc,hw->bc", xp[:, 2 * i : 2 * i + k, 2 * j : 2 * j + k, :], f)
  return out


class ResampleTest(chex.TestCase, parameterized.TestCase):

  def test_box_filter_is_average_pool_and_nearest(self):
    x = jax.random.normal(jax.random.key(0), (2, 6, 4, 3))
    want_down = x.reshape(2, 3, 2, 2, 2, 3).mean(axis=(2, 4))
    chex.assert_trees_all_close(layers.downsample(x, (1, 1)), want_down, atol=1e-6)
    want_up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    chex.assert_trees_all_close(layers.upsample(x, (1, 1)), want_up, atol=1e-6)

  @parameterized.parameters(((1, 1),), ((1, 3, 3, 1),))
  def test_fir_matches_brute_force(self, taps):
    x = np.asarray(jax.random.normal(jax.random.key(1), (1, 6, 6, 2)))
    f1 = np.asarray(taps, np.float64)
    f = np.outer(f1, f1) / f1.sum() ** 2
    pad = (len(taps) - 1) // 2
    np.testing.assert_allclose(
        layers.upsample(jnp.asarray(x), taps), _transposed_conv_brute(x, 4 * f, pad), atol=1e-5
    )
    np.testing.assert_allclose(
        layers.downsample(jnp.asarray(x), taps), _strided_conv_brute(x, f, pad), atol=1e-5
    )

  def test_fir_preserves_constants_in_the_interior(self):
    # Filters sum to 1 (down) and the 4 polyphase parts of 4f each sum to 1 (up).
    x = jnp.ones((1, 8, 8, 1))
    chex.assert_trees_all_close(layers.downsample(x, (1, 3, 3, 1))[:, 1:-1, 1:-1], 1.0, atol=1e-6)
    chex.assert_trees_all_close(layers.upsample(x, (1, 3, 3, 1))[:, 2:-2, 2:-2], 1.0, atol=1e-6)

  def test_attention_matches_naive_loop(self):
    kq, kk, kv = jax.random.split(jax.random.key(2), 3)
    q, k, v = (jax.random.normal(r, (1, 2, 2, 4)) for r in (kq, kk, kv))
    out = layers.spatial_attention(q, k, v, num_heads=2)
    qn, kn, vn = (np.asarray(a).reshape(4, 4) for a in (q, k, v))
    want = np.zeros((4, 4))
    for head in range(2):
      sl = slice(2 * head, 2 * head + 2)
      logits = qn[:, sl] @ kn[:, sl].T / np.sqrt(2.0)
      p = np.exp(logits - logits.max(1, keepdims=True))
      want[:, sl] = (p / p.sum(1, keepdims=True)) @ vn[:, sl]
    np.testing.assert_allclose(np.asarray(out).reshape(4, 4), want, atol=1e-5)
