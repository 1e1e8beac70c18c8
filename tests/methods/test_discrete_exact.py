"""The discrete processes against brute force on V = 4, L = 3 (`discrete_brute.py`).

* NELBO at the exact model: MDLM, SEDD (absorbing and uniform) and DFM (mask source) equal
  −log p(x_0) for every x_0 (continuous-time ELBOs are tight at the true reverse process);
  DFM's uniform source is a bound (≥); D3PM's T-step VLB equals the full-space VLB, decreases
  in T and stays ≥ −log p(x_0).
* Each loss at the exact model equals its closed-form minimum, and a perturbed model scores more.
* Each sampler's output law: the empirical law of 20k draws with the exact model matches the
  exact finite-step law (built on S^L from the definitions), which approaches p_0 as steps grow.
* The uniform-graph Euler step with a negative stay probability is clamped (no NaN).
"""

import functools

import chex
import pytest
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax.core import discrete
from diffjax.methods import d3pm
from diffjax.methods import dfm
from diffjax.methods import mdlm
from diffjax.methods import sedd
from diffjax.core import discrete_brute as bf

NUM_SAMPLES = 20_000


def _graph(absorbing):
  return discrete.Absorbing(bf.V) if absorbing else discrete.Uniform(bf.V)


def _enumerate(brute, alpha):
  """Rows (x0, x_t) over data × all states, their weights q(x_t | x0) [64, N] and x0, x_t [64·N, L]."""
  w = brute.full_matrix(alpha)[brute.data_idx]  # [64, N]
  x0 = np.repeat(brute.states[brute.data_idx], brute.N, axis=0)
  xt = np.tile(brute.states, (len(brute.data_idx), 1))
  return w, jnp.asarray(x0), jnp.asarray(xt)


def _nelbo_by_quadrature(brute, schedule, integrand_fn, num_nodes):
  """∫_0^1 E[integrand | x0] dt per data sequence [64] by Gauss-Legendre; integrand_fn(t, x0, xt)."""
  nodes, weights = bf.gauss_legendre(num_nodes)
  total = np.zeros(len(brute.data_idx))
  for t, wq in zip(nodes, weights):
    w, x0, xt = _enumerate(brute, float(schedule.alpha(t)))
    vals = np.asarray(integrand_fn(float(t), x0, xt)).reshape(w.shape)
    total += wq * np.sum(np.where(w > 0, w * vals, 0.0), axis=1)
  return total


def _log(a):
  return np.log(np.maximum(a, 1e-30))


class NelboTest(chex.TestCase, parameterized.TestCase):

  def test_mdlm_nelbo_is_minus_log_p(self):
    brute, graph, sched = bf.Brute(True), _graph(True), discrete.LogLinear(eps=0.0)

    def fn(t, x0, xt):
      raw = bf.table_fn(_log(brute.token_posterior(float(sched.alpha(t)))), brute)(xt)
      tb = jnp.full(x0.shape[:1], t)
      return mdlm.integrand(sched, graph, mdlm.subs(raw, xt, graph), x0, xt, tb)

    got = _nelbo_by_quadrature(brute, sched, fn, 16)
    np.testing.assert_allclose(got, -np.log(brute.p0[brute.data_idx]), rtol=2e-5)

  def test_sedd_uniform_nelbo(self):
    self._sedd_nelbo(False)

  @pytest.mark.slow
  def test_sedd_absorbing_nelbo(self):
    self._sedd_nelbo(True)

  def _sedd_nelbo(self, absorbing):
    brute, graph, sched = bf.Brute(absorbing), _graph(absorbing), discrete.LogLinear(eps=0.0)

    def fn(t, x0, xt):
      log_s = bf.table_fn(_log(brute.concrete_score(float(sched.alpha(t)))), brute)(xt)
      tb = jnp.full(x0.shape[:1], t)
      log_s = sedd.log_score(log_s, xt, tb, sched, graph, scale_by_sigma=False)
      return sedd.integrand(sched, graph, log_s, x0, xt, tb)

    got = _nelbo_by_quadrature(brute, sched, fn, 48 if absorbing else 96)
    np.testing.assert_allclose(got, -np.log(brute.p0[brute.data_idx]), rtol=2e-3)

  @pytest.mark.slow
  @parameterized.parameters(True, False)
  def test_dfm_nelbo(self, absorbing):
    brute, graph, sched = bf.Brute(absorbing), _graph(absorbing), discrete.Polynomial(1.0)

    def fn(t, x0, xt):
      post = brute.token_posterior(float(sched.alpha(t)))[..., : bf.V]
      logp = dfm.log_probs(bf.table_fn(_log(post), brute)(xt), bf.V)
      return dfm.integrand(sched, logp, x0, xt, jnp.full(x0.shape[:1], t))

    got = _nelbo_by_quadrature(brute, sched, fn, 48)
    want = -np.log(brute.p0[brute.data_idx])
    if absorbing:  # the mask path is MDLM: tight
      np.testing.assert_allclose(got, want, rtol=2e-5)
    else:  # a bound, strict for this p_0
      self.assertTrue(np.all(got >= want - 1e-4))
      self.assertGreater(np.mean(got - want), 1e-3)


class LossMinimumTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters(True, False)
  def test_sedd_dse_minimum(self, absorbing):
    """E[DSE] at the true score = E[Σ_y Q(x,y)(E[K(r)|x] − K(s*))]; a perturbed score gives more."""
    brute, graph = bf.Brute(absorbing), _graph(absorbing)
    alpha = 0.6
    w, x0, xt = _enumerate(brute, alpha)
    w = w * brute.p0[brute.data_idx][:, None]  # the joint p(x0, x_t)
    score = brute.concrete_score(alpha)
    log_s = jnp.asarray(_log(score))[jnp.asarray(np.tile(np.arange(brute.N), 64))]
    log_s = jnp.where(jax.nn.one_hot(xt, brute.S) > 0, 0.0, log_s)
    a = jnp.full((len(xt), 1), alpha)
    value = np.sum(w.reshape(-1, 1) * np.asarray(sedd.dse(graph, log_s, x0, xt, a, 1 - a)))
    # Closed form on S^L: r_y(x0, x) = q(y|x0)/q(x|x0) per token, s* = p_t ratio.
    m = brute.token_matrix(alpha)
    post = brute.posterior_x0(alpha)
    pt = brute.marginal(alpha)
    want = 0.0
    for x in range(brute.N):
      for l in range(bf.L):
        xl = brute.states[x, l]
        for y in range(brute.S):
          rate = (
              (1.0 if (absorbing and xl == bf.V and y != bf.V) else 0.0) if absorbing else 1 / bf.V
          )
          if y == xl or rate == 0:
            continue
          r = m[brute.states[:, l], y] / m[brute.states[:, l], xl]  # over x0
          k_mean = np.sum(post[x] * np.where(r > 0, r * _log(r), 0.0) - post[x] * r)
          s = score[x, l, y]
          want += pt[x] * rate * (k_mean - (s * np.log(s) - s))
    np.testing.assert_allclose(value, want, rtol=1e-4)
    noisy = log_s + 0.3 * jax.random.normal(jax.random.PRNGKey(0), log_s.shape)
    worse = np.sum(w.reshape(-1, 1) * np.asarray(sedd.dse(graph, noisy, x0, xt, a, 1 - a)))
    self.assertGreater(worse, value + 1e-3)

  @parameterized.parameters(True, False)
  def test_dfm_generalized_kl_minimum(self, absorbing):
    """At the true posterior: −κ̇/(1−κ) Σ_{y≠x_t} p(y) log p(y); a perturbed posterior gives more."""
    brute, graph, sched = bf.Brute(absorbing), _graph(absorbing), discrete.Polynomial(1.0)
    t = 0.4
    alpha = float(sched.alpha(t))
    w, x0, xt = _enumerate(brute, alpha)
    w = w * brute.p0[brute.data_idx][:, None]  # the joint p(x0, x_t)
    post = brute.token_posterior(alpha)[..., : bf.V]
    logp = dfm.log_probs(bf.table_fn(_log(post), brute)(xt), bf.V)
    tb = jnp.full(x0.shape[:1], t)
    value = np.sum(w.reshape(-1) * np.asarray(dfm.integrand(sched, logp, x0, xt, tb)))
    pt = brute.marginal(alpha)
    ent = np.where(post > 0, post * _log(post), 0.0)  # [N, L, V]
    not_x = np.arange(bf.V)[None, None, :] != brute.states[:, :, None]
    want = -float(discrete.jump_rate(sched, t)) * np.sum(pt[:, None, None] * ent * not_x)
    np.testing.assert_allclose(value, want, rtol=1e-4)
    noisy = jax.nn.log_softmax(logp + 0.3 * jax.random.normal(jax.random.PRNGKey(1), logp.shape))
    worse = np.sum(w.reshape(-1) * np.asarray(dfm.integrand(sched, noisy, x0, xt, tb)))
    self.assertGreater(worse, value + 1e-3)


