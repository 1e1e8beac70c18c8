"""FD-FMNIST evaluator: centre crop of the 32×32 layout, FD against stored test statistics, and
the runner's FD / bits-per-dim eval hooks."""

import os
import types

import chex
import jax
import numpy as np

from diffjax import config_lib
from diffjax.data import fashion_mnist
from diffjax.metrics import classifier
from diffjax.metrics import fd_fmnist
from diffjax.metrics import frechet
from diffjax.train import evaluate
from diffjax.train import experiment
from diffjax.train import loop

_CONFIG = classifier.ClassifierConfig(width=2, feature_dim=6, image_shape=(28, 28, 1))


def _images(seed, n, high=256):
  rng = np.random.default_rng(seed)
  return fashion_mnist.to_model_range(rng.integers(0, high, (n, 28, 28), dtype=np.uint8))


def _classifier_dir(tmp, reference):
  params = classifier.init(jax.random.PRNGKey(0), _CONFIG)
  classifier.save(tmp, params, _CONFIG)
  stats = frechet.feature_stats(classifier.features_fn(params, _CONFIG), reference)
  frechet.save_stats(os.path.join(tmp, fd_fmnist.TEST_STATS_FILE), stats)
  return params


class FdFmnistTest(chex.TestCase):

  def test_center_crop_inverts_the_data_padding(self):
    x28 = _images(0, 3)
    x32 = fashion_mnist.to_model_range(np.round((x28[..., 0] + 1) * 127.5).astype(np.uint8), True)
    chex.assert_shape(x32, (3, 32, 32, 1))
    np.testing.assert_array_equal(fd_fmnist.center_crop(x32, (28, 28)), x28)
    with self.assertRaisesRegex(ValueError, "31x31"):
      fd_fmnist.center_crop(x32[:, :31, :31], (28, 28))

  def test_distance_equals_direct_fd_and_ignores_padding(self):
    tmp = self.create_tempdir().full_path
    reference, candidates = _images(1, 300), _images(2, 200, high=128)  # darker: FD > 0
    params = _classifier_dir(tmp, reference)
    evaluator = fd_fmnist.Evaluator.load(tmp)
    direct = frechet.frechet_distance(
        classifier.features_fn(params, _CONFIG), candidates, reference
    )
    padded = np.pad(candidates, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    self.assertGreater(direct, 1e-3)
    np.testing.assert_allclose(evaluator.distance(candidates), direct, rtol=1e-5)
    np.testing.assert_allclose(evaluator.distance(padded), direct, rtol=1e-5)
    # The reference against its own statistics: zero up to float error.
    self.assertLess(abs(evaluator.distance(reference)), 1e-6)

  def test_missing_stats_named(self):
    tmp = self.create_tempdir().full_path
    classifier.save(tmp, classifier.init(jax.random.PRNGKey(0), _CONFIG), _CONFIG)
    with self.assertRaisesRegex(FileNotFoundError, "test_stats.npz"):
      fd_fmnist.Evaluator.load(tmp)


class EvalHooksTest(chex.TestCase):

  def _experiment(self, n_test):
    config = config_lib.load(
        os.path.join(loop.__file__.rsplit("/diffjax/", 1)[0], "configs/ddpm/fashion_mnist.py"),
        "smoke",
    )
    config.data.path = self.create_tempdir().full_path
    for prefix, n in (("train", 16), ("t10k", n_test)):
      from diffjax.data import idx  # pylint: disable=g-import-not-at-top

      rng = np.random.default_rng(3)
      idx.write_idx(
          os.path.join(config.data.path, f"{prefix}-images-idx3-ubyte.gz"),
          rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
      )
      idx.write_idx(
          os.path.join(config.data.path, f"{prefix}-labels-idx1-ubyte.gz"),
          rng.integers(0, 10, (n,), dtype=np.uint8),
      )
    return config

  def test_bpd_hook_averages_exactly_the_first_n_test_examples(self):
    config = self._experiment(n_test=40)
    config.eval.bpd_num_examples, config.eval.bpd_batch_size = 25, 10  # a ragged last batch
    exp = experiment.Experiment(config)
    # A stand-in method whose "bpd" is the image mean: the expected value is known exactly.
    exp.method = types.SimpleNamespace(
        has_bpd=True,
        bpd=lambda params, rng, x: {
            "bpd": x.reshape(len(x), -1).mean(1),
            "two": 2.0 + 0 * x[:, 0, 0, 0],
        },
    )
    x = exp.reference_data(25)["x"].reshape(25, -1).mean(1)
    got = evaluate.bpd_metrics(evaluate.Context(exp, params=None, step=0, out=None))
    np.testing.assert_allclose(got["test_bpd"], x.mean(), rtol=1e-6)
    np.testing.assert_allclose(got["test_bpd_stderr"], x.std(ddof=1) / 5.0, rtol=1e-5)
    self.assertEqual(got["test_two"], 2.0)

  def test_bpd_without_estimator_is_named(self):
    config = self._experiment(n_test=8)
    config.eval.bpd_num_examples = 4
    exp = experiment.Experiment(config)
    exp.method = types.SimpleNamespace(has_bpd=False)
    with self.assertRaisesRegex(ValueError, "bpd_num_examples"):
      evaluate.bpd_metrics(evaluate.Context(exp, params=None, step=0, out=None))

  def test_fd_hook_per_sampler(self):
    config = self._experiment(n_test=8)
    tmp = self.create_tempdir().full_path
    _classifier_dir(tmp, _images(4, 50))
    config.eval.fd_classifier_dir = tmp
    config.eval.fd_num_samples = 12
    config.eval.fd_samplers = {
        "default": {},
        "heun": dict(solver="heun", num_steps=2, grid="karras", grid_kwargs=dict(sigma_max=80.0)),
    }
    exp = experiment.Experiment(config)
    params = exp.method.init(jax.random.PRNGKey(0), exp.example_batch)
    out = self.create_tempdir().full_path
    got = evaluate.fd_metrics(evaluate.Context(exp, params, step=7, out=out))
    self.assertEqual(
        sorted(got),
        ["fd_fmnist_default", "fd_fmnist_heun", "sample_seconds_default", "sample_seconds_heun"],
    )
    self.assertTrue(all(np.isfinite(v) for v in got.values()))
    self.assertNotEqual(got["fd_fmnist_default"], got["fd_fmnist_heun"])
    self.assertTrue(os.path.exists(os.path.join(out, "fd_samples_00000007_heun.png")))
