"""Reflow end to end: `--mode=pairs` couples (ε, x) exactly as the sampler maps ε, the `pairs`
source serves them (real data for held-out splits), and the reflow stage trains on them from the
1-RF checkpoint with the coupled noise."""

import os

import chex
import jax
import numpy as np
import pytest

from diffjax import config_lib
from diffjax import data
from diffjax.data import fashion_mnist
from diffjax.train import experiment
from diffjax.train import inference
from diffjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "rectified_flow", "fashion_mnist.py")


class ReflowTest(chex.TestCase):

  @pytest.mark.slow  # .ci/run runs the slow tests after the default suite
  def test_pairs_then_reflow(self):
    fmnist, rf1, rf2 = (self.create_tempdir().full_path for _ in range(3))
    fashion_mnist.write_fake(fmnist, 24)
    config = config_lib.load(CONFIG, "smoke")
    config.data.path = fmnist
    config.sample.solver, config.sample.num_steps = "euler", 3  # a cheap deterministic sampler
    config.sample.solver_kwargs = {}
    config.sample.num_samples, config.sample.batch_size = 12, 8  # a ragged last batch
    one = jax.devices()[:1]  # the loop's sharding is covered elsewhere; one device compiles faster
    loop.train_and_evaluate(config, rf1, one)
    path = inference.pairs(config, rf1, one)
    with np.load(path) as f:
      eps, x = f["eps"], f["x"]
    chex.assert_shape([eps, x], (12, 32, 32, 1))
    # Each x is the sampler's output from its ε (batch 0: the first 8 pairs).
    exp, state, _ = experiment.restore_for_inference(config, rf1, one)
    again = exp.method.sample(state.ema_params, jax.random.PRNGKey(7), 8, noise=eps[:8])
    np.testing.assert_allclose(np.asarray(again), x[:8], atol=1e-5)
    other = exp.method.sample(state.ema_params, jax.random.PRNGKey(7), 8)
    self.assertGreater(float(np.max(np.abs(np.asarray(other) - x[:8]))), 1e-3)

    reflow = config_lib.load(CONFIG, f"stage=reflow,smoke,pairs={path},init_from={rf1}")
    reflow.data.reference.path = fmnist
    ds = data.make(reflow.data, seed=0)
    batch = ds.batch(0)
    self.assertEqual(sorted(batch), ["eps", "x"])
    rows = [int(np.argmin(np.abs(x.reshape(12, -1) - b.reshape(1, -1)).sum(1))) for b in batch["x"]]
    np.testing.assert_array_equal(batch["eps"], eps[rows])  # each x keeps its own ε
    test = data.make(reflow.data, seed=0, split="test").batch(0)
    self.assertEqual(sorted(test), ["label", "x"])  # held-out data are the real images
    state = loop.train_and_evaluate(reflow, rf2, one)
    self.assertEqual(int(jax.device_get(state.step)), 2)
    self.assertTrue(np.all(np.isfinite(inference.sample(reflow, rf2, one))))

  def test_missing_pairs_file_is_named(self):
    cfg = dict(
        name="pairs",
        path="/nonexistent/pairs.npz",
        batch_size=4,
        reference=config_lib.fashion_mnist(batch_size=4),
    )
    with self.assertRaisesRegex(FileNotFoundError, "--mode=pairs"):
      data.make(cfg, seed=0)
