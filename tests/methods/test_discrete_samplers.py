"""Every discrete sampler's output law on V = 4, L = 3, with the exact model (`discrete_brute`).

The exact finite-step law is propagated on S^L with kernels built from the definitions: MDLM's and
DFM's per-token step rules, SEDD's Euler rule (clamped) and, for Tweedie τ-leaping and D3PM, the
true per-token reverse marginals q(x_s^l | x_t) of the full space (SEDD Thm 4.2: Tweedie τ-leaping
with the exact score is exactly these). The sampler's empirical law of 20k draws must match it
(TV below 0.035, against a sampling noise of ~0.023), the test discriminates (the law at 3 steps is
far from p_0), and the exact law approaches p_0 as the steps grow.
"""

import chex
import pytest
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax.core import discrete
from diffjax.core import discrete_brute as bf
from diffjax.methods import d3pm
from diffjax.methods import dfm
from diffjax.methods import mdlm
from diffjax.methods import sedd

NUM = 20_000
STEPS = 3
T_END = 1e-5
TOL = 0.035


def _log(a):
  return np.log(np.maximum(a, 1e-30))


def _graph(absorbing):
  return discrete.Absorbing(bf.V) if absorbing else discrete.Uniform(bf.V)


def _start(brute):
  law = np.zeros(brute.N)
  if brute.absorbing:
    law[brute.index([bf.V] * bf.L)] = 1.0
  else:
    law[:] = 1.0 / brute.N
  return law


def _timed_table(brute, times, table_of_alpha, sched):
  """fn(x, t) looking up table_of_alpha(α_t) at the grid time nearest t[0] (the samplers' t)."""
  tabs = jnp.asarray(np.stack([table_of_alpha(float(sched.alpha(t))) for t in times]), jnp.float32)
  grid = jnp.asarray(times, jnp.float32)
  powers = jnp.asarray(brute.S ** np.arange(bf.L - 1, -1, -1))

  def fn(x, t):
    k = jnp.argmin(jnp.abs(grid - t[0]))
    return tabs[k][jnp.sum(x * powers, axis=-1)]

  return fn


def _reverse_marginals(brute, a_s, a_t):
  """q(x_s^l = y | x_t) [N, L, S] from the full-space reverse."""
  rev = brute.reverse_full(a_s, a_t)
  out = np.zeros((brute.N, bf.L, brute.S))
  for l in range(bf.L):
    for v in range(brute.S):
      out[:, l, v] = rev[:, brute.states[:, l] == v].sum(1)
  return out


def _propagate(brute, kernels):
  law = _start(brute)
  for per_token in kernels:
    law = law @ brute.token_kernel(per_token)
  return brute.data_law(law)


def _mdlm_kernels(brute, sched, steps):
  ts = np.linspace(1.0, 0.0, steps + 1)
  out = []
  for t, s in zip(ts[:-1], ts[1:]):
    om_t, om_s = float(sched.one_minus_alpha(t)), float(sched.one_minus_alpha(s))
    post = brute.token_posterior(float(sched.alpha(t)))
    k = np.zeros((brute.N, bf.L, brute.S))
    masked = brute.states == bf.V
    k[masked] = post[masked] * (om_t - om_s) / om_t
    k[..., bf.V][masked] = om_s / om_t
    k[~masked] = np.eye(brute.S)[brute.states[~masked]]
    out.append(k)
  return out


def _sedd_kernels(brute, sched, steps, predictor):
  ts = np.linspace(1.0, T_END, steps + 1)
  out = []
  for t, s in zip(ts[:-1], ts[1:]):
    a_t, a_s = float(sched.alpha(t)), float(sched.alpha(s))
    if predictor == "tweedie":
      out.append(_reverse_marginals(brute, a_s, a_t))
      continue
    score = brute.concrete_score(a_t)
    sigma = float(discrete.noise_rate(sched, t))
    xl = brute.states[..., None]
    y = np.arange(brute.S)[None, None, :]
    if brute.absorbing:
      rate = ((xl == bf.V) & (y != bf.V)).astype(float)
    else:
      rate = (xl != y) / bf.V
    k = (t - s) * sigma * rate * score
    k += np.eye(brute.S)[brute.states] * (1.0 - k.sum(-1, keepdims=True))
    k = np.maximum(k, 0.0)
    out.append(k / k.sum(-1, keepdims=True))
  out.append(_reverse_marginals(brute, 1.0, float(sched.alpha(T_END))))  # the denoising step
  return out


def _dfm_kernels(brute, sched, steps):
  ts = np.linspace(1.0, 0.0, steps + 1)
  out = []
  for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
    post = brute.token_posterior(float(sched.alpha(t)))
    if i == steps - 1:
      out.append(post)
      continue
    pj = 1.0 - np.exp(-(t - s) * float(discrete.jump_rate(sched, t)))
    stay = np.eye(brute.S)[brute.states]
    out.append(pj * post + (1.0 - pj) * stay)
  return out


