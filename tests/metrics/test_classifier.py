"""FD-FMNIST classifier: learns a tiny separable problem, shapes, features, save/load."""

import os

import chex
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from diffjax import data
from diffjax.metrics import classifier
from diffjax.metrics import frechet

_CONFIG = classifier.ClassifierConfig(
    width=4, feature_dim=8, num_classes=3, image_shape=(8, 8, 1), learning_rate=3e-3, batch_size=32
)


def _toy_images(rng, n):
  """Class k has a bright vertical bar in column block k (plus noise); values in [-1, 1]."""
  labels = rng.integers(0, 3, n).astype(np.int32)
  x = -np.ones((n, 8, 8, 1), np.float32) + 0.3 * rng.standard_normal((n, 8, 8, 1))
  for k in range(3):
    x[labels == k, :, 2 * k + 1 : 2 * k + 3, :] = 0.8
  return np.clip(x, -1, 1).astype(np.float32), labels


class ClassifierTest(chex.TestCase):

  @parameterized.parameters(((28, 28, 1),), ((32, 32, 1),))
  def test_shapes(self, image_shape):
    config = classifier.ClassifierConfig(width=2, feature_dim=5, image_shape=image_shape)
    params = classifier.init(jax.random.PRNGKey(0), config)
    x = jnp.zeros((3, *image_shape))
    chex.assert_shape(classifier.logits(params, x, config), (3, 10))
    chex.assert_shape(classifier.features(params, x, config), (3, 5))
    side = image_shape[0] // 4
    chex.assert_shape(params["features"]["kernel"], (side * side * 4, 5))
    with self.assertRaisesRegex(ValueError, "images must be"):
      classifier.features(params, jnp.zeros((3, 16, 16, 1)), config)

  def test_features_are_the_penultimate_layer(self):
    params = classifier.init(jax.random.PRNGKey(1), _CONFIG)
    x, _ = _toy_images(np.random.default_rng(0), 5)
    feats = classifier.features(params, x, _CONFIG)
    self.assertTrue(bool(jnp.all(feats >= 0)))  # post-ReLU
    dense = params["logits"]
    chex.assert_trees_all_close(
        classifier.logits(params, x, _CONFIG), feats @ dense["kernel"] + dense["bias"], atol=1e-5
    )
    chex.assert_trees_all_close(classifier.features_fn(params, _CONFIG)(x), feats, atol=1e-6)

  def test_learns_separable_problem_and_round_trips(self):
    rng = np.random.default_rng(0)
    x, y = _toy_images(rng, 256)
    ds = data.make(dict(name="arrays", x=x, label=y, batch_size=_CONFIG.batch_size), seed=0)
    before = classifier.init(jax.random.PRNGKey(0), _CONFIG)
    x_test, y_test = _toy_images(rng, 200)
    acc_before = classifier.accuracy(before, x_test, y_test, _CONFIG, batch_size=64)
    params, info = classifier.train(ds, _CONFIG, seed=0, num_steps=60)
    acc = classifier.accuracy(params, x_test, y_test, _CONFIG, batch_size=64)
    self.assertLess(acc_before, 0.6)
    self.assertGreaterEqual(acc, 0.98)
    self.assertLess(info["train_loss"], np.log(3.0))  # mean over all 60 steps < chance level
    # Deterministic: the same seed gives the same parameters.
    again, _ = classifier.train(ds, _CONFIG, seed=0, num_steps=60)
    chex.assert_trees_all_close(again, params, atol=1e-6)
    # Features separate the classes: FD between two classes far exceeds FD within one class.
    feats = classifier.features_fn(params, _CONFIG)
    within = frechet.frechet_distance(feats, x_test[y_test == 0][:30], x_test[y_test == 0][30:60])
    between = frechet.frechet_distance(feats, x_test[y_test == 0][:30], x_test[y_test == 1][:30])
    self.assertGreater(between, 5 * within)
    # Save / load round trip.
    directory = self.create_tempdir().full_path
    classifier.save(directory, params, _CONFIG)
    config, loaded = classifier.load(directory)
    self.assertEqual(config, _CONFIG)
    chex.assert_trees_all_equal(loaded, params)

  def test_load_errors(self):
    directory = self.create_tempdir().full_path
    with self.assertRaisesRegex(FileNotFoundError, "train_classifier"):
      classifier.load(directory)
    params = classifier.init(jax.random.PRNGKey(0), _CONFIG)
    classifier.save(directory, params, _CONFIG)
    path = os.path.join(directory, classifier.PARAMS_FILE)
    with np.load(path) as f:
      arrays = {k: f[k] for k in f.files}
    bad = dict(arrays, **{"features/bias": np.zeros(9, np.float32)})
    np.savez(path, **bad)
    with self.assertRaisesRegex(ValueError, "features/bias.*shape"):
      classifier.load(directory)
    np.savez(path, **{k: v for k, v in arrays.items() if k != "logits/kernel"})
    with self.assertRaisesRegex(ValueError, "missing array 'logits/kernel'"):
      classifier.load(directory)
    np.savez(path, extra=np.zeros(1), **arrays)
    with self.assertRaisesRegex(ValueError, "unexpected arrays"):
      classifier.load(directory)

  def test_config_validation(self):
    with self.assertRaisesRegex(ValueError, "width"):
      classifier.ClassifierConfig(width=0)
    with self.assertRaisesRegex(ValueError, "image_shape"):
      classifier.ClassifierConfig(image_shape=(28, 28))
    with self.assertRaisesRegex(ValueError, "num_steps"):
      classifier.train(None, _CONFIG, seed=0, num_steps=0)
