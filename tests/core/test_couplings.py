"""Minibatch couplings against exact answers: brute-force and scipy assignments, the Sinkhorn
fixed point, per-class brute force, and the same global plan on 8 devices as on one."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from jax.sharding import NamedSharding, PartitionSpec as P
from scipy import optimize

from diffjax.core import couplings
from diffjax.train import sharding


def _points(seed, n, d=3):
  rng = np.random.default_rng(seed)
  return (
      jnp.asarray(rng.normal(size=(n, d)), jnp.float32),
      jnp.asarray(rng.normal(size=(n, d)), jnp.float32),
  )


def _numpy_brute_force(cost):
  cost = np.asarray(cost, np.float64)
  n = cost.shape[0]
  best = min(itertools.permutations(range(n)), key=lambda p: cost[np.arange(n), list(p)].sum())
  return np.asarray(best)


class AssignmentTest(parameterized.TestCase):

  def test_brute_force_is_the_optimum(self):
    for seed in range(5):
      x, y = _points(seed, 6)
      cost = couplings.pairwise_sq_dists(x, y)
      np.testing.assert_array_equal(
          couplings.brute_force_assignment(cost), _numpy_brute_force(cost)
      )

  def test_auction_equals_brute_force(self):
    """n = 2..8, 10 random problems each: the on-device assignment is the optimal permutation."""
    auction = jax.jit(jax.vmap(couplings.auction_assignment))
    brute = jax.jit(jax.vmap(couplings.brute_force_assignment))
    for n in range(2, 9):
      costs = jnp.stack([couplings.pairwise_sq_dists(*_points(100 * n + s, n)) for s in range(10)])
      np.testing.assert_array_equal(auction(costs), brute(costs), err_msg=f"n={n}")

  def test_host_assignment_equals_brute_force_under_jit_and_vmap(self):
    host = jax.jit(jax.vmap(couplings.host_assignment))
    brute = jax.jit(jax.vmap(couplings.brute_force_assignment))
    for n in (2, 5, 8):
      costs = jnp.stack([couplings.pairwise_sq_dists(*_points(100 * n + s, n)) for s in range(10)])
      np.testing.assert_array_equal(host(costs), brute(costs), err_msg=f"n={n}")
    with self.assertRaisesRegex(ValueError, "square"):
      couplings.host_assignment(jnp.zeros((3, 4)))

  def test_host_and_auction_agree_in_couple(self):
    x, y = _points(11, 48, d=3)
    got = {
        a: couplings.couple(jax.random.PRNGKey(0), x, y, solver="exact", assignment=a)[1]
        for a in couplings.ASSIGNMENTS
    }
    np.testing.assert_array_equal(got["host"], got["auction"])
    with self.assertRaisesRegex(ValueError, "method.coupling.assignment"):
      couplings.couple(jax.random.PRNGKey(0), x, y, solver="exact", assignment="hungarian")

  def test_auction_equals_scipy_on_a_larger_batch(self):
    cost = couplings.pairwise_sq_dists(*_points(7, 64, d=16))
    rows, cols = optimize.linear_sum_assignment(np.asarray(cost, np.float64))
    np.testing.assert_array_equal(jax.jit(couplings.auction_assignment)(cost)[rows], cols)

  def test_per_class_exact_coupling_is_per_class_brute_force(self):
    x, y = _points(3, 8)
    labels = jnp.asarray([0, 1, 0, 1, 1, 0, 2, 2])
    rows, cols = couplings.couple(
        jax.random.PRNGKey(0), x, y, solver="exact", row_labels=labels, col_labels=labels
    )
    np.testing.assert_array_equal(rows, np.arange(8))
    np.testing.assert_array_equal(labels[cols], labels)  # never across classes
    cost = np.asarray(couplings.pairwise_sq_dists(x, y))
    for c in range(3):
      idx = np.flatnonzero(np.asarray(labels) == c)
      want = idx[_numpy_brute_force(cost[np.ix_(idx, idx)])]
      np.testing.assert_array_equal(np.asarray(cols)[idx], want)


class SinkhornTest(parameterized.TestCase):

  def test_plan_is_the_entropic_fixed_point(self):
    """Marginals 1/n, 1/m and log P + C/ε = f_i + g_j (additive): the unique entropic plan."""
    x, _ = _points(0, 6)
    _, y = _points(1, 5)
    cost = couplings.pairwise_sq_dists(x, y)
    eps = 0.5
    plan = np.asarray(couplings.sinkhorn_log(cost, eps, 500), np.float64)
    np.testing.assert_allclose(plan.sum(1), np.full(6, 1 / 6), atol=1e-6)
    np.testing.assert_allclose(plan.sum(0), np.full(5, 1 / 5), atol=1e-6)
    resid = np.log(plan) + np.asarray(cost, np.float64) / eps
    resid = resid - resid.mean(1, keepdims=True) - resid.mean(0, keepdims=True) + resid.mean()
    np.testing.assert_allclose(resid, 0.0, atol=1e-4)

  def test_small_epsilon_gives_the_optimal_assignment(self):
    cost = couplings.pairwise_sq_dists(*_points(4, 7))
    plan = couplings.sinkhorn_log(cost, 1e-3, 2000)
    np.testing.assert_array_equal(jnp.argmax(plan, 1), couplings.brute_force_assignment(cost))

  def test_large_epsilon_gives_the_product_coupling(self):
    cost = couplings.pairwise_sq_dists(*_points(5, 4))
    np.testing.assert_allclose(couplings.sinkhorn_log(cost, 1e6, 10), 1 / 16, rtol=1e-4)

  def test_masked_plan_stays_within_classes(self):
    x, y = _points(6, 6)
    labels = jnp.asarray([0, 0, 1, 1, 1, 0])
    mask = labels[:, None] == labels[None, :]
    plan = couplings.sinkhorn_log(couplings.pairwise_sq_dists(x, y), 1.0, 300, mask)
    self.assertEqual(float(jnp.sum(jnp.where(mask, 0.0, plan))), 0.0)
    np.testing.assert_allclose(plan.sum(0), 1 / 6, atol=1e-6)

  def test_sample_plan_frequencies(self):
    plan = jnp.asarray([[0.1, 0.4], [0.3, 0.2]])
    rows, cols = couplings.sample_plan(jax.random.PRNGKey(0), plan, 40_000)
    freq = np.zeros((2, 2))
    np.add.at(freq, (np.asarray(rows), np.asarray(cols)), 1.0 / 40_000)
    np.testing.assert_allclose(freq, plan, atol=0.01)


class GlobalBatchTest(parameterized.TestCase):
  """Under jit with the batch sharded over 8 devices along `data`, the plan is the global one."""

  @parameterized.parameters("exact", "sinkhorn")
  def test_eight_devices_equal_one(self, solver):
    chex.assert_equal(jax.device_count(), 8)
    x, y = _points(11, 64, d=4)
    fn = lambda rng, x, y: couplings.couple(rng, x, y, solver=solver, epsilon=0.5)
    one = jax.jit(fn)(jax.random.PRNGKey(0), x, y)
    mesh = sharding.make_mesh((-1,), ("data",))
    spec = NamedSharding(mesh, P("data"))
    rep = NamedSharding(mesh, P())
    x8, y8 = jax.device_put(x, spec), jax.device_put(y, spec)
    eight = jax.jit(fn, in_shardings=(rep, spec, spec))(jax.random.PRNGKey(0), x8, y8)
    for a, b in zip(one, eight):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  def test_one_example_per_device_is_still_coupled_globally(self):
    """8 examples on 8 devices: a per-device plan could only pair each with itself; the global
    plan is the brute-force optimum over all 8."""
    x, y = _points(12, 8)
    mesh = sharding.make_mesh((-1,), ("data",))
    spec = NamedSharding(mesh, P("data"))
    fn = jax.jit(
        lambda x, y: couplings.couple(jax.random.PRNGKey(0), x, y, solver="exact")[1],
        in_shardings=(spec, spec),
    )
    perm = fn(jax.device_put(x, spec), jax.device_put(y, spec))
    want = _numpy_brute_force(couplings.pairwise_sq_dists(x, y))
    np.testing.assert_array_equal(np.asarray(perm), want)
    self.assertFalse(np.array_equal(want, np.arange(8)))