class SamplerLawTest(chex.TestCase, parameterized.TestCase):

  def _check(self, brute, law_fn, sample_fn, label):
    exact = law_fn(STEPS)
    samples = np.asarray(sample_fn(STEPS))
    emp = bf.empirical(brute, samples)
    data = brute.p0[brute.data_idx]
    self.assertAlmostEqual(float(exact.sum()), 1.0, places=6, msg=label)
    self.assertLess(bf.tv(emp, exact), TOL, label)
    self.assertGreater(bf.tv(exact, data), 3 * TOL, label)  # the test can tell the laws apart
    far = [bf.tv(law_fn(n), data) for n in (16, 64, 256)]
    self.assertLess(far[1], far[0], label)
    self.assertLess(far[2], far[1], label)
    self.assertLess(far[2], 0.02, label)

  def test_mdlm_cached_ancestral(self):
    brute, graph, sched = bf.Brute(True), _graph(True), discrete.LogLinear(1e-3)
    raw = _log(brute.token_posterior(0.5))  # absorbing: p(x0^l | x_t) does not depend on t
    table = bf.table_fn(raw, brute)
    logp_fn = lambda x, t: mdlm.subs(table(x), x, graph)
    sample = lambda n: mdlm.sample(
        logp_fn, sched, graph, jax.random.PRNGKey(0), (NUM, bf.L), n, cache=True
    )
    self._check(brute, lambda n: _propagate(brute, _mdlm_kernels(brute, sched, n)), sample, "mdlm")
    # The cache changes the cost, not the law: the uncached sampler draws the same sequences.
    uncached = mdlm.sample(logp_fn, sched, graph, jax.random.PRNGKey(0), (64, bf.L), 8, cache=False)
    cached = mdlm.sample(logp_fn, sched, graph, jax.random.PRNGKey(0), (64, bf.L), 8, cache=True)
    np.testing.assert_array_equal(uncached, cached)

  def test_sedd_uniform_euler(self):
    """The clamped step (stay < 0 at t = 1, σ = 999) inside a whole run."""
    self._sedd(False, "euler")

  @pytest.mark.slow
  @parameterized.parameters((True, "euler"), (True, "tweedie"), (False, "tweedie"))
  def test_sedd(self, absorbing, predictor):
    self._sedd(absorbing, predictor)

  def _sedd(self, absorbing, predictor):
    brute, graph, sched = bf.Brute(absorbing), _graph(absorbing), discrete.LogLinear(1e-3)
    ts = np.linspace(1.0, T_END, STEPS + 1)
    fn = _timed_table(brute, ts, lambda a: _log(brute.concrete_score(a)), sched)
    log_s_fn = lambda x, t: sedd.log_score(fn(x, t), x, t, sched, graph, scale_by_sigma=False)

    def sample(n):
      return sedd.sample(
          log_s_fn, sched, graph, jax.random.PRNGKey(1), (NUM, bf.L), n, predictor=predictor
      )

    law = lambda n: _propagate(brute, _sedd_kernels(brute, sched, n, predictor))
    self._check(brute, law, sample, f"sedd {absorbing} {predictor}")

  @pytest.mark.slow
  @parameterized.parameters(True, False)
  def test_dfm_euler(self, absorbing):
    brute, graph, sched = bf.Brute(absorbing), _graph(absorbing), discrete.Polynomial(1.0)
    ts = np.linspace(1.0, 0.0, STEPS + 1)
    fn = _timed_table(brute, ts, lambda a: _log(brute.token_posterior(a)[..., : bf.V]), sched)
    sample = lambda n: dfm.sample(fn, sched, graph, jax.random.PRNGKey(2), (NUM, bf.L), n)
    law = lambda n: _propagate(brute, _dfm_kernels(brute, sched, n))
    self._check(brute, law, sample, f"dfm {absorbing}")

  @pytest.mark.slow
  def test_d3pm_absorbing(self):
    """D3PM's step with p̃ = p(x0^l | x_t) is the true per-token reverse (absorbing graph)."""
    brute, graph, sched = bf.Brute(True), _graph(True), discrete.LogLinear(0.0)
    table = bf.table_fn(brute.token_posterior(0.5), brute)
    sample = lambda n: d3pm.sample(
        lambda x, t: table(x), sched, graph, jax.random.PRNGKey(3), (NUM, bf.L), n
    )

    def law(n):
      ts = np.linspace(1.0, 0.0, n + 1)
      ks = [
          _reverse_marginals(brute, float(sched.alpha(s)), float(sched.alpha(t)))
          for t, s in zip(ts[:-1], ts[1:])
      ]
      return _propagate(brute, ks)

    self._check(brute, law, sample, "d3pm")


class ClampTest(chex.TestCase):

  def test_uniform_euler_negative_stay_is_clamped(self):
    """At t = 1 (σ = 999 for eps = 1e-3) one Euler step of 1/3 gives stay = 1 − 333·Σ s/V < 0."""
    graph, sched = discrete.Uniform(bf.V), discrete.LogLinear(1e-3)
    x = jnp.array([[0, 1, 2]])
    log_s = jnp.zeros((1, 3, bf.V))  # score 1: the uniform marginal's
    t, dt = jnp.ones(1), jnp.full((1,), 1 / 3)
    naive_stay = 1.0 - float(dt[0] * discrete.noise_rate(sched, t)[0]) * (bf.V - 1) / bf.V
    self.assertLess(naive_stay, -100.0)
    probs = sedd.euler_probs(sched, graph, log_s, x, t, dt)
    self.assertTrue(bool(jnp.all(jnp.isfinite(probs))) and bool(jnp.all(probs >= 0)))
    np.testing.assert_allclose(
        probs / probs.sum(-1, keepdims=True), (1 - jax.nn.one_hot(x, bf.V)) / 3, atol=1e-7
    )  # stay clamped to 0, the V − 1 = 3 moves equally likely
    draws = discrete.sample_categorical(jax.random.PRNGKey(0), jnp.repeat(probs, 3000, axis=0))
    self.assertFalse(bool(jnp.any(draws == x)))
    self.assertTrue(bool(jnp.all((draws >= 0) & (draws < bf.V))))
