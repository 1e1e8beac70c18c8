"""`sampling.sample` with guidance, measurements and SDEdit, on a Method whose denoiser is exact
(a 2-D Gaussian or Gaussian mixture), and the NoisyClassifier Method."""

import chex
import jax
import pytest
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl.testing import absltest

from diffjax import config_lib
from diffjax import solvers
from diffjax.core import schedules
from diffjax.methods import base
from diffjax.methods import classifier as classifier_lib
from diffjax.methods import conditioning
from diffjax.methods import sampling
from diffjax.solvers import testing

MEAN, STD = np.array([0.5, -1.0]), np.array([0.7, 1.3])
GMM = testing.GaussianMixture(
    means=np.array([[-1.5, 0.5], [1.5, -0.5]]),
    stds=np.array([[0.4, 0.6], [0.5, 0.3]]),
    weights=np.array([0.5, 0.5]),
)


class ExactMethod(base.Method):
  """A Method whose denoiser is a closed form (its `params` are unused)."""

  def __init__(self, den, num_steps=32, solver="heun"):
    self.config = ml_collections.ConfigDict(
        dict(sample=dict(solver=solver, num_steps=num_steps, grid="karras"))
    )
    self.element_shape, self.conditional, self.num_classes = (2,), False, 0
    self._den = den

  def schedule(self, params=None):
    return schedules.make("edm")

  def denoiser(self, params, label=None):
    return self._den


class ExactClassifier:
  """p(k | x, σ) of GMM's two components: the noisy classifier a classifier Method provides."""

  num_classes = 2

  def log_prob_fn(self, params, label):
    return lambda x, sigma: jnp.take_along_axis(GMM.log_posterior(x, sigma), label[:, None], 1)[
        :, 0
    ]


class ConditionedSamplingTest(absltest.TestCase):

  def test_sdedit_is_the_exact_ode_map_from_the_noised_input(self):
    """SDEdit from x_start at t0 with the PF-ODE: x_start + σ̃(t0)·n mapped by the exact Gaussian
    ODE solution to σ = 0 (`testing.gaussian_ode_solution`). Heun's error on the truncated grid
    falls as its order says (64 / 256 / 1024 steps: 7e-3 / 4e-4 / 2e-5)."""
    method = ExactMethod(testing.gaussian(MEAN, STD).denoiser, num_steps=256)
    x0 = jax.random.normal(jax.random.key(0), (16, 2)) * 2.0
    noise = jax.random.normal(jax.random.key(1), (16, 2))
    out = method.sample(None, jax.random.key(2), 16, x_start=x0, noise=noise, start_t=0.6)
    sigma0 = conditioning.start_sigma(method, None, 0.6)
    a, b = 0.002 ** (1 / 7), 80 ** (1 / 7)
    self.assertAlmostEqual(sigma0, (a + 0.6 * (b - a)) ** 7, places=3)  # EDM's σ(t), α = 1
    want = testing.gaussian_ode_solution(x0 + sigma0 * noise, sigma0, 0.0, MEAN, STD)
    chex.assert_trees_all_close(out, want, atol=1e-3)
    with self.assertRaisesRegex(ValueError, "start_t"):
      method.sample(None, jax.random.key(2), 16, start_t=0.6)

  def test_autoguidance_and_interval_equal_the_cfg_wrapper(self):
    main = ExactMethod(GMM.component_denoiser(1))
    weak = ExactMethod(testing.gaussian([0.0, 0.0], [2.0, 2.0]).denoiser)
    noise = jax.random.normal(jax.random.key(1), (8, 2))
    sig = jnp.asarray(sampling.sigmas(main, None, 32, "karras"))
    for interval in (None, (0.3, 5.0)):
      out = main.sample(
          None,
          jax.random.key(0),
          8,
          guide=(weak, None),
          guidance_scale=2.0,
          guidance_interval=interval,
          noise=noise,
      )
      den = solvers.guidance.cfg(main._den, weak._den, 2.0, interval)
      chex.assert_trees_all_close(out, solvers.solve("heun", den, sig[0] * noise, sig), atol=1e-5)
      plain = main.sample(None, jax.random.key(0), 8, noise=noise)
      self.assertGreater(float(jnp.max(jnp.abs(out - plain))), 1e-2)  # the guidance acted

  def test_replacement_measurement_fixes_the_observed_coordinate(self):
    method = ExactMethod(GMM.denoiser, solver="ddpm")
    mask = jnp.tile(jnp.array([[1.0, 0.0]]), (8, 1))
    y = jnp.full((8, 2), 0.75) * mask
    out = method.sample(
        None,
        jax.random.key(0),
        8,
        measurement=(solvers.inverse.Mask(mask), y),
        inverse=dict(kind="replace"),
    )
    chex.assert_trees_all_close(out[:, 0], jnp.full((8,), 0.75), atol=1e-5)
    with self.assertRaisesRegex(ValueError, "sample.inverse.kind"):
      method.sample(None, jax.random.key(0), 8, inverse=dict(kind="nope"))

  def test_classifier_guidance_through_sample(self):
    """Exact classifier, scale 1: both forms sample the chosen component (GMM component 1)."""
    for solver, mode in (("heun", "score"), ("ddpm", "mean")):
      method = ExactMethod(GMM.denoiser, num_steps=128, solver=solver)
      out = method.sample(
          None,
          jax.random.key(0),
          2000,
          classifier=(ExactClassifier(), None),
          label=jnp.ones((2000,), jnp.int32),
          classifier_mode=mode,
      )
      chex.assert_trees_all_close(jnp.mean(out, 0), GMM.means[1], atol=0.06)
    with self.assertRaisesRegex(ValueError, "classifier_mode='mean'"):
      ExactMethod(GMM.denoiser).sample(
          None, jax.random.key(0), 8, classifier=(ExactClassifier(), None), classifier_mode="mean"
      )