def _d3pm_vlb_full(brute, sched, num_steps):
  """The T-step VLB on S^L per data x0 [64] with p_θ(x_{i−1}|x_i) = Π_l q(x_{i−1}^l | x_i)."""
  alphas = [float(sched.alpha(i / num_steps)) for i in range(num_steps + 1)]
  data = brute.data_idx
  total = np.zeros(len(data))
  for i in range(1, num_steps + 1):
    a_s, a_t = alphas[i - 1], alphas[i]
    q_t = brute.full_matrix(a_t)[data]  # q(x_i | x0) [64, N]
    rev = brute.reverse_full(a_s, a_t)  # q(x_s | x_t) [N, N]
    marg = np.zeros((brute.N, bf.L, brute.S))
    for l in range(bf.L):
      for v in range(brute.S):
        marg[:, l, v] = rev[:, brute.states[:, l] == v].sum(1)
    p_model = brute.token_kernel(marg)  # [x_t, x_s]
    if i == 1:
      term = -_log(p_model[:, data].T)  # [x0, x_t]
    else:
      # q(x_s | x_t, x0) ∝ q(x_t | x_s) q(x_s | x0)
      q_s = brute.full_matrix(a_s)[data]  # [64, N_s]
      step = brute.full_matrix(a_t / a_s)  # [s, t]
      post = q_s[:, :, None] * step[None]  # [x0, s, t]
      post = post / np.maximum(post.sum(1, keepdims=True), 1e-300)
      p_st = p_model.T[None]  # [1, s, t]
      term = np.sum(np.where(post > 0, post * (_log(post) - _log(p_st)), 0.0), axis=1)
    total += np.sum(q_t * term, axis=1)
  q_1 = brute.full_matrix(alphas[-1])[data]
  prior = np.ones(1)
  for _ in range(bf.L):
    prior = np.kron(prior, brute.m)
  total += np.sum(np.where(q_1 > 0, q_1 * (_log(q_1) - _log(prior[None])), 0.0), axis=1)
  return total


class D3PMTest(chex.TestCase, parameterized.TestCase):

  @pytest.mark.slow
  def test_vlb_matches_full_space_and_tightens(self):
    brute, graph, sched = bf.Brute(True), _graph(True), discrete.LogLinear(eps=0.0)
    want = -np.log(brute.p0[brute.data_idx])
    p0 = brute.p0[brute.data_idx]
    previous = None
    for steps in (1, 3, 12):
      ours = np.zeros(len(brute.data_idx))
      for i in range(1, steps + 1):
        alpha = float(sched.alpha(i / steps))
        w, x0, xt = _enumerate(brute, alpha)
        p_tilde = bf.table_fn(brute.token_posterior(alpha), brute)(xt)  # absorbing: p̃* = p(x0|xt)
        ib = jnp.full(x0.shape[:1], i)
        vals = d3pm.step_term(sched, graph, p_tilde, x0, xt, ib, steps)
        vals = np.asarray(vals).reshape(w.shape)
        ours += np.sum(np.where(w > 0, w * vals, 0.0), axis=1)  # impossible x_t: log 0
      ours += np.asarray(d3pm.prior_kl(sched, graph, jnp.asarray(brute.states[brute.data_idx])))
      np.testing.assert_allclose(ours, _d3pm_vlb_full(brute, sched, steps), rtol=1e-4, atol=1e-5)
      # Averaged over p_0: VLB ≥ cross-entropy of the model ≥ the entropy H(p_0).
      self.assertGreater(p0 @ ours, p0 @ want)
      if previous is not None:
        self.assertLess(p0 @ ours, p0 @ previous - 1e-3)
      previous = ours
    self.assertLess(p0 @ (previous - want), 0.05)

  @parameterized.parameters(True, False)
  def test_reverse_step_is_bayes(self, absorbing):
    """reverse_step_probs(p̃) = Σ_x0 q(x_s, x_t | x0) p̃(x0), normalised, for a random p̃."""
    brute, graph = bf.Brute(absorbing), _graph(absorbing)
    a_s, a_t = 0.7, 0.3
    p_tilde = np.random.default_rng(0).dirichlet(np.ones(bf.V), size=5)
    p_tilde = np.pad(p_tilde, ((0, 0), (0, brute.S - bf.V)))
    x_t = np.arange(brute.S) % brute.S
    x_t = np.resize(x_t, 5)
    got = np.asarray(
        discrete.reverse_step_probs(graph, jnp.asarray(x_t), jnp.asarray(p_tilde), a_s, a_t)
    )
    joint = (brute.token_matrix(a_s).T @ p_tilde.T).T * brute.token_matrix(a_t / a_s)[:, x_t].T
    np.testing.assert_allclose(got, joint / joint.sum(1, keepdims=True), rtol=1e-5, atol=1e-7)
