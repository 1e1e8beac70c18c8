"""Kingma & Gao's adaptive noise schedule as Method state: the loss uses the state's p(λ) with
matching importance weights, the state advances by `Adaptive.update`, and the training loop
carries it through checkpoints (a resumed run equals an uninterrupted one)."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np

from diffjax import config_lib
from diffjax import methods
from diffjax.core import losses
from diffjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Data:
  element_shape, num_classes = (2,), 0


def _config():
  config = config_lib.load(os.path.join(REPO, "configs", "ddpm", "toy2d.py"), "smoke")
  config.method.t_sampling = "adaptive"
  config.method.t_sampling_kwargs = dict(num_bins=8, decay=0.5)
  return config


class AdaptiveStateTest(chex.TestCase):

  def test_loss_and_update_match_the_sampler_written_out(self):
    method = methods.make(_config(), _Data)
    x = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    params = method.init(jax.random.PRNGKey(0), {"x": x})
    state = {"t_sampler": {"ema": jnp.linspace(0.1, 3.0, 8)}}  # a non-uniform p(λ)
    rng = jax.random.PRNGKey(4)
    loss, (_, new) = method.loss_with_state(params, state, {"x": x}, rng)
    rng_loss, rng_drop = jax.random.split(rng)
    adaptive = method.t_sampler
    per, aux = losses.weighted_loss(
        method.mean_raw_fn(params, train=True, rng=rng_drop),
        x,
        rng_loss,
        schedule=method.schedule(),
        param=method.param,
        weight_fn=method.weight_fn,
        t_sampler=lambda k, b, s: adaptive.sample(state["t_sampler"], k, b, s),
    )
    np.testing.assert_allclose(float(loss), float(jnp.mean(per)), rtol=1e-6)
    want = adaptive.update(state["t_sampler"], aux["logsnr"], aux["integrand"], method.schedule())
    chex.assert_trees_all_close(new, {"t_sampler": want}, rtol=1e-6)
    self.assertGreater(
        float(jnp.max(jnp.abs(new["t_sampler"]["ema"] - state["t_sampler"]["ema"]))), 1e-3
    )
    # Different states draw different λ: the state is really used.
    other, _ = method.loss_with_state(params, {"t_sampler": adaptive.init()}, {"x": x}, rng)
    self.assertNotAlmostEqual(float(other), float(loss), places=4)

  def test_stateless_loss_refuses_the_adaptive_sampler(self):
    method = methods.make(_config(), _Data)
    params = method.init(jax.random.PRNGKey(0), {"x": np.zeros((4, 2), np.float32)})
    with self.assertRaisesRegex(ValueError, "adaptive"):
      method.loss(params, {"x": np.zeros((4, 2), np.float32)}, jax.random.PRNGKey(0))

  def test_loop_carries_state_through_a_resume(self):
    config = _config()
    config.train.ckpt_every_steps = 2
    straight, resumed = self.create_tempdir().full_path, self.create_tempdir().full_path
    config.train.num_steps = 4
    a = loop.train_and_evaluate(config, straight)
    config.train.num_steps = 2
    loop.train_and_evaluate(config, resumed)
    config.train.num_steps = 4
    b = loop.train_and_evaluate(config, resumed)
    ema = np.asarray(jax.device_get(a.method_state["t_sampler"]["ema"]))
    self.assertGreater(float(np.max(np.abs(ema - 1.0))), 1e-3)  # it moved from its init
    chex.assert_trees_all_close(
        jax.device_get(a.method_state), jax.device_get(b.method_state), rtol=1e-6
    )
    chex.assert_trees_all_close(jax.device_get(a.params), jax.device_get(b.params), rtol=1e-6)
