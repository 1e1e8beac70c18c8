"""The `diffjax.models` interface, checked on a tiny instance of every network kind.

For each kind: output shape (doubled channels with learn_sigma), eval-mode determinism, dropout only in
train mode, noise level and label change the output, label dropout gives exactly the null-label output,
and bfloat16 activations with float32 parameters. Dropout rates and dtype do not change the parameter
tree, so each kind is initialised once (with labels) and reused by all tests.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import models

NUM_CLASSES = 5

# Tiny configurations (width 16, 8x8 images): (name, cfg, x_shape). Dropout is set per test.
TINY = [
  ("mlp", dict(kind="mlp", width=16, depth=2, emb_dim=8), (4, 3)),
  ("unet", dict(kind="unet", ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,)),
   (2, 8, 8, 3)),
  ("ddpmpp", dict(kind="ddpmpp", model_channels=16, channel_mult=(1, 2), num_blocks=1,
                  attn_resolutions=(4,), augment_dim=9), (2, 8, 8, 3)),
  ("ncsnpp", dict(kind="ncsnpp", model_channels=16, channel_mult=(1, 2), num_blocks=1,
                  attn_resolutions=(4,)), (2, 8, 8, 3)),
  ("adm", dict(kind="adm", model_channels=16, channel_mult=(1, 2), num_blocks=1,
               attn_resolutions=(4,), channels_per_head=8, augment_dim=9), (2, 8, 8, 3)),
  ("dit", dict(kind="dit", hidden_size=16, depth=2, num_heads=2, patch_size=2, freq_dim=16,
               learn_sigma=False), (2, 8, 8, 4)),
]
_BY_NAME = {name: (cfg, shape) for name, cfg, shape in TINY}
# Dropout and bfloat16 cost an extra CPU compile per kind: NCSN++ and ADM share DDPM++'s block
# (edm_blocks.EDMBlock), where both paths are already exercised.
_HEAVY = [(n, n) for n in ("mlp", "unet", "ddpmpp", "dit")]


def _make(name, **overrides):
  cfg, _ = _BY_NAME[name]
  return models.make({**cfg, "num_classes": NUM_CLASSES, "dropout": 0.0, **overrides})


@functools.cache
def _setup(name):
  """(x, noise_cond, label, variables) for the tiny configuration `name`."""
  _, x_shape = _BY_NAME[name]
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
  c = jnp.asarray(rng.uniform(-1.0, 1.0, x_shape[:1]), jnp.float32)
  label = jnp.arange(x_shape[0], dtype=jnp.int32) % NUM_CLASSES
  return x, c, label, models.random_variables(_make(name), x, c, label)


def _per_example_diff(a, b):
  return jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)).reshape(a.shape[0], -1).max(axis=1)


class ContractTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters((n, n) for n, _, _ in TINY)
  def test_shape_and_learn_sigma(self, name):
    x, c, label, v = _setup(name)
    out = _make(name).apply(v, x, c, label, train=False)
    chex.assert_shape(out, x.shape)
    chex.assert_tree_all_finite(out)
    module = _make(name, learn_sigma=True)
    out2 = jax.eval_shape(lambda: module.init_with_output(
      {"params": jax.random.key(0)}, x, c, label, train=False)[0])
    self.assertEqual(out2.shape, x.shape[:-1] + (2 * x.shape[-1],))

  @parameterized.named_parameters(_HEAVY)
  def test_dropout_only_in_train_mode(self, name):
    x, c, label, v = _setup(name)
    module = _make(name, dropout=0.5)
    run = lambda key, train: module.apply(v, x, c, label, train=train,
                                          rngs={"dropout": jax.random.key(key)})
    chex.assert_trees_all_equal(run(0, False), run(1, False))
    self.assertTrue(bool(jnp.all(_per_example_diff(run(0, True), run(1, True)) > 1e-3)))
    chex.assert_trees_all_equal(run(2, True), run(2, True))

  @parameterized.named_parameters((n, n) for n, _, _ in TINY)
  def test_noise_level_changes_output(self, name):
    x, c, label, v = _setup(name)
    module = _make(name)
    diff = _per_example_diff(module.apply(v, x, c, label, train=False),
                             module.apply(v, x, c + 0.5, label, train=False))
    self.assertTrue(bool(jnp.all(diff > 1e-4)), diff)

  @parameterized.named_parameters((n, n) for n, _, _ in TINY)
  def test_label_conditioning_and_label_dropout(self, name):
    x, c, label, v = _setup(name)
    b = x.shape[0]
    module = _make(name, label_dropout=0.5)
    out = lambda lab, train=False, key=0: module.apply(
      v, x, c, lab, train=train, rngs={"dropout": jax.random.key(key)})
    cond, null = out(label), out(jnp.full((b,), NUM_CLASSES, jnp.int32))
    self.assertTrue(bool(jnp.all(_per_example_diff(cond, null) > 1e-4)))
    self.assertTrue(bool(jnp.all(_per_example_diff(cond, out((label + 1) % NUM_CLASSES)) > 1e-4)))
    chex.assert_trees_all_close(out(None), null, atol=1e-6)   # no label = null label
    # Train mode, no other dropout: each example is exactly its conditional or its null output.
    seen = set()
    for key in range(6):
      tr = out(label, train=True, key=key)
      is_cond, is_null = _per_example_diff(tr, cond) < 1e-5, _per_example_diff(tr, null) < 1e-5
      self.assertTrue(bool(jnp.all(is_cond | is_null)))
      seen.update(np.asarray(is_null).tolist())
    self.assertEqual(seen, {True, False})

  @parameterized.named_parameters(_HEAVY)
  def test_bfloat16_activations_float32_params(self, name):
    x, c, label, v = _setup(name)
    m16 = _make(name, dtype="bfloat16")
    shapes16 = jax.eval_shape(lambda: m16.init({"params": jax.random.key(0)}, x, c, label,
                                               train=False))
    chex.assert_trees_all_equal_shapes(v, shapes16)
    self.assertTrue(all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes16)))
    o32 = _make(name).apply(v, x, c, label, train=False)
    o16 = jax.jit(lambda v: m16.apply(v, x, c, label, train=False))(v)   # eager bf16 is slow on CPU
    self.assertEqual(o16.dtype, jnp.bfloat16)
    rel = jnp.linalg.norm(o16.astype(jnp.float32) - o32) / jnp.linalg.norm(o32)
    self.assertLess(float(rel), 0.05)


class AugmentTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters("ddpmpp", "adm")
  def test_augment_labels_enter_the_network(self, name):
    x, c, label, v = _setup(name)
    module = _make(name)
    base = module.apply(v, x, c, label, train=False)
    zeros = module.apply(v, x, c, label, train=False, augment_labels=jnp.zeros((x.shape[0], 9)))
    chex.assert_trees_all_close(zeros, base, atol=1e-6)   # zeros == no augmentation (bias-free map)
    aug = jnp.asarray(np.random.default_rng(2).standard_normal((x.shape[0], 9)), jnp.float32)
    moved = module.apply(v, x, c, label, train=False, augment_labels=aug)
    self.assertTrue(bool(jnp.all(_per_example_diff(moved, base) > 1e-4)))


class MakeTest(chex.TestCase):

  def test_bad_kind_and_argument(self):
    with self.assertRaisesRegex(ValueError, "kind"):
      models.make({"kind": "resnet"})
    with self.assertRaisesRegex(ValueError, "widht"):
      models.make({"kind": "mlp", "widht": 3})
    with self.assertRaisesRegex(ValueError, "dtype"):
      models.make({"kind": "mlp", "dtype": "int8"})
