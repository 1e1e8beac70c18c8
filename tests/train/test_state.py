"""Optimiser schedule and EMA decays against hand-computed values (EDM's training_loop formula)."""

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from diffjax import config_lib
from diffjax.train import state as state_lib


class EmaTest(chex.TestCase):

  def test_constant(self):
    ema = ml_collections.ConfigDict(config_lib.ema_constant(0.999))
    self.assertAlmostEqual(float(state_lib.ema_decay(ema, jnp.int32(7), 128)), 0.999, places=6)

  def test_edm_halflife_with_rampup(self):
    # EDM: halflife = min(500k, nimg·0.05) with nimg = images seen before the update; β = 0.5^(B/halflife).
    ema = ml_collections.ConfigDict(config_lib.ema_halflife(500_000, 0.05))
    batch = 512
    for step in (0, 1, 100, 10_000, 100_000):
      nimg = step * batch
      halflife = min(500_000, nimg * 0.05)
      expected = 0.5 ** (batch / max(halflife, 1e-8))
      got = float(state_lib.ema_decay(ema, jnp.int32(step), batch))
      np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-30)
    # After the ramp the EMA forgets half its weight every 500k images: β^(500k/B) = 0.5.
    beta = float(state_lib.ema_decay(ema, jnp.int32(10**6), batch))
    np.testing.assert_allclose(beta ** (500_000 / batch), 0.5, rtol=1e-4)

  def test_init_weight_is_what_the_updates_leave_of_the_start(self):
    """ema_init_weight equals the product of ema_decay's per-step decays and the closed forms."""
    batch = 64
    for ema in (config_lib.ema_constant(0.9995), config_lib.ema_halflife(20_000, 0.05)):
      ema = ml_collections.ConfigDict(ema)
      w = 1.0
      for step in range(300):
        w *= float(state_lib.ema_decay(ema, jnp.int32(step), batch))
      np.testing.assert_allclose(state_lib.ema_init_weight(ema, 300, batch), w, rtol=1e-4)
    constant = ml_collections.ConfigDict(config_lib.ema_constant(0.9995))
    self.assertAlmostEqual(state_lib.ema_init_weight(constant, 1000, batch), 0.60645, places=4)
    self.assertEqual(state_lib.ema_init_weight(constant, 0, batch), 1.0)
    # No ramp: the start halves every half-life of images.
    plain = ml_collections.ConfigDict(config_lib.ema_halflife(6400, 0.0))
    np.testing.assert_allclose(state_lib.ema_init_weight(plain, 300, batch), 0.125, rtol=1e-9)
    # With the ramp, the first update (half-life 0) already forgets the start.
    ramp = ml_collections.ConfigDict(config_lib.ema_halflife(6400, 0.05))
    self.assertEqual(state_lib.ema_init_weight(ramp, 1, batch), 0.0)

  def test_ema_update_moves_toward_params(self):
    out = state_lib.ema_update({"w": jnp.zeros(3)}, {"w": jnp.ones(3)}, jnp.float32(0.9))
    chex.assert_trees_all_close(out, {"w": jnp.full(3, 0.1)})


class LearningRateTest(chex.TestCase):

  def test_warmup_then_constant(self):
    optim = ml_collections.ConfigDict(config_lib.adam(1e-3, warmup_steps=10))
    lr = state_lib.learning_rate(optim)
    np.testing.assert_allclose(
        [float(lr(s)) for s in (0, 5, 10, 1000)], [0.0, 5e-4, 1e-3, 1e-3], rtol=1e-6
    )

  def test_bad_kind_names_the_key(self):
    optim = ml_collections.ConfigDict(config_lib.adam(1e-3))
    optim.kind = "sgd"
    with self.assertRaisesRegex(ValueError, "optim.kind"):
      state_lib.make_optimizer(optim)

  def test_nan_to_num_and_clip(self):
    optim = ml_collections.ConfigDict(config_lib.adam(1.0, grad_clip=1.0, nan_to_num=True))
    tx = state_lib.make_optimizer(optim)
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.array([jnp.nan, 3.0])}, tx.init(params), params)
    self.assertTrue(bool(jnp.all(jnp.isfinite(updates["w"]))))
    self.assertEqual(float(updates["w"][0]), 0.0)  # the NaN entry became a zero gradient

  def test_flatten_is_the_same_adam(self):
    """optim.flatten: both settings equal a NumPy Adam with global-norm clipping over 3 steps;
    flattened, the moments are one vector each."""
    lr, b1, b2, eps, clip = 0.1, 0.9, 0.99, 1e-8, 1.0
    shapes = {"a": (3,), "b": (2, 2)}
    rng = np.random.default_rng(0)
    grads = [
        {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()} for _ in range(3)
    ]
    m = {k: np.zeros(s) for k, s in shapes.items()}
    v = {k: np.zeros(s) for k, s in shapes.items()}
    want = []
    for t, g in enumerate(grads, start=1):
      norm = np.sqrt(sum(np.sum(np.float64(x) ** 2) for x in g.values()))
      g = {k: np.float64(x) * min(1.0, clip / norm) for k, x in g.items()}
      m = {k: b1 * m[k] + (1 - b1) * g[k] for k in g}
      v = {k: b2 * v[k] + (1 - b2) * g[k] ** 2 for k in g}
      want.append({k: -lr * (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps) for k in g})
    for flatten in (False, True):
      optim = ml_collections.ConfigDict(
          config_lib.adam(lr, b1=b1, b2=b2, eps=eps, grad_clip=clip, flatten=flatten)
      )
      tx = state_lib.make_optimizer(optim)
      params = {k: jnp.zeros(s) for k, s in shapes.items()}
      opt_state = tx.init(params)
      for g, w in zip(grads, want):
        updates, opt_state = tx.update(jax.tree.map(jnp.asarray, g), opt_state, params)
        for k in shapes:
          np.testing.assert_allclose(updates[k], w[k], rtol=1e-5, atol=1e-7, err_msg=str(flatten))
      moments = [x for x in jax.tree.leaves(opt_state) if x.ndim >= 1]
      if flatten:
        self.assertTrue(all(x.shape == (7,) for x in moments), [x.shape for x in moments])
      else:
        self.assertIn((2, 2), [x.shape for x in moments])
