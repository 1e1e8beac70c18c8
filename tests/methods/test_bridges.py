"""The bridge Methods: OT-CFM couples each batch optimally, DSBM's IMF schedule (frozen copies,
which network trains), and (slow) learned fields against the Gaussian closed forms."""

import itertools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import data
from diffjax import methods
from diffjax.core import couplings
from diffjax.core import interpolants

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _method(path, arg="smoke"):
  config = config_lib.load(os.path.join(REPO, "configs", path), arg)
  ds = data.make(config.data, seed=0)
  return config, methods.make(config, ds), ds


class OTCFMTest(parameterized.TestCase):

  def test_batch_noise_is_the_optimal_assignment(self):
    _, method, ds = _method("ot_cfm/toy2d.py")
    batch = {"x": jnp.asarray(ds.batch(0)["x"])}  # 8 points (smoke)
    rng = jax.random.PRNGKey(3)
    coupled = method.couple(batch, rng)
    np.testing.assert_array_equal(coupled["x"], batch["x"])
    eps = jax.random.normal(jax.random.fold_in(rng, 11), batch["x"].shape)
    cost = np.asarray(couplings.pairwise_sq_dists(batch["x"], eps), np.float64)
    best = min(itertools.permutations(range(8)), key=lambda p: cost[np.arange(8), list(p)].sum())
    np.testing.assert_allclose(coupled["eps"], eps[np.asarray(best)])
    params = method.init(jax.random.PRNGKey(0), batch)
    loss, _ = method.loss(params, batch, rng)
    self.assertTrue(np.isfinite(float(loss)))

  def test_conditional_pairs_stay_in_class(self):
    config, _, _ = _method("ot_cfm/toy2d.py")
    config.method.conditional = True
    ds = data.make(
        dict(name="arrays", batch_size=8, x=np.zeros((8, 2)), label=np.arange(8) % 3), seed=0
    )
    method = methods.make(config, ds)
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    label = jnp.asarray([0, 1, 2, 0, 1, 2, 0, 0])
    out = method.couple({"x": x, "label": label}, jax.random.PRNGKey(1))
    eps = jax.random.normal(jax.random.fold_in(jax.random.PRNGKey(1), 11), (8, 2))
    cols = [int(np.argmin(np.abs(eps - e).sum(1))) for e in np.asarray(out["eps"])]
    np.testing.assert_array_equal(label[np.asarray(cols)], label)

  def test_bad_coupling_is_named(self):
    config, _, ds = _method("ot_cfm/toy2d.py")
    config.method.coupling.solver = "emd"
    with self.assertRaisesRegex(ValueError, "method.coupling.solver"):
      methods.make(config, ds)


class DSBMScheduleTest(parameterized.TestCase):

  def test_frozen_copies_and_alternating_networks(self):
    """steps_per_iteration = 2: frozen := params at steps 0, 2, 4; iteration 0 and 2 train the
    backward network, iteration 1 the forward one (the other gets no gradient)."""
    config, method, ds = _method("dsbm/gaussian.py", "dim=2,smoke,first=ref")
    config.method.steps_per_iteration = 2
    method = methods.make(config, ds)
    batch = {k: jnp.asarray(v) for k, v in ds.batch(0).items()}
    params = method.init(jax.random.PRNGKey(0), batch)
    state = method.init_state()
    grad_fn = jax.jit(jax.grad(method.loss_with_state, has_aux=True))
    for step in range(6):
      grads, (metrics, new_state) = grad_fn(params, state, batch, jax.random.PRNGKey(step))
      k = step // 2
      self.assertEqual(int(metrics["imf_iteration"]), k)
      trained = "forward" if k % 2 == 1 else "backward"
      idle = "backward" if trained == "forward" else "forward"
      norm = lambda t: float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(t)))
      self.assertGreater(norm(grads[trained]), 0.0)
      self.assertEqual(norm(grads[idle]), 0.0)
      want_frozen = params if step % 2 == 0 else state["frozen"]
      jax.tree.map(np.testing.assert_array_equal, new_state["frozen"], want_frozen)
      self.assertEqual(int(new_state["step"]), step + 1)
      state = new_state
      params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)

  def test_first_couplings(self):
    """Iteration 0: "ind" keeps the batch's independent (x, y); "ref" pairs x with x + σ·W₁."""
    x = jax.random.normal(jax.random.PRNGKey(0), (4000, 2))
    y = jax.random.normal(jax.random.PRNGKey(1), (4000, 2)) + 5.0
    for first in ("ind", "ref"):
      config, method, _ = _method("dsbm/gaussian.py", f"dim=2,smoke,first={first},sigma=0.5")
      del config
      frozen = method.init_state()["frozen"]
      x0, x1 = method.coupling(frozen, {"x": x, "y": y}, jnp.int32(0), jax.random.PRNGKey(2))
      np.testing.assert_array_equal(x0, x)
      if first == "ind":
        np.testing.assert_array_equal(x1, y)
      else:
        np.testing.assert_allclose(np.std(np.asarray(x1 - x), axis=0), 0.5, atol=0.02)


@pytest.mark.slow
class LearnedFieldsTest(parameterized.TestCase):

  def test_dsbm_converges_to_the_gaussian_sb(self):
    """d = 2, σ = 1, π₀ = N(−0.1, I) → π₁ = N(0.1, I): after 4 IMF iterations the learned
    coupling's cross-covariance is the closed form (√5 − 1)/2·I."""
    sys.path.insert(0, os.path.join(REPO, "experiments", "bridges"))
    import gaussian_sb  # pylint: disable=g-import-not-at-top

    rows = gaussian_sb.run(2, iterations=4, steps=400, num_eval=20_000, devices=jax.devices()[:1])
    last = rows[-1]
    self.assertAlmostEqual(last["cross_cov_diag_mean"], (np.sqrt(5) - 1) / 2, delta=0.06)
    for key in ("mean0", "mean1", "cov0", "cov1", "cross_cov"):
      self.assertLess(last[key], 0.12, key)

  def test_interpolant_learns_the_exact_fields(self):
    """configs/stochastic_interpolants/gaussian.py in d = 2 (N(1, 0.25·I) data), 3000 steps: the
    learned drift v̂ + γ'η̂ matches the closed form at t = 0.3, 0.7 near the data."""
    from diffjax.train import experiment  # pylint: disable=g-import-not-at-top

    config = config_lib.load(
        os.path.join(REPO, "configs", "stochastic_interpolants", "gaussian.py"), "dim=2"
    )
    config.train.num_steps = 3000
    exp = experiment.Experiment(config, jax.devices()[:1])
    state = jax.jit(exp.init_state)()
    steps = exp.jit_train_steps(50)
    for s in range(0, 3000, 50):
      state, _ = steps(state, exp.global_batches(s, 50))
    method = exp.method
    exact = interpolants.gaussian_fields(method.path, np.ones(2), 0.25 * np.eye(2))
    learned = method.fields(state.ema_params)
    for t in (0.3, 0.7):
      tt = jnp.full((64,), t)
      a = float(method.path.coefficients(tt[:1])[0][0])
      z = a * 1.0 + 0.8 * jax.random.normal(jax.random.PRNGKey(0), (64, 2))
      want = method.path.drift(*exact(z, tt), tt)
      got = method.path.drift(*learned(z, tt), tt)
      rel = float(jnp.sqrt(jnp.mean(jnp.square(got - want)) / jnp.mean(jnp.square(want))))
      self.assertLess(rel, 0.1, f"t={t}")
