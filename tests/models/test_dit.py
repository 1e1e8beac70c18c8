"""DiT: published parameter counts, MAE position embedding, adaLN-Zero identity, patch layout."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import models
from diffjax.models import dit

# Peebles & Xie 2023, Table 1 (ImageNet 256x256 -> 32x32x4 latents, learned sigma).
PUBLISHED_PARAMS = {"S": 33e6, "B": 130e6, "L": 458e6, "XL": 675e6}


class DiTCountTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters(*dit.PRESETS)
  def test_published_parameter_counts(self, variant):
    n = models.param_count(models.make({"kind": "dit", "variant": variant}), (1, 32, 32, 4))
    self.assertAlmostEqual(n / PUBLISHED_PARAMS[variant.split("/")[0]], 1.0, delta=0.01)

  def test_xl2_count_by_hand(self):
    d, depth, p, c, f = 1152, 28, 2, 4, 256
    lin = lambda i, o: i * o + o
    block = 4 * lin(d, d) + lin(d, 4 * d) + lin(4 * d, d) + lin(d, 6 * d)  # attn, mlp, adaLN
    want = (
        lin(p * p * c, d)
        + lin(f, d)
        + lin(d, d)
        + 1001 * d
        + depth * block
        + lin(d, 2 * d)
        + lin(d, p * p * 2 * c)
    )
    n = models.param_count(models.make({"kind": "dit", "variant": "XL/2"}), (1, 32, 32, 4))
    self.assertEqual(n, want)
    self.assertEqual(n, 674_834_720)  # + 295,936 frozen position entries = 675.1 M in PyTorch

  def test_bad_variant_and_patch(self):
    with self.assertRaisesRegex(ValueError, "variant"):
      models.make({"kind": "dit", "variant": "XXL/2"})
    module = models.make(
        {
            "kind": "dit",
            "hidden_size": 8,
            "depth": 1,
            "num_heads": 2,
            "patch_size": 4,
            "num_classes": 0,
        }
    )
    with self.assertRaisesRegex(ValueError, "patch_size"):
      jax.eval_shape(
          lambda: module.init(
              {"params": jax.random.key(0)}, jnp.ones((1, 6, 8, 4)), jnp.ones(1), train=False
          )
      )


class PositionEmbeddingTest(chex.TestCase):

  def test_matches_formula_elementwise(self):
    d, gh, gw = 8, 2, 3
    pe = dit.sincos_2d(d, gh, gw)
    chex.assert_shape(pe, (gh * gw, d))
    for i in range(gh):
      for j in range(gw):
        for k in range(d // 4):
          w = 10000.0 ** (-k / (d / 4))
          row = pe[i * gw + j]
          np.testing.assert_allclose(
              [row[k], row[d // 4 + k], row[d // 2 + k], row[3 * d // 4 + k]],
              [np.sin(j * w), np.cos(j * w), np.sin(i * w), np.cos(i * w)],
              atol=1e-6,
          )


def _tiny(depth):
  return models.make(
      {
          "kind": "dit",
          "hidden_size": 16,
          "depth": depth,
          "num_heads": 2,
          "patch_size": 2,
          "freq_dim": 16,
          "num_classes": 3,
          "learn_sigma": True,
      }
  )


class AdaLNZeroTest(chex.TestCase):

  def test_fresh_init_output_is_zero_and_blocks_are_identity(self):
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 2))
    c, label = jnp.array([0.3, 0.9]), jnp.array([0, 2])
    module = _tiny(1)
    v = jax.jit(functools.partial(module.init, train=False))(
        {"params": jax.random.key(1)}, x, c, label
    )
    out = module.apply(v, x, c, label, train=False)
    chex.assert_shape(out, (2, 4, 4, 4))
    chex.assert_trees_all_equal(out, jnp.zeros_like(out))
    block = dit.DiTBlock(16, 2, 4.0, 0.0, jnp.float32)
    h, cond = jax.random.normal(jax.random.key(2), (2, 4, 16)), jnp.ones((2, 16))
    bv = {"params": v["params"]["block0"]}  # the freshly initialised block
    chex.assert_trees_all_close(block.apply(bv, h, cond, False), h, atol=1e-6)

  def test_patches_map_back_to_their_own_pixels(self):
    # With no blocks, output patch (i, j) depends only on input patch (i, j).
    module = _tiny(0)
    x = jax.random.normal(jax.random.key(0), (1, 4, 6, 2))
    c = jnp.array([0.5])
    v = models.random_variables(module, x, c)
    base = module.apply(v, x, c, train=False)
    moved = module.apply(v, x.at[:, 2:4, 4:6, :].add(1.0), c, train=False)
    changed = jnp.abs(moved - base).max(axis=(0, 3)) > 1e-6  # [H, W]
    want = np.zeros((4, 6), bool)
    want[2:4, 4:6] = True
    np.testing.assert_array_equal(np.asarray(changed), want)
