"""MLP: parameter count against a closed form, and vector-shaped inputs."""

import chex
import jax
import jax.numpy as jnp
from absl.testing import parameterized

from diffjax import models


class MLPTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters((16, 2, 8, 3, 0, False), (32, 3, 16, 2, 10, True))
  def test_param_count_closed_form(self, width, depth, emb_dim, dim, num_classes, learn_sigma):
    module = models.make(
        dict(
            kind="mlp",
            width=width,
            depth=depth,
            emb_dim=emb_dim,
            num_classes=num_classes,
            learn_sigma=learn_sigma,
        )
    )
    out = dim * (2 if learn_sigma else 1)
    dense = lambda i, o: i * o + o
    want = (
        dense(emb_dim, width)
        + dense(width, width)  # noise embedding MLP
        + (num_classes + 1) * width * (num_classes > 0)  # label table incl. null row
        + dense(dim, width)  # input layer
        + depth * (2 * width + 3 * dense(width, width))  # norm + dense0 + emb + dense1
        + 2 * width
        + dense(width, out)
    )  # out norm + out layer
    self.assertEqual(models.param_count(module, (1, dim)), want)

  @parameterized.parameters("fourier", "positional")
  def test_image_shaped_input_flattens(self, embedding):
    module = models.make(dict(kind="mlp", width=8, depth=1, emb_dim=4, embedding=embedding))
    x, c = jnp.ones((2, 4, 4, 1)), jnp.array([0.2, 0.7])
    v = models.random_variables(module, x, c)
    out = module.apply(v, x, c, train=False)
    chex.assert_shape(out, (2, 4, 4, 1))
    self.assertGreater(float(jnp.abs(out[0] - out[1]).max()), 1e-4)  # same x, different noise

  def test_bad_embedding_and_noise_shape(self):
    module = models.make(dict(kind="mlp", width=8, depth=1, emb_dim=4, embedding="gauss"))
    with self.assertRaisesRegex(ValueError, "embedding"):
      module.init({"params": jax.random.key(0)}, jnp.ones((2, 3)), jnp.ones(2), train=False)
    module = models.make(dict(kind="mlp", width=8, depth=1, emb_dim=4))
    with self.assertRaisesRegex(ValueError, "noise_cond"):
      module.init({"params": jax.random.key(0)}, jnp.ones((2, 3)), jnp.ones(3), train=False)