def _classifier_config():
  config = config_lib.noisy_classifier(
      dict(kind="edm"), config_lib.fashion_mnist(8), ch=8, ch_mult=(1, 2)
  )
  return config


class NoisyClassifierTest(absltest.TestCase):

  def test_log_prob_fn_is_the_network_at_the_schedules_noise_level(self):
    """σ-frame → network inputs: EDM schedule, α = 1, t(σ̃), z_in = x̃/√(1 + σ̃²), noise_cond λ."""
    method = classifier_lib.NoisyClassifier(
        _classifier_config(), element_shape=(8, 8, 1), num_classes=3
    )
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    params = method.init(jax.random.key(1), {"x": x})
    sigma = jnp.array([0.1, 1.0, 5.0, 40.0])
    label = jnp.array([0, 1, 2, 1])
    got = method.log_prob_fn(params, label)(x, sigma)
    logits = method.model.apply(
        {"params": params},
        x / jnp.sqrt(1 + sigma**2)[:, None, None, None],
        -2.0 * jnp.log(sigma),
        train=False,
    )
    want = jax.nn.log_softmax(logits)[jnp.arange(4), label]
    chex.assert_trees_all_close(got, want, atol=1e-4)
    with self.assertRaisesRegex(ValueError, "draws no samples"):
      method.sample(params, jax.random.key(0), 2)

  @pytest.mark.slow  # runs in `-m ''`
  def test_training_learns_a_separable_task(self):
    """Two classes of 8×8 images (constant -0.5 / +0.5 plus small noise): 60 Adam steps on the
    loss reach ≥ 90 % accuracy at σ̃ = 0.5 (the classes differ by 1 per pixel)."""
    method = classifier_lib.NoisyClassifier(
        _classifier_config(), element_shape=(8, 8, 1), num_classes=2
    )
    key = jax.random.key(0)
    label = jnp.arange(32) % 2
    x = (label[:, None, None, None] - 0.5) + 0.1 * jax.random.normal(key, (32, 8, 8, 1))
    params = method.init(key, {"x": x})
    opt = optax.adam(3e-3)
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, rng):
      (loss, _), g = jax.value_and_grad(method.loss, has_aux=True)(
          params, {"x": x, "label": label}, rng
      )
      updates, opt_state = opt.update(g, opt_state)
      return optax.apply_updates(params, updates), opt_state, loss

    for i in range(60):
      params, opt_state, _ = step(params, opt_state, jax.random.fold_in(key, i))
    noisy = x + 0.5 * jax.random.normal(jax.random.key(9), x.shape)
    logp0 = method.log_prob_fn(params, jnp.zeros_like(label))(noisy, jnp.full((32,), 0.5))
    pred = (logp0 < np.log(0.5)).astype(jnp.int32)
    self.assertGreaterEqual(float(jnp.mean(pred == label)), 0.9)


if __name__ == "__main__":
  absltest.main()
