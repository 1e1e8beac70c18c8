"""GaussianDiffusion builds every schedule-based σ grid under the model's own schedule."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import methods
from diffjax.methods import sampling
from diffjax import solvers
from diffjax.core import schedules


CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "ddpm", "toy2d.py")


class _Data:
  element_shape, num_classes = (2,), 0


class GridTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters("uniform_t", "uniform_logsnr", "quadratic", "time_uniform", "logSNR",
                            "karras")
  def test_grid_uses_the_model_schedule(self, name):
    config = config_lib.load(CONFIG, "smoke")
    method = methods.make(config, _Data())
    got = sampling.sigmas(method, None, 5, name)
    np.testing.assert_array_equal(
        got, solvers.grid(name, 5, schedule=schedules.make(**config.schedule)))

  def test_unknown_grid_is_named(self):
    method = methods.make(config_lib.load(CONFIG, "smoke"), _Data())
    with self.assertRaisesRegex(ValueError, "'nope'"):
      sampling.sigmas(method, None, 5, "nope")


class ClipDenoisedTest(chex.TestCase):

  def test_clip_denoised_clips_every_denoiser_output(self):
    """ddim η = 0 on 2 steps with clip_denoised equals Euler steps on clip(D) written out here."""
    config = config_lib.load(CONFIG, "smoke")
    method = methods.make(config, _Data)
    params = method.init(jax.random.PRNGKey(0), {"x": np.zeros((4, 2), np.float32)})
    params = jax.tree.map(lambda p: 50.0 * p, params)  # D reaches far outside [-1, 1]
    rng = jax.random.PRNGKey(3)
    kw = dict(num_steps=2, grid="karras", solver="ddim",
              grid_kwargs=dict(sigma_min=1.0, sigma_max=5.0))
    free = method.sample(params, rng, 64, **kw)
    clipped = method.sample(params, rng, 64, **kw, solver_kwargs=dict(clip_denoised=True))
    sig = np.asarray(sampling.sigmas(method, None, 2, "karras", kw["grid_kwargs"]))
    den = method.denoiser(params)
    x = sig[0] * jax.random.normal(jax.random.split(rng)[0], (64, 2))
    d0 = jnp.clip(den(x, jnp.full((64,), sig[0])), -1, 1)
    x = x + (sig[1] - sig[0]) * (x - d0) / sig[0]
    expected = jnp.clip(den(x, jnp.full((64,), sig[1])), -1, 1)  # the last step to σ = 0 is D
    self.assertGreater(float(jnp.max(jnp.abs(free))), 1.5)
    np.testing.assert_allclose(clipped, expected, atol=1e-4)
