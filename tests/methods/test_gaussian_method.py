"""GaussianDiffusion: σ grids under the model's own schedule, x̂₀ clipping, flow σ_min wiring."""

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
from diffjax.core import weighting

CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "configs",
    "ddpm",
    "toy2d.py",
)


class _Data:
  element_shape, num_classes = (2,), 0


class GridTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters(
      "uniform_t", "uniform_logsnr", "quadratic", "time_uniform", "logSNR", "karras"
  )
  def test_grid_uses_the_model_schedule(self, name):
    config = config_lib.load(CONFIG, "smoke")
    method = methods.make(config, _Data())
    got = sampling.sigmas(method, None, 5, name)
    np.testing.assert_array_equal(
        got, solvers.grid(name, 5, schedule=schedules.make(**config.schedule))
    )

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
    kw = dict(
        num_steps=2, grid="karras", solver="ddim", grid_kwargs=dict(sigma_min=1.0, sigma_max=5.0)
    )
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


FLOW_CONFIG = os.path.join(os.path.dirname(CONFIG), os.pardir, "flow_matching", "toy2d.py")


class FlowSigmaMinTest(chex.TestCase):
  """Flow matching with σ_min > 0 (Lipman et al. 2023): the schedule's σ_min reaches the target
  (1 − σ_min)ε − x and the loss weight, so the loss is ‖u − û‖² in the path's velocity."""

  def _method(self, sigma_min, **method_kwargs):
    config = config_lib.load(FLOW_CONFIG, "smoke")
    config.schedule.sigma_min = sigma_min
    config.method.update(method_kwargs)
    return methods.make(config, _Data())

  def test_loss_is_the_velocity_mse(self):
    sigma_min = 0.1
    method = self._method(sigma_min)
    self.assertEqual(method.param.sigma_min, sigma_min)
    rng = np.random.default_rng(0)
    x, eps, raw = (jnp.asarray(rng.normal(size=(6, 2)), jnp.float32) for _ in range(3))
    t = jnp.linspace(0.05, 0.95, 6)
    alpha, sigma = method.schedule().alpha_sigma(t)
    z = alpha[:, None] * x + sigma[:, None] * eps
    # Independent answer: the flow path z_t = (1 − t)x + (σ_min + (1 − σ_min)t)ε has velocity u.
    u = (1.0 - sigma_min) * eps - x
    np.testing.assert_allclose(method.param.raw_target(x, eps, alpha, sigma), u, rtol=1e-6)
    _, eps_hat = method.param.x0_eps(raw, z, alpha, sigma)
    lam = method.schedule().logsnr(t)
    # w/p(λ)·‖ε − ε̂‖² with p the uniform-t density = ‖u − û‖² (t ~ U[0, 1]).
    weighted = (
        method.weight_fn(lam)
        / weighting.uniform_t_density(method.schedule(), lam)
        * jnp.sum(jnp.square(eps - eps_hat), axis=1)
    )
    np.testing.assert_allclose(weighted, jnp.sum(jnp.square(u - raw), axis=1), rtol=2e-4)

  def test_a_different_sigma_min_is_refused(self):
    with self.assertRaisesRegex(ValueError, "param_kwargs.sigma_min"):
      self._method(0.1, param_kwargs=dict(sigma_min=0.2))
