"""LearnedLogSNR(nonlinear=False): VDM's `learnable_scalar`, λ linear between learned ends."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import learned


class LearnedLinearTest(chex.TestCase):

  def test_linear_between_learned_end_points(self):
    module = learned.LearnedLogSNR(nonlinear=False)
    params = module.init(jax.random.key(0), jnp.zeros((1,)))["params"]
    self.assertEqual(set(params), {"l1", "logsnr_max", "logsnr_min"})
    params = dict(
        params,
        logsnr_max=jnp.asarray(9.0),
        logsnr_min=jnp.asarray(-3.0),
        l1={"kernel": jnp.full((1, 1), -2.5), "bias": jnp.full((1,), 0.7)},
    )
    schedule = module.bind({"params": params})
    t = jnp.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(schedule.logsnr(t), 9.0 - 12.0 * np.asarray(t), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(schedule.dlogsnr_dt(t), np.full(11, -12.0), rtol=1e-5)
    np.testing.assert_allclose(schedule.t_from_logsnr(schedule.logsnr(t)), t, atol=1e-5)

  def test_default_keeps_the_monotone_network(self):
    params = learned.LearnedLogSNR(num_features=8).init(jax.random.key(0), jnp.zeros((1,)))
    self.assertEqual(set(params["params"]), {"l1", "l2", "l3", "logsnr_max", "logsnr_min"})
