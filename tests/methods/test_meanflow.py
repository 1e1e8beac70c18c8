"""MeanFlow: the JVP total derivative against central finite differences, the exact average
velocity of a Gaussian (closed-form PF-ODE map, checked against the adaptive solver) is a fixed
point of the MeanFlow target, the loss on fixed tensors, and the few-step sampler's update."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl.testing import absltest

from diffjax import config_lib
from diffjax import methods
from diffjax import solvers
from diffjax.methods import meanflow
from diffjax.methods import shortcut
from diffjax.solvers import testing

MEAN, STD = np.array([0.5, -1.0]), np.array([0.7, 1.3])


class _Data:
  element_shape, num_classes = (2,), 0


def _config():
  config = ml_collections.ConfigDict()
  config.schedule = dict(kind="rectified_flow", sigma_min=0.0)
  config.method = config_lib.meanflow(ratio=0.5)
  config.model = config_lib.mlp(width=16, depth=2)
  config.sample = config_lib.sampler("meanflow", 2, "uniform_t")
  return config


def _exact_u(z, t, r):
  """(z_t − z_r)/(t − r) on the path z_t = (1 − t)x + tε for x ~ N(MEAN, STD²): the σ-frame
  PF-ODE map (closed form) from σ̃ = t/(1 − t) to r/(1 − r), with x̃ = z/(1 − t)."""
  b = lambda v: v[:, None]
  s_t, s_r = t / (1 - t), r / (1 - r)
  x_r = testing.gaussian_ode_solution(z / b(1 - t), b(s_t), b(s_r), MEAN, STD)
  return (z - b(1 - r) * x_r) / b(t - r)


def _exact_v(z, t):
  """dz/dt of the PF-ODE on that path: ε̂ − x̂ from the exact denoiser (Tweedie)."""
  st = t / (1 - t)
  x_tilde = z / (1 - t)[:, None]
  x0 = testing.gaussian(MEAN, STD).denoiser(x_tilde, st)
  return (x_tilde - x0) / st[:, None] - x0


class MeanFlowTest(absltest.TestCase):

  def test_jvp_is_the_total_derivative(self):
    config = _config()  # smooth in t at the finite differences' scale: unit time, sinusoids ≤ 1
    config.method.time_scale = 1.0
    config.model.embedding = "positional"
    method = methods.make(config, _Data)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    u = method.u_fn(params)
    t, r = jnp.linspace(0.3, 0.9, 6), jnp.linspace(0.1, 0.5, 6)
    v = jax.random.normal(jax.random.PRNGKey(2), x.shape)
    _, dudt = jax.jvp(u, (x, t, r), (v, jnp.ones_like(t), jnp.zeros_like(r)))
    h = 1e-2
    fd = (u(x + h * v, t + h, r) - u(x - h * v, t - h, r)) / (2 * h)
    np.testing.assert_allclose(dudt, fd, rtol=2e-2, atol=2e-3)

  @pytest.mark.slow
  def test_exact_average_velocity_is_a_fixed_point(self):
    key = jax.random.PRNGKey(0)
    t = jnp.array([0.3, 0.6, 0.9, 0.5])
    r = jnp.array([0.1, 0.2, 0.05, 0.5 - 1e-3])
    z = 2.0 * jax.random.normal(key, (4, 2))
    u = _exact_u(z, t, r)
    # The closed-form map is the adaptive solver's (σ-frame, one example at a time).
    for i in range(3):
      st, sr = float(t[i] / (1 - t[i])), float(r[i] / (1 - r[i]))
      x_r = solvers.solve(
          "adaptive",
          testing.gaussian(MEAN, STD).denoiser,
          z[i : i + 1] / (1 - t[i]),
          np.array([st, sr]),
          rtol=1e-6,
          atol=1e-6,
      )
      np.testing.assert_allclose(u[i], (z[i] - (1 - r[i]) * x_r[0]) / (t[i] - r[i]), rtol=1e-4)
    # MeanFlow identity with the exact velocity: v − (t − r) d/dt u = u.
    got_u, target = meanflow.meanflow_target(_exact_u, z, t, r, _exact_v(z, t))
    np.testing.assert_allclose(target, got_u, rtol=1e-3, atol=1e-4)

  @pytest.mark.slow
  def test_loss_on_fixed_tensors(self):
    method = methods.make(_config(), _Data)
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    rng = jax.random.PRNGKey(3)
    loss, _ = method.loss(params, {"x": x}, rng)
    rng_t, rng_eps, rng_drop = jax.random.split(rng, 3)
    rng_n, rng_m = jax.random.split(rng_t)
    n = jax.nn.sigmoid(-0.4 + 1.0 * jax.random.normal(rng_n, (2, 8)))
    t, r = n.max(0), n.min(0)
    r = jnp.where(jax.random.uniform(rng_m, (8,)) < 0.5, r, t)
    eps = jax.random.normal(rng_eps, x.shape)
    z = (1 - t)[:, None] * x + t[:, None] * eps
    u_fn = method.u_fn(params, train=True, rng=rng_drop)
    u, dudt = jax.jvp(u_fn, (z, t, r), (eps - x, jnp.ones(8), jnp.zeros(8)))
    err = jnp.sum((u - (eps - x - (t - r)[:, None] * dudt)) ** 2, -1)
    np.testing.assert_allclose(float(loss), float(jnp.mean(err / (err + 1e-3))), rtol=1e-5)

  @pytest.mark.slow
  def test_sampler_steps(self):
    method = methods.make(_config(), _Data)
    params = method.init(jax.random.PRNGKey(1), {"x": jnp.zeros((4, 2))})
    noise = jax.random.normal(jax.random.PRNGKey(5), (4, 2))
    got = method.sample(params, jax.random.PRNGKey(0), 4, noise=noise, num_steps=2)
    u = method.u_fn(params)
    full = lambda v: jnp.full((4,), v)
    z = noise - 0.5 * u(noise, full(1.0), full(0.5))
    np.testing.assert_allclose(got, z - 0.5 * u(z, full(0.5), full(0.0)), rtol=1e-5, atol=1e-6)


class ShortcutTest(absltest.TestCase):

  def test_two_exact_d_steps_compose_to_the_exact_2d_step(self):
    # Average velocities compose: with the exact u (closed-form Gaussian ODE map) the bootstrap
    # target ½u(z, t, t − d) + ½u(z', t − d, t − 2d) is u(z, t, t − 2d).
    z = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    t, d = jnp.array([1.0 - 1e-4, 0.75, 0.5, 0.25]), jnp.array([0.5, 0.25, 0.125, 0.0625])
    got = shortcut.shortcut_target(_exact_u, z, t, d)
    np.testing.assert_allclose(got, _exact_u(z, t, t - 2 * d), rtol=1e-4, atol=1e-4)

  def test_loss_trains_both_parts(self):
    config = _config()
    config.method = dict(kind="shortcut", time_scale=1000.0, min_steps=8, bootstrap_frac=0.5)
    method = methods.make(config, _Data)
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    loss, metrics = method.loss(params, {"x": x}, jax.random.PRNGKey(2))
    self.assertTrue(np.isfinite(float(loss)) and float(metrics["boot_mse"]) > 0)
    config.method.min_steps = 6
    with self.assertRaisesRegex(ValueError, "min_steps"):
      methods.make(config, _Data)
    config.method.min_steps, config.method.bootstrap_ema = 8, 1.0
    with self.assertRaisesRegex(ValueError, "bootstrap_ema"):
      methods.make(config, _Data)

  def test_flow_part_carries_the_smallest_step_input(self):
    # Flow matching only (bootstrap_frac = 0): the loss is mean ‖u(z_t, t, t − d_flow) − (ε − x)‖²
    # with t = (⌊U·M⌋ + 1)/M and d_flow = 1/M (official code's dt_base = log2 M) or 0, recomputed
    # here from the same random draws.
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    rng = jax.random.PRNGKey(2)
    _, _, rng_t, rng_eps, _ = jax.random.split(rng, 5)
    t = (jnp.floor(jax.random.uniform(rng_t, (8,)) * 8) + 1.0) / 8
    eps = jax.random.normal(rng_eps, x.shape)
    z = (1.0 - t)[:, None] * x + t[:, None] * eps
    config = _config()
    losses = {}
    for flow, d in (("min_step", 1.0 / 8), ("zero", 0.0)):
      config.method = dict(
          kind="shortcut", time_scale=1000.0, min_steps=8, bootstrap_frac=0.0, flow_interval=flow
      )
      method = methods.make(config, _Data)
      params = method.init(jax.random.PRNGKey(1), {"x": x})
      u = method.u_fn(params, None, train=True, rng=jax.random.PRNGKey(9))
      want = jnp.mean(jnp.sum(jnp.square(u(z, t, t - d) - (eps - x)), -1) / 2)
      losses[flow] = float(method.loss(params, {"x": x}, rng)[0])
      np.testing.assert_allclose(losses[flow], want, rtol=1e-5)
    self.assertNotAlmostEqual(losses["min_step"], losses["zero"], places=4)
    config.method.flow_interval = "half"
    with self.assertRaisesRegex(ValueError, "flow_interval"):
      methods.make(config, _Data)

  def test_bootstrap_targets_come_from_the_ema_only(self):
    # θ⁻ ← μθ⁻ + (1 − μ)θ after each step; the loss sees θ⁻ only through the bootstrap targets
    # (stop-gradient): moving θ⁻ changes the loss iff part of the batch bootstraps.
    config = _config()
    config.method = dict(kind="shortcut", time_scale=1.0, min_steps=8, bootstrap_ema=0.9)
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    rng = jax.random.PRNGKey(2)
    for frac in (0.0, 0.5):
      config.method.bootstrap_frac = frac
      method = methods.make(config, _Data)
      params = method.init(jax.random.PRNGKey(1), {"x": x})
      state = method.init_state_with_params(params)
      shifted = jax.tree.map(lambda p: p + 0.3, params)
      ema = method.update_state(state, shifted)["target"]
      chex.assert_trees_all_close(ema, jax.tree.map(lambda p: p + 0.03, params), atol=1e-6)
      same = method.loss_with_state(params, state, {"x": x}, rng)[0]
      np.testing.assert_allclose(same, method.loss(params, {"x": x}, rng)[0], rtol=1e-6)
      moved = lambda tgt: method.loss_with_state(params, {"target": tgt}, {"x": x}, rng)[0]
      if frac:
        self.assertGreater(abs(float(moved(shifted)) - float(same)), 1e-4)
      else:
        np.testing.assert_allclose(moved(shifted), same, rtol=1e-6)
      grad = jax.grad(moved)(params)
      self.assertEqual(max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grad)), 0.0)


if __name__ == "__main__":
  absltest.main()
