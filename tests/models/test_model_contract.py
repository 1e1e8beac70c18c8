"""The `diffjax.models` interface, checked on a tiny instance of every network kind.

For each kind: output shape (doubled channels with learn_sigma), noise level and label change the
output, label dropout gives exactly the null-label output, eval mode is deterministic; for the kinds
with their own blocks also dropout only in train mode and bfloat16 activations with float32
parameters. CPU compiles dominate the cost, so each kind compiles a few jitted programs only: one
eval program (all conditioning variants stacked along the batch), one per train-mode randomness,
one bfloat16 program; dropout rates and dtype do not change the parameter tree.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl.testing import parameterized

from diffjax import models

NUM_CLASSES = 5

# Tiny configurations (width 16, 8x8 images): (name, cfg, x_shape).
TINY = [
    ("mlp", dict(kind="mlp", width=16, depth=2, emb_dim=8), (4, 3)),
    (
        "unet",
        dict(kind="unet", ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,)),
        (2, 8, 8, 3),
    ),
    (
        "ddpmpp",
        dict(
            kind="ddpmpp",
            model_channels=16,
            channel_mult=(1, 2),
            num_blocks=1,
            attn_resolutions=(4,),
            augment_dim=9,
        ),
        (2, 8, 8, 3),
    ),
    (
        "ncsnpp",
        dict(
            kind="ncsnpp",
            model_channels=16,
            channel_mult=(1, 2),
            num_blocks=1,
            attn_resolutions=(4,),
        ),
        (2, 8, 8, 3),
    ),
    (
        "adm",
        dict(
            kind="adm",
            model_channels=16,
            channel_mult=(1, 2),
            num_blocks=1,
            attn_resolutions=(4,),
            channels_per_head=8,
            augment_dim=9,
        ),
        (2, 8, 8, 3),
    ),
    (
        "dit",
        dict(
            kind="dit",
            hidden_size=16,
            depth=2,
            num_heads=2,
            patch_size=2,
            freq_dim=16,
            learn_sigma=False,
        ),
        (2, 8, 8, 4),
    ),
]
_BY_NAME = {name: (cfg, shape) for name, cfg, shape in TINY}
_ALL = [(n, n) for n, _, _ in TINY]
# Dropout and bfloat16 cost one more compile each: NCSN++ and ADM share DDPM++'s block
# (edm_blocks.EDMBlock), where both paths are exercised.
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


_AUGMENT_DIM = 9


@functools.cache
def _program(name, train, **overrides):
  """jit(apply) for one module configuration; dropout key and augmentation labels are traced."""
  module = _make(name, **overrides)

  def apply(v, x, c, label, key, aug=None):
    extra = {"augment_labels": aug} if _BY_NAME[name][0].get("augment_dim") else {}
    return module.apply(v, x, c, label, train=train, rngs={"dropout": key}, **extra)

  return jax.jit(apply)


@functools.cache
def _eval_outputs(name):
  """Eval-mode outputs of the module with dropout 0.5 and label dropout 0.5 (inactive in eval) for
  (x, c, label), (x, c + 0.5, label), (x, c, label + 1), (x, c, null), and (x, c, label) with
  random augmentation labels, stacked in one batch: [5, B, ...], twice with different keys."""
  x, c, label, v = _setup(name)
  b = x.shape[0]
  null = jnp.full((b,), NUM_CLASSES, jnp.int32)
  xs = jnp.concatenate([x] * 5)
  cs = jnp.concatenate([c, c + 0.5, c, c, c])
  labels = jnp.concatenate([label, label, (label + 1) % NUM_CLASSES, null, label])
  aug = np.zeros((5 * b, _AUGMENT_DIM), np.float32)
  aug[4 * b :] = np.random.default_rng(2).standard_normal((b, _AUGMENT_DIM))
  run = _program(name, False, dropout=0.5, label_dropout=0.5)
  out = run(v, xs, cs, labels, jax.random.key(0), jnp.asarray(aug))
  again = run(v, xs, cs, labels, jax.random.key(1), jnp.asarray(aug))
  return out.reshape((5, b) + out.shape[1:]), again.reshape((5, b) + out.shape[1:])


def _train_program(name):
  """Train mode with dropout 0.5 and label dropout 0.5 together: one compile per kind."""
  return _program(name, True, dropout=0.5, label_dropout=0.5)


def _per_example_diff(a, b):
  return jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)).reshape(a.shape[0], -1).max(axis=1)


class ContractTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(_ALL)
  def test_shape_determinism_and_learn_sigma(self, name):
    x, c, label, _ = _setup(name)
    out, again = _eval_outputs(name)
    chex.assert_shape(out[0], x.shape)
    chex.assert_tree_all_finite(out)
    chex.assert_trees_all_equal(out, again)  # eval mode: dropout keys are ignored
    module = _make(name, learn_sigma=True)
    out2 = jax.eval_shape(
        lambda: module.init_with_output({"params": jax.random.key(0)}, x, c, label, train=False)[0]
    )
    self.assertEqual(out2.shape, x.shape[:-1] + (2 * x.shape[-1],))

  @parameterized.named_parameters(_ALL)
  def test_noise_level_and_label_change_output(self, name):
    (base, noise, other_label, null, _), _ = _eval_outputs(name)
    for changed in (noise, other_label, null):
      diff = _per_example_diff(base, changed)
      self.assertTrue(bool(jnp.all(diff > 1e-4)), diff)

  @parameterized.named_parameters(_ALL)
  def test_dropout_and_label_dropout_only_in_train_mode(self, name):
    x, c, label, v = _setup(name)
    (cond, *_), _ = _eval_outputs(name)  # eval mode with both rates 0.5 == no dropout at all
    null = jnp.full(label.shape, NUM_CLASSES, jnp.int32)
    run = _train_program(name)
    out = lambda lab, key: run(v, x, c, lab, jax.random.key(key))
    chex.assert_trees_all_equal(out(label, 2), out(label, 2))
    self.assertTrue(bool(jnp.all(_per_example_diff(out(label, 0), out(label, 1)) > 1e-3)))
    self.assertTrue(bool(jnp.all(_per_example_diff(out(label, 0), cond) > 1e-3)))
    # Same key => same dropout masks and same label-drop draws whatever the labels are; an example
    # whose label was dropped therefore gives exactly its output for the null label.
    seen = set()
    for key in range(8):
      is_null = _per_example_diff(out(label, key), out(null, key)) == 0.0
      seen.update(np.asarray(is_null).tolist())
    self.assertEqual(seen, {True, False})

  @parameterized.named_parameters(_HEAVY)
  def test_bfloat16_activations_float32_params(self, name):
    x, c, label, v = _setup(name)
    m16 = _make(name, dtype="bfloat16")
    shapes16 = jax.eval_shape(
        lambda: m16.init({"params": jax.random.key(0)}, x, c, label, train=False)
    )
    chex.assert_trees_all_equal_shapes(v, shapes16)
    self.assertTrue(all(p.dtype == jnp.float32 for p in jax.tree.leaves(shapes16)))
    (o32, *_), _ = _eval_outputs(name)
    o16 = _program(name, False, dtype="bfloat16")(v, x, c, label, jax.random.key(0))
    # The DDPM U-Net runs its output conv in float32 (unet.py); the others end in `dtype`.
    self.assertEqual(o16.dtype, jnp.float32 if name == "unet" else jnp.bfloat16)
    rel = jnp.linalg.norm(o16.astype(jnp.float32) - o32) / jnp.linalg.norm(o32)
    self.assertLess(float(rel), 0.05)

  def test_missing_label_is_the_null_label(self):
    x, c, _, v = _setup("mlp")
    (_, _, _, null, _), _ = _eval_outputs("mlp")
    chex.assert_trees_all_close(_make("mlp").apply(v, x, c, None, train=False), null, atol=1e-6)


class AugmentTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters("ddpmpp", "adm")
  def test_augment_labels_enter_the_network(self, name):
    (base, _, _, _, augmented), _ = _eval_outputs(name)
    self.assertTrue(bool(jnp.all(_per_example_diff(augmented, base) > 1e-4)))


class MakeTest(chex.TestCase):

  def test_bad_kind_and_argument(self):
    with self.assertRaisesRegex(ValueError, "kind"):
      models.make({"kind": "resnet"})
    with self.assertRaisesRegex(ValueError, "widht"):
      models.make({"kind": "mlp", "widht": 3})
    with self.assertRaisesRegex(ValueError, "dtype"):
      models.make({"kind": "mlp", "dtype": "int8"})

  def test_config_dict_with_lists(self):
    cfg = ml_collections.ConfigDict(
        dict(
            kind="unet",
            ch=8,
            ch_mult=[1, 2],
            num_res_blocks=1,
            attn_resolutions=[4],
            dtype="bfloat16",
        )
    )
    module = models.make(cfg)
    self.assertEqual(module.ch_mult, (1, 2))
    self.assertEqual(module.dtype, jnp.bfloat16)
    self.assertEqual(cfg.kind, "unet")  # the caller's config is not modified
