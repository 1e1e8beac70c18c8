"""Post-hoc EMA (EDM2): σ_rel ↔ γ, power-function tracks, reconstruction, snapshots and the command."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from diffjax import config_lib
from diffjax.train import loop
from diffjax.train import posthoc_ema
from diffjax.train import posthoc_snapshots

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _trajectory(num_steps: int, seed: int = 0) -> np.ndarray:
  """A parameter path [T, 3]: two smooth drifts and a random walk (SGD-like noise)."""
  tau = np.arange(1, num_steps + 1)
  walk = np.cumsum(np.random.default_rng(seed).normal(size=num_steps)) * 0.1
  return np.stack([np.sin(tau / 50.0), np.cos(tau / 170.0), walk], 1).astype(np.float32)


def _tracked(theta, gammas, every):
  """Runs the jitted track update over theta; snapshots (t, γ, value) every `every` steps."""
  update = jax.jit(lambda tr, p, t: posthoc_ema.update_tracks(tr, p, t, gammas))
  tracks = posthoc_ema.init_tracks(jnp.zeros(3), len(gammas))
  snaps = []
  for t in range(1, len(theta) + 1):
    tracks = update(tracks, jnp.asarray(theta[t - 1]), t)
    if t % every == 0:
      snaps += [(t, g, np.asarray(v, np.float64)) for g, v in zip(gammas, tracks)]
  return tracks, snaps


class SigmaRelTest(parameterized.TestCase):

  def test_published_values(self):
    # EDM2 (Karras et al. 2024, §3.1): σ_rel = 0.05 is γ = 16.97, σ_rel = 0.10 is γ = 6.94.
    self.assertAlmostEqual(posthoc_ema.sigma_rel_to_gamma(0.05), 16.97, places=2)
    self.assertAlmostEqual(posthoc_ema.sigma_rel_to_gamma(0.10), 6.94, places=2)

  @parameterized.parameters(0.01, 0.03, 0.05, 0.1, 0.2, 0.28)
  def test_round_trip(self, sigma_rel):
    gamma = posthoc_ema.sigma_rel_to_gamma(sigma_rel)
    self.assertAlmostEqual(float(posthoc_ema.gamma_to_sigma_rel(gamma)), sigma_rel, places=10)

  def test_sigma_rel_is_the_profiles_relative_std(self):
    # σ_rel = std of τ under p(τ) ∝ τ^γ on [0, T], divided by T: a brute-force integral.
    gamma = 6.94
    tau = (np.arange(200_000) + 0.5) / 200_000
    p = tau**gamma / np.sum(tau**gamma)
    std = np.sqrt(np.sum(p * tau**2) - np.sum(p * tau) ** 2)
    self.assertAlmostEqual(float(posthoc_ema.gamma_to_sigma_rel(gamma)), std, places=6)

  def test_bad_sigma_rel(self):
    with self.assertRaisesRegex(ValueError, "sigma_rel"):
      posthoc_ema.sigma_rel_to_gamma(0.5)


class ReconstructionTest(parameterized.TestCase):

  def test_track_is_the_discrete_power_profile(self):
    theta = _trajectory(300)
    gamma = posthoc_ema.sigma_rel_to_gamma(0.1)
    tracks, _ = _tracked(theta, (gamma,), 1000)
    w = posthoc_ema.discrete_profile(300, gamma)
    self.assertAlmostEqual(float(w.sum()), 1.0, places=12)
    np.testing.assert_allclose(tracks[0], w @ theta, atol=2e-5)

  def test_update_weight_is_accurate_late_in_training(self):
    # 1 - β(t) at t = 10⁶ against float64: 1 - 1/t in float32 alone would be 6 % off.
    gamma, t = 6.94, 1_000_000
    tracks = posthoc_ema.update_tracks((jnp.zeros(()),), jnp.ones(()), t, (gamma,))
    self.assertAlmostEqual(float(tracks[0]) / (1 - (1 - 1 / t) ** (gamma + 1)), 1.0, places=5)

  def test_edm_config_builds_with_tracks(self):
    config = config_lib.load(
        os.path.join(REPO, "configs/edm/fashion_mnist.py"), "posthoc_ema,smoke"
    )
    np.testing.assert_allclose(posthoc_ema.gammas_of(config.optim), [16.97, 6.94], atol=5e-3)

  def test_continuous_gram_is_the_integral(self):
    ts, gs = np.array([40.0, 100.0]), np.array([3.0, 8.0])
    tau = (np.arange(1_000_000) + 0.5) / 1_000_000 * 100.0
    prof = [np.where(tau <= t, (g + 1) * tau**g / t ** (g + 1), 0.0) for t, g in zip(ts, gs)]
    brute = np.array([[np.sum(a * b) * 1e-4 for b in prof] for a in prof])
    np.testing.assert_allclose(posthoc_ema.gram(ts, gs, "continuous"), brute, rtol=1e-5)

  @parameterized.parameters("discrete", "continuous")
  def test_reconstructed_equals_directly_tracked(self, kind):
    num, every = 400, 20
    theta = _trajectory(num)
    gammas = tuple(posthoc_ema.sigma_rel_to_gamma(s) for s in (0.05, 0.10))
    _, snaps = _tracked(theta, gammas, every)
    ts, gs, values = zip(*snaps)
    target_gamma = posthoc_ema.sigma_rel_to_gamma(0.07)
    direct, _ = _tracked(theta, (target_gamma,), num + 1)
    coeffs = posthoc_ema.coefficients(ts, gs, num, target_gamma, kind)
    rebuilt = posthoc_ema.combine(list(values), coeffs)
    # The trajectory's entries are O(1): the fit of the profile leaves ~1e-4.
    np.testing.assert_allclose(rebuilt, np.asarray(direct[0]), atol=1e-3)
    # Linearity: the reconstruction is exactly the EMA of the fitted profile Σ x_i w_i.
    fitted = sum(c * posthoc_ema.discrete_profile(t, g, num) for c, t, g in zip(coeffs, ts, gs))
    np.testing.assert_allclose(rebuilt, fitted @ theta.astype(np.float64), atol=2e-5)
    target = posthoc_ema.discrete_profile(num, target_gamma)
    self.assertLess(np.linalg.norm(fitted - target) / np.linalg.norm(target), 1e-2)

  def test_stored_profile_is_reproduced_exactly(self):
    ts, gs = [10, 10, 20, 20], [16.97, 6.94, 16.97, 6.94]
    coeffs = posthoc_ema.coefficients(ts, gs, 20, 6.94)
    np.testing.assert_allclose(coeffs, [0, 0, 0, 1], atol=1e-7)


class CommandTest(absltest.TestCase):

  def test_train_snapshots_and_reconstruct(self):
    config = config_lib.load(os.path.join(REPO, "configs/edm/toy2d.py"), "smoke")
    config.train.num_steps = 5
    config.eval.num_samples = 8
    config.optim.posthoc_ema = config_lib.posthoc_ema(
        (0.05, 0.10), 2, reconstruct_sigma_rels=(0.10, 0.2)
    )
    workdir = self.create_tempdir().full_path
    state = loop.train_and_evaluate(config, workdir)
    snaps = posthoc_snapshots.list_snapshots(workdir)
    self.assertEqual([s["step"] for s in snaps], [2, 4, 5])
    last = posthoc_snapshots.load_tracks(snaps[-1])
    for stored, live in zip(last, state.posthoc_ema):
      jax.tree.map(np.testing.assert_array_equal, stored, jax.device_get(live))
    summary = posthoc_snapshots.reconstruct(config, workdir)
    self.assertEqual(sorted(summary), ["0.1000", "0.2000"])
    self.assertIn("sliced_w2", summary["0.1000"])
    out = os.path.join(workdir, "posthoc_ema", "sigma_rel_0.1000")
    with open(os.path.join(out, "reconstruction.json")) as f:
      self.assertLen(json.load(f)["snapshots"], 6)  # 3 snapshots x 2 tracks
    # σ_rel 0.10 at the last step is a stored track's profile: the fit is exact, so the rebuilt
    # parameters are that track's (whichever combination of the 6 profiles lstsq picks).
    rebuilt = posthoc_snapshots.load_params(os.path.join(out, "params"))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), rebuilt, last[1])
    self.assertTrue(os.path.isdir(os.path.join(out, "eval")))

  def test_bad_options(self):
    config = config_lib.load(os.path.join(REPO, "configs/edm/toy2d.py"), "smoke")
    config.optim.posthoc_ema = config_lib.posthoc_ema((0.05,), 0)
    with self.assertRaisesRegex(ValueError, "snapshot_every_steps"):
      posthoc_ema.gammas_of(config.optim)


if __name__ == "__main__":
  absltest.main()
