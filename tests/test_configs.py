"""Every config under configs/ trains 2 steps as `:smoke`, then resumes from its checkpoint to step 4.

Fashion-MNIST configs read small IDX files written here (tests never need the real data set).
"""

import glob
import os

import chex
import jax
import numpy as np
from absl.testing import parameterized

from diffjax import config_lib
from diffjax.data import idx
from diffjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "*", "*.py")))


def _fake_fashion_mnist(directory, n=32):
  rng = np.random.default_rng(0)
  for prefix in ("train", "t10k"):
    idx.write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"),
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    idx.write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"),
                  rng.integers(0, 10, (n,), dtype=np.uint8))


class ConfigSmokeTest(chex.TestCase, parameterized.TestCase):

  def test_all_configs_listed(self):
    self.assertGreaterEqual(len(CONFIGS), 6, CONFIGS)

  @parameterized.parameters(*CONFIGS)
  def test_smoke_trains_and_resumes(self, path):
    config = config_lib.load(os.path.join(REPO, path), "smoke")
    if config.data.name == "fashion_mnist":
      config.data.path = self.create_tempdir().full_path
      _fake_fashion_mnist(config.data.path)
    workdir = self.create_tempdir().full_path
    config.train.sample_every_steps = 2  # exercise the periodic hooks too
    config.train.eval_every_steps = 4
    state = loop.train_and_evaluate(config, workdir)
    self.assertEqual(int(jax.device_get(state.step)), 2)
    config.train.num_steps = 4
    state = loop.train_and_evaluate(config, workdir)
    self.assertEqual(int(jax.device_get(state.step)), 4)
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, "checkpoints"))), ["2", "4"])
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, "samples"))),
                     ["step_00000002.png", "step_00000004.png"])
    self.assertTrue(os.path.exists(os.path.join(workdir, "eval", "metrics_00000004.json")))
    self.assertTrue(os.path.exists(os.path.join(workdir, "eval", "samples_00000004.png")))
    leaves = jax.tree.leaves(jax.device_get(state.params))
    self.assertTrue(all(np.all(np.isfinite(x)) for x in leaves))
    samples = loop.sample(config, workdir)
    self.assertEqual(samples.shape[1:], tuple(loop.Experiment(config).dataset.element_shape))
    self.assertTrue(np.all(np.isfinite(samples)))
