"""Sliced Wasserstein against closed forms and scipy's exact 1-D distance."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from diffjax.metrics import wasserstein


class SlicedWassersteinTest(chex.TestCase):

  def test_gaussian_shift_closed_form(self):
    # N(0, I) vs N(m, I): the 1-D W2² along θ is (θ·m)², and E_θ[(θ·m)²] = |m|²/d on the sphere.
    d, n = 4, 4000
    rng = np.random.default_rng(0)
    m = np.array([1.0, -2.0, 0.5, 0.0])
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d)) + m
    sw = wasserstein.sliced_wasserstein(jnp.asarray(x), jnp.asarray(y), jax.random.PRNGKey(0), 2000)
    np.testing.assert_allclose(float(sw), np.sqrt(m @ m / d), rtol=0.05)

  def test_one_dimension_equals_exact_w1(self):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((500, 1)), rng.exponential(size=(500, 1))
    sw = wasserstein.sliced_wasserstein(
        jnp.asarray(x), jnp.asarray(y), jax.random.PRNGKey(0), 4, p=1
    )
    np.testing.assert_allclose(float(sw), stats.wasserstein_distance(x[:, 0], y[:, 0]), rtol=1e-5)

  def test_zero_for_identical_and_rejects_mismatch(self):
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 3))
    self.assertAlmostEqual(float(wasserstein.sliced_wasserstein(x, x, jax.random.PRNGKey(1))), 0.0)
    with self.assertRaisesRegex(ValueError, "same shape"):
      wasserstein.sliced_wasserstein(x, x[:10], jax.random.PRNGKey(1))
