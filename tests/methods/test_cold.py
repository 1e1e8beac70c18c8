"""Cold Diffusion: the degradations and the two samplers' exact behaviour for a fixed error."""

import chex
import jax
import pytest
import jax.numpy as jnp
from absl.testing import absltest

from diffjax import config_lib
from diffjax.core import heat
from diffjax.methods import cold


class ColdTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.x0 = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    self.e = 0.3 * jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    self.levels = jnp.linspace(1.0, 0.0, 11)

  def test_samplers_with_a_fixed_error(self):
    """R = x₀ + e: Alg. 1 ends at x₀ + e, Alg. 2 at x₀ + e - D(e, 1) (telescoping; D linear)."""
    degrade = lambda x, t: cold.blur(x, t, 6.0)
    restore = lambda x, t: self.x0 + self.e
    x1 = degrade(self.x0, jnp.ones((2,)))
    naive = cold.cold_sample(restore, degrade, x1, self.levels, improved=False)
    improved = cold.cold_sample(restore, degrade, x1, self.levels, improved=True)
    chex.assert_trees_all_close(naive, self.x0 + self.e, atol=1e-5)
    chex.assert_trees_all_close(
        improved, self.x0 + self.e - degrade(self.e, jnp.ones((2,))), atol=1e-5
    )

  def test_degradations(self):
    t = jnp.array([0.0, 0.5])
    chex.assert_trees_all_close(cold.blur(self.x0, t, 6.0)[0], self.x0[0], atol=1e-5)
    chex.assert_trees_all_close(
        cold.blur(self.x0, t, 6.0)[1], heat.heat(self.x0[1:], 0.5 * 3.0**2)[0], atol=1e-5
    )
    order = jnp.arange(64).reshape(8, 8)
    masked = cold.mask(self.x0, t, order)
    chex.assert_trees_all_close(masked[0], self.x0[0])
    self.assertEqual(int(jnp.sum(masked[1] == 0.0)), 32)

  @pytest.mark.slow  # runs in `-m ''`
  def test_method_samples_and_rejects_bad_degradation(self):
    config = config_lib.load("configs/cold_diffusion/fashion_mnist.py", "smoke")
    method = cold.ColdDiffusion(config, element_shape=(8, 8, 1))
    params = method.init(jax.random.key(0), {"x": self.x0})
    out = method.sample(params, jax.random.key(1), 2)
    self.assertEqual(out.shape, (2, 8, 8, 1))
    # sample.num_steps = 3 runs the chain on the levels 1, ⅔, ⅓, 0 from the prior draw.
    noise = jax.random.normal(jax.random.key(3), (2, 8, 8, 1))
    got = method.sample(params, jax.random.key(1), 2, num_steps=3, noise=noise)
    x1 = jnp.broadcast_to(
        config.method.prior_mean + config.method.prior_std * noise[:, :1, :1], out.shape
    )
    # ... plus the per-pixel perturbation n (std prior_pixel_std, from fold_in(key, 7)), which the
    # chain starts with and the result loses again (the official generation code's symmetry breaker).
    n = config.method.prior_pixel_std * jax.random.normal(
        jax.random.fold_in(jax.random.key(1), 7), out.shape
    )
    self.assertGreater(config.method.prior_pixel_std, 0.0)
    want = (
        cold.cold_sample(
            method.restore_fn(params), method.degrade, x1 + n, jnp.linspace(1.0, 0.0, 4), True
        )
        - n
    )
    chex.assert_trees_all_close(got, want, atol=1e-5)
    # Without it the start is constant per channel: a sample is a function of one number.
    config.method.prior_pixel_std = 0.0
    flat = cold.ColdDiffusion(config, element_shape=(8, 8, 1))
    got0 = flat.sample(params, jax.random.key(1), 2, num_steps=3, noise=noise)
    want0 = cold.cold_sample(
        method.restore_fn(params), method.degrade, x1, jnp.linspace(1.0, 0.0, 4), True
    )
    chex.assert_trees_all_close(got0, want0, atol=1e-5)
    config.method.prior_pixel_std = -1.0
    with self.assertRaisesRegex(ValueError, "method.prior_pixel_std"):
      cold.ColdDiffusion(config, element_shape=(8, 8, 1))
    config.method.prior_pixel_std = 0.002
    loss, _ = method.loss(params, {"x": self.x0}, jax.random.key(2))
    self.assertTrue(bool(jnp.isfinite(loss)))
    config.method.degradation = "snow"
    with self.assertRaisesRegex(ValueError, "method.degradation"):
      cold.ColdDiffusion(config, element_shape=(8, 8, 1))


if __name__ == "__main__":
  absltest.main()
