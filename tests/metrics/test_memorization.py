"""Memorization metrics against brute force and a closed form; the two new evaluators' wiring."""

import os

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from diffjax import config_lib
from diffjax.core import gaussian_reference
from diffjax.metrics import memorization
from diffjax.train import evaluate
from diffjax.train import experiment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NearestNeighbourTest(absltest.TestCase):

  def test_nearest_two_equals_brute_force(self):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(37, 3, 2, 1)).astype(np.float32)
    queries = np.concatenate([train[[4, 30]], rng.normal(size=(9, 3, 2, 1))]).astype(np.float32)
    # chunk 8 with k 4: five chunks, the last one (5 rows) padded.
    d1, d2, i1 = memorization.nearest_two(queries, train, chunk=8, k=4)
    dist = np.linalg.norm(queries.reshape(11, 1, -1) - train.reshape(1, 37, -1), axis=-1)
    srt = np.sort(dist, axis=1)
    np.testing.assert_allclose(d1, srt[:, 0], atol=1e-6)
    np.testing.assert_allclose(d2, srt[:, 1], rtol=1e-6)
    np.testing.assert_array_equal(i1, np.argmin(dist, axis=1))
    self.assertEqual(d1[0], 0.0)  # an exact copy is at distance exactly 0, not sqrt(rounding)

  def test_copy_fraction(self):
    rng = np.random.default_rng(1)
    train = rng.normal(size=(50, 16)).astype(np.float32)
    near = train[:6] + 0.01 * rng.normal(size=(6, 16)).astype(np.float32)  # copies
    far = rng.normal(size=(14, 16)).astype(np.float32)  # fresh draws
    queries = np.concatenate([near, far])
    ratio, _ = memorization.nn_ratio(queries, train)
    dist = np.sort(np.linalg.norm(queries[:, None] - train[None], axis=-1), axis=1)
    expected = np.mean(dist[:, 0] / dist[:, 1] < 1 / 3)
    self.assertAlmostEqual(memorization.copy_fraction(ratio), expected)
    self.assertAlmostEqual(expected, 6 / 20)  # the six near-copies and none of the fresh draws


class DenoisingLossTest(absltest.TestCase):

  def test_gaussian_mmse(self):
    # x ~ N(0, v), exact denoiser: E(D(x + σε) - x)² = vσ²/(v + σ²) per dimension.
    v, sigmas = 0.7, (0.1, 1.0, 5.0)
    x = jax.random.normal(jax.random.PRNGKey(0), (20000, 4)) * np.sqrt(v)
    den = gaussian_reference.optimal_denoiser(jnp.zeros(()), jnp.asarray(v))
    loss = memorization.denoising_loss_per_sigma(den, x, jax.random.PRNGKey(1), sigmas)
    expected = [v * s**2 / (v + s**2) for s in sigmas]
    np.testing.assert_allclose(loss, expected, rtol=0.03)


class EvaluatorWiringTest(absltest.TestCase):

  def test_pfode_bpd_and_memorization_evaluators(self):
    config = config_lib.load(os.path.join(REPO, "configs/edm/toy2d.py"), "smoke")
    config.eval.num_samples = 0
    config.eval.pfode_bpd_num_examples = 6
    # batch 8 on the 8 test devices: the batch is split along the mesh
    config.eval.pfode_kwargs.update(num_steps=2, divergence="exact", batch_size=8)
    config.eval.memorization.update(num_samples=8, num_train=32, loss_num_examples=8)
    exp = experiment.Experiment(config)
    state = jax.jit(exp.init_state)()
    out = self.create_tempdir().full_path
    metrics = evaluate.evaluate_state(exp, state, out, 0)
    for key in ("pfode_bpd", "pfode_bpd_stderr", "copy_fraction", "heldout_copy_fraction"):
      self.assertIn(key, metrics)
      self.assertTrue(np.isfinite(metrics[key]), key)
    self.assertIn("loss_gap_s0.5", metrics)
    config.eval.pfode_kwargs.update(method="euler")
    with self.assertRaisesRegex(ValueError, "method"):
      evaluate.evaluate_state(exp, state, out, 0)


if __name__ == "__main__":
  absltest.main()
