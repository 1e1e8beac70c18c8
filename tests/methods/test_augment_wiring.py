"""EDM augmentation in GaussianDiffusion: augmented x and its labels reach the network (training
only), p = 0 is the plain loss, and a network without matching augment_dim is refused."""

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np

from diffjax import config_lib
from diffjax import methods
from diffjax.core import losses
from diffjax.data import augment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class _Data:
  element_shape, num_classes = (8, 8, 3), 0


def _config(p=1.0, augment_dim=9):
  config = config_lib.load(os.path.join(REPO, "configs/edm/fashion_mnist.py"), "smoke")
  config.model = dict(
      kind="ddpmpp",
      model_channels=8,
      channel_mult=(1,),
      num_blocks=1,
      attn_resolutions=(),
      dropout=0.0,
      augment_dim=augment_dim,
  )
  config.method.augment = config_lib.edm_augment(p=p)
  return config


class AugmentWiringTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.batch = {"x": rng.uniform(-1, 1, (4, 8, 8, 3)).astype(np.float32)}

  def _method_and_params(self, config):
    method = methods.make(config, _Data)
    params = method.init(jax.random.PRNGKey(0), self.batch)
    # Non-zero output layers, so the loss depends on the labels (zero-init makes D = c_skip·x).
    return method, jax.tree.map(
        lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), params
    )

  def test_loss_uses_augmented_x_and_its_labels(self):
    method, params = self._method_and_params(_config(p=1.0))
    rng = jax.random.PRNGKey(5)
    got, _ = method.loss(params, self.batch, rng)
    # Written out: the same augmentation draw, then the plain weighted loss with those labels.
    x_aug, labels = augment.edm_augment(
        jax.random.fold_in(rng, 2), jnp.asarray(self.batch["x"]), **config_lib.edm_augment(p=1.0)
    )
    self.assertGreater(float(jnp.max(jnp.abs(labels))), 0.1)
    rng_loss, rng_drop = jax.random.split(rng)

    def expected(x, aug):
      per, _ = losses.weighted_loss(
          method.raw_fn(params, train=True, rng=rng_drop, augment_labels=aug),
          x,
          rng_loss,
          schedule=method.schedule(),
          param=method.param,
          weight_fn=method.weight_fn,
          t_sampler=method.t_sampler,
      )
      return float(jnp.mean(per))

    np.testing.assert_allclose(float(got), expected(x_aug, labels), rtol=1e-5)
    # Controls: the labels and the augmentation each change the value.
    self.assertGreater(abs(float(got) - expected(x_aug, None)), 1e-6 * abs(float(got)))
    self.assertGreater(
        abs(float(got) - expected(jnp.asarray(self.batch["x"]), None)), 1e-6 * abs(float(got))
    )

  def test_p_zero_is_the_unaugmented_loss(self):
    m0, params = self._method_and_params(_config(p=0.0))
    plain = _config(p=0.0)
    plain.method.augment = {}
    m1 = methods.make(plain, _Data)
    rng = jax.random.PRNGKey(1)
    self.assertEqual(
        float(m0.loss(params, self.batch, rng)[0]), float(m1.loss(params, self.batch, rng)[0])
    )

  def test_mismatched_augment_dim_is_named(self):
    with self.assertRaisesRegex(ValueError, "augment_dim"):
      methods.make(_config(p=0.12, augment_dim=0), _Data)


class RandomFlipTest(chex.TestCase):

  def test_flip_is_applied_per_example(self):
    config = _config(p=0.0, augment_dim=0)
    config.method.augment = {}
    config.method.random_flip = True
    method = methods.make(config, _Data)
    batch = {"x": np.random.default_rng(1).uniform(-1, 1, (16, 8, 8, 3)).astype(np.float32)}
    params = method.init(jax.random.PRNGKey(0), batch)
    rng = jax.random.PRNGKey(2)
    got = float(method.loss(params, batch, rng)[0])
    flip = np.asarray(jax.random.bernoulli(jax.random.fold_in(rng, 3), 0.5, (16,)))
    self.assertTrue(0 < flip.sum() < 16)
    flipped = {"x": np.where(flip[:, None, None, None], batch["x"][:, :, ::-1], batch["x"])}
    config.method.random_flip = False
    plain = methods.make(config, _Data)
    np.testing.assert_allclose(got, float(plain.loss(params, flipped, rng)[0]), rtol=1e-6)
    self.assertNotAlmostEqual(got, float(plain.loss(params, batch, rng)[0]), places=3)
