"""The `diffjax.models` interface, checked on a tiny instance of every network kind.

For each kind: output shape (doubled channels with learn_sigma), eval-mode determinism, dropout only in
train mode, noise level and label change the output, label dropout gives exactly the null-label output,
and bfloat16 activations with float32 parameters.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import models

# Tiny configurations (width 16, 8x8 images): (name, cfg, x_shape).
TINY = [
  ("mlp", dict(kind="mlp", width=16, depth=2, emb_dim=8), (4, 3)),
  ("mlp_positional", dict(kind="mlp", width=16, depth=1, emb_dim=8, embedding="positional"), (4, 2)),
  ("unet", dict(kind="unet", ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,),
                dropout=0.0), (2, 8, 8, 3)),
]


def _variables(module, x, key=0, **kwargs):
  """Initialised variables with every parameter perturbed, so zero-initialised heads are not zero."""
  k_init, k_pert = jax.random.split(jax.random.key(key))
  variables = module.init({"params": k_init, "dropout": k_init}, x,
                          jnp.ones(x.shape[:1]), train=False, **kwargs)
  leaves, tree = jax.tree.flatten(variables)
  keys = jax.random.split(k_pert, len(leaves))
  leaves = [p + 0.05 * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)]
  return jax.tree.unflatten(tree, leaves)


def _inputs(x_shape, key=1):
  kx, kn = jax.random.split(jax.random.key(key))
  return jax.random.normal(kx, x_shape), jax.random.uniform(kn, x_shape[:1], minval=-1.0, maxval=1.0)


class ContractTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(TINY)
  def test_shape_and_learn_sigma(self, cfg, x_shape):
    x, c = _inputs(x_shape)
    for learn_sigma in (False, True):
      module = models.make({**cfg, "learn_sigma": learn_sigma})
      out = module.apply(_variables(module, x), x, c, train=False)
      want = x_shape[:-1] + (x_shape[-1] * (2 if learn_sigma else 1),)
      chex.assert_shape(out, want)
      chex.assert_tree_all_finite(out)

  @parameterized.named_parameters(TINY)
  def test_dropout_only_in_train_mode(self, cfg, x_shape):
    module = models.make({**cfg, "dropout": 0.5})
    x, c = _inputs(x_shape)
    v = _variables(module, x)
    run = lambda key, train: module.apply(v, x, c, train=train, rngs={"dropout": jax.random.key(key)})
    chex.assert_trees_all_equal(run(0, False), run(1, False))
    self.assertGreater(float(jnp.max(jnp.abs(run(0, True) - run(1, True)))), 1e-3)
    chex.assert_trees_all_equal(run(2, True), run(2, True))

  @parameterized.named_parameters(TINY)
  def test_noise_level_changes_output(self, cfg, x_shape):
    module = models.make(cfg)
    x, c = _inputs(x_shape)
    v = _variables(module, x)
    out0 = module.apply(v, x, c, train=False)
    out1 = module.apply(v, x, c + 0.5, train=False)
    diff = jnp.abs(out0 - out1).reshape(x_shape[0], -1).max(axis=1)
    self.assertTrue(bool(jnp.all(diff > 1e-4)), diff)

  @parameterized.named_parameters(TINY)
  def test_label_conditioning_and_label_dropout(self, cfg, x_shape):
    num_classes = 5
    module = models.make({**cfg, "num_classes": num_classes, "label_dropout": 0.5})
    b = x_shape[0]
    x, c = _inputs(x_shape)
    label = jnp.arange(b, dtype=jnp.int32) % num_classes
    v = _variables(module, x, label=label)
    out = lambda lab, train=False, key=0: module.apply(
      v, x, c, lab, train=train, rngs={"dropout": jax.random.key(key)})
    cond, null = out(label), out(jnp.full((b,), num_classes, jnp.int32))
    per_ex = lambda a, b_: jnp.abs(a - b_).reshape(b, -1).max(axis=1)
    self.assertTrue(bool(jnp.all(per_ex(cond, null) > 1e-4)))
    self.assertTrue(bool(jnp.all(per_ex(cond, out((label + 1) % num_classes)) > 1e-4)))
    chex.assert_trees_all_close(out(None), null, atol=1e-6)   # no label = null label
    # Train mode, no other dropout: each example is exactly its conditional or its null output.
    seen = set()
    for key in range(6):
      tr = out(label, train=True, key=key)
      is_cond, is_null = per_ex(tr, cond) < 1e-5, per_ex(tr, null) < 1e-5
      self.assertTrue(bool(jnp.all(is_cond | is_null)))
      seen.update(np.asarray(is_null).tolist())
    self.assertEqual(seen, {True, False})

  @parameterized.named_parameters(TINY)
  def test_bfloat16_activations_float32_params(self, cfg, x_shape):
    x, c = _inputs(x_shape)
    m32, m16 = models.make(cfg), models.make({**cfg, "dtype": "bfloat16"})
    v = _variables(m32, x)
    v16 = m16.init({"params": jax.random.key(0)}, x, c, train=False)
    chex.assert_trees_all_equal_shapes(v, v16)
    self.assertTrue(all(p.dtype == jnp.float32 for p in jax.tree.leaves(v16)))
    o32, o16 = m32.apply(v, x, c, train=False), m16.apply(v, x, c, train=False)
    self.assertEqual(o16.dtype, jnp.bfloat16)
    rel = jnp.linalg.norm(o16.astype(jnp.float32) - o32) / jnp.linalg.norm(o32)
    self.assertLess(float(rel), 0.05)


class MakeTest(chex.TestCase):

  def test_bad_kind_and_argument(self):
    with self.assertRaisesRegex(ValueError, "kind"):
      models.make({"kind": "resnet"})
    with self.assertRaisesRegex(ValueError, "widht"):
      models.make({"kind": "mlp", "widht": 3})
    with self.assertRaisesRegex(ValueError, "dtype"):
      models.make({"kind": "mlp", "dtype": "int8"})
