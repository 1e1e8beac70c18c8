"""IDDPM in GaussianDiffusion: respaced learned-variance sampler, hybrid objective, bits/dim.

Independent answers: a float64 NumPy transcription of guided-diffusion's respaced chain
(`respace.py` + `p_mean_variance` / `p_sample`), the existing `ddpm` solver, closed forms for 1-D /
2-D Gaussian data (exact ε-network and exact reverse variance), `discrete_vlb_full`, and exact
variances of the stratified estimator when the terms are deterministic.
"""

import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import methods
from diffjax import models
from diffjax import solvers
from diffjax.core import gaussian_reference as gr
from diffjax.core import likelihood
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting
from diffjax.methods import gaussian
from diffjax.methods import iddpm
from diffjax.methods import respacing
from diffjax.methods import sampling

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPS_PARAM = parameterization.make("eps")


def _cosine_alphas_cumprod(num_nodes):
  """IDDPM's cosine ᾱ_1..ᾱ_T (Nichol & Dhariwal 2021, eq. 17, β clipped at 0.999), float64."""
  f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
  i = np.arange(num_nodes, dtype=np.float64)
  betas = np.minimum(1 - f((i + 1) / num_nodes) / f(i / num_nodes), 0.999)
  return np.cumprod(1 - betas)


def _kept(num_nodes, k):
  """Evenly strided nodes, written as round(k·stride) (guided-diffusion accumulates the stride)."""
  stride = (num_nodes - 1) / (k - 1)
  return np.array([int(round(j * stride)) for j in range(k)])


def _numpy_chain(raw_np, z, noises, abar_nodes, kept, num_steps, frac):
  """guided-diffusion's respaced p_sample_loop with learned_range variance at constant frac,
  float64. raw_np(z, t) -> ε̂; noises[j] is the noise of the j-th step (noisiest first)."""
  betas, last = [], 1.0
  for a in abar_nodes[kept]:
    betas.append(1 - a / last)
    last = a
  betas = np.array(betas)
  abar = np.cumprod(1 - betas)
  abar_prev = np.append(1.0, abar[:-1])
  post_var = betas * (1 - abar_prev) / (1 - abar)
  post_log_var_clipped = np.log(np.append(post_var[1], post_var[1:]))
  coef1 = betas * np.sqrt(abar_prev) / (1 - abar)
  coef2 = (1 - abar_prev) * np.sqrt(1 - betas) / (1 - abar)
  z = np.asarray(z, np.float64)
  for j, k in enumerate(range(len(kept) - 1, -1, -1)):
    eps_hat = raw_np(z, kept[k] / num_steps)
    x0 = np.sqrt(1 / abar[k]) * z - np.sqrt(1 / abar[k] - 1) * eps_hat
    mean = coef1[k] * x0 + coef2[k] * z
    log_var = frac * np.log(betas[k]) + (1 - frac) * post_log_var_clipped[k]
    z = mean + (k != 0) * np.exp(0.5 * log_var) * np.asarray(noises[j], np.float64)
  return z


def _test_net(v):
  """A smooth noise-conditioned 'network': ε̂ = tanh(0.7 z + 0.0004 c), v channels constant."""

  def raw_fn(z, c):
    mean = jnp.tanh(0.7 * z + 0.0004 * c.reshape((-1,) + (1,) * (z.ndim - 1)))
    return mean if v is None else jnp.concatenate([mean, jnp.full_like(z, v)], -1)

  return raw_fn


def _exact_raw_fn(schedule, mean, var, t_grid):
  """Bayes-optimal ε-network for x ~ N(mean, diag(var)) with the exact reverse variance of the chain
  through the nodes t_grid (increasing) as IDDPM's v ∈ [-1, 1] channels (eq. 15 solved for v)."""
  t_grid = jnp.asarray(t_grid, jnp.float32)
  eps_fn = gr.optimal_raw_fn(schedule, EPS_PARAM, mean, var)
  log_sig = jax.nn.log_sigmoid

  def raw_fn(z, c):
    t = EPS_PARAM.t_from_noise_cond(c, schedule)
    k = jnp.argmin(jnp.abs(t[:, None] - t_grid[None, :]), axis=1)
    lam_t = schedule.logsnr(t_grid[k])
    lam_s = schedule.logsnr(t_grid[jnp.maximum(k - 1, 0)])
    lam_1 = schedule.logsnr(t_grid[1]) * jnp.ones_like(lam_t)
    lam_0 = schedule.logsnr(t_grid[0]) * jnp.ones_like(lam_t)
    # Transition s -> t: β = 1 - ᾱ_t/ᾱ_s, β̃ = β (1 - ᾱ_s)/(1 - ᾱ_t), c_x = √ᾱ_s β/(1 - ᾱ_t).
    beta = -jnp.expm1(log_sig(lam_t) - log_sig(lam_s))
    beta_tilde = beta * jnp.exp(log_sig(-lam_s) - log_sig(-lam_t))
    c_x = jnp.exp(0.5 * log_sig(lam_s) - log_sig(-lam_t)) * beta
    beta_tilde_1 = -jnp.expm1(log_sig(lam_1) - log_sig(lam_0)) * jnp.exp(
        log_sig(-lam_0) - log_sig(-lam_1)
    )
    a2, s2 = jax.nn.sigmoid(lam_t), jax.nn.sigmoid(-lam_t)

    def bc(a):  # [B] -> broadcastable against z
      return a.reshape((-1,) + (1,) * (z.ndim - 1))

    post_var = var * bc(s2) / (bc(a2) * var + bc(s2))  # Var[x | z_t]
    is_dec = bc(k == 0)
    # Node 0 (decoder, x-space): Var[x | z_0] between β̃_1 and β = σ₀²; else v_q + c_x² Var[x | z].
    true = jnp.where(is_dec, post_var, bc(beta_tilde) + bc(c_x) ** 2 * post_var)
    lo = jnp.log(jnp.where(is_dec, bc(beta_tilde_1), bc(beta_tilde)))
    hi = jnp.log(jnp.where(is_dec, bc(s2), bc(beta)))
    frac = (jnp.log(true) - lo) / (hi - lo)
    return jnp.concatenate([eps_fn(z, c), 2 * frac - 1], -1)

  return raw_fn


class RespacedSamplerTest(chex.TestCase, parameterized.TestCase):

  def test_space_timesteps(self):
    # guided-diffusion space_timesteps(1000, "10") strides by 111; IDDPM's T=4000, K=100 case.
    np.testing.assert_array_equal(respacing.space_timesteps(1000, 10), np.arange(10) * 111)
    for t, k in ((4000, 100), (1000, 50), (64, 8), (33, 33)):
      np.testing.assert_array_equal(respacing.space_timesteps(t, k), _kept(t, k))
    with self.assertRaisesRegex(ValueError, "num_steps=65"):
      respacing.space_timesteps(64, 65)

  @parameterized.parameters(
      (0.0, "learned_range"), (1.0, "learned_range"), (0.0, "small"), (1.0, "large")
  )
  def test_matches_numpy_respaced_chain(self, frac, var_type):
    num_nodes, k = 64, 10
    abar_nodes = _cosine_alphas_cumprod(num_nodes)
    np.testing.assert_allclose(
        schedules.make("iddpm_cosine", num_timesteps=num_nodes).alphas_cumprod(),
        abar_nodes,
        rtol=1e-12,
    )
    kept = respacing.space_timesteps(num_nodes, k)
    shape = (6, 2, 2, 2)
    z0 = jax.random.normal(jax.random.key(0), shape)
    key = jax.random.key(1)
    v = 2 * frac - 1 if var_type == "learned_range" else None
    got = respacing.iddpm_ancestral(
        _test_net(v),
        z0,
        key,
        t=jnp.asarray(kept / (num_nodes - 1), jnp.float32),
        chain=respacing.respaced_chain(abar_nodes[kept]),
        param=EPS_PARAM,
        var_type=var_type,
    )
    noises = [jax.random.normal(jax.random.fold_in(key, j), shape) for j in range(k)]
    want = _numpy_chain(
        lambda z, t: np.tanh(0.7 * z + 0.0004 * 1000 * t),
        z0,
        noises,
        abar_nodes,
        kept,
        num_nodes - 1,
        frac,
    )
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)

  def test_full_chain_small_variance_is_the_ddpm_solver(self):
    num_nodes = 33
    sched = schedules.make("iddpm_cosine", num_timesteps=num_nodes)
    abar = sched.alphas_cumprod()
    kept = respacing.space_timesteps(num_nodes, num_nodes)  # K = T: every node
    np.testing.assert_array_equal(kept, np.arange(num_nodes))
    shape = (8, 3)
    z0 = jax.random.normal(jax.random.key(2), shape)
    key = jax.random.key(3)
    got = respacing.iddpm_ancestral(
        _test_net(-1.0),
        z0,
        key,
        t=jnp.arange(num_nodes, dtype=jnp.float32) / (num_nodes - 1),
        chain=respacing.respaced_chain(abar),
        param=EPS_PARAM,
        var_type="learned_range",
    )
    sigmas = np.append(np.sqrt((1 - abar) / abar)[::-1], 0.0)
    den = solvers.adapters.from_raw(_test_net(None), sched, EPS_PARAM)
    want = solvers.solve("ddpm", den, z0 / math.sqrt(abar[-1]), sigmas, key=key)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-4)

  def test_exact_model_samples_the_gaussian(self):
    """1-D N(μ, s²) data, exact ε̂ and exact reverse variance, 8 of 64 nodes: the output is
    E[x | z_0] with z_0 ~ q, i.e. N(μ, s² - Var[x | z_0]); fixed β̃ / β miss it."""
    mu, s2, num_nodes, k, n = 0.3, 0.25, 64, 8, 20000
    sched = schedules.make("iddpm_cosine", num_timesteps=num_nodes)
    abar_nodes = sched.alphas_cumprod()
    kept = respacing.space_timesteps(num_nodes, k)
    t_kept = kept / (num_nodes - 1)
    raw_fn = _exact_raw_fn(sched, jnp.asarray([mu]), jnp.asarray([s2]), t_kept)
    z0 = jax.random.normal(jax.random.key(4), (n, 1))

    def run(var_type):
      x = respacing.iddpm_ancestral(
          raw_fn,
          z0,
          jax.random.key(5),
          t=jnp.asarray(t_kept, jnp.float32),
          chain=respacing.respaced_chain(abar_nodes[kept]),
          param=EPS_PARAM,
          var_type=var_type,
      )
      return np.asarray(x, np.float64)[:, 0]

    a0 = abar_nodes[0]
    want_var = s2 - s2 * (1 - a0) / (a0 * s2 + 1 - a0)
    tol_mean, tol_var = 4 * math.sqrt(want_var / n), 4 * want_var * math.sqrt(2 / n)
    x = run("learned_range")
    self.assertLess(abs(x.mean() - mu), tol_mean)
    self.assertLess(abs(x.var() - want_var), tol_var, msg=f"{x.var()} vs {want_var}")
    # The test has power: either fixed variance is off by many standard errors.
    for var_type in ("small", "large"):
      self.assertGreater(abs(run(var_type).var() - want_var), 5 * tol_var, msg=var_type)


class StratifiedVLBTest(chex.TestCase):

  X = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 2, 2, 1)) / 127.5 - 1, jnp.float32)

  def _deterministic(self):
    """An x₀-model whose output ignores z: every VLB term is a deterministic function of i."""
    param = parameterization.make("x0")

    def raw_fn(z, c):
      return jnp.tanh(0.3 + 0.002 * c).reshape(-1, 1, 1, 1) * jnp.ones_like(z)

    kw = dict(schedule=schedules.make("iddpm_cosine", num_timesteps=17), param=param, num_steps=16)
    return raw_fn, kw

  def test_singleton_strata_equal_the_full_sum(self):
    raw_fn, kw = self._deterministic()
    _, full = likelihood.discrete_vlb_full(raw_fn, self.X, jax.random.key(0), **kw)
    _, est = likelihood.discrete_vlb_stratified(
        raw_fn, self.X, jax.random.key(1), num_strata=16, **kw
    )
    for k in ("prior", "decoder", "kl", "nats"):
      np.testing.assert_allclose(est[k], full[k], rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(est["nats_mc_var"], 0.0, atol=1e-6)

  def test_unbiased_with_the_exact_variance(self):
    """4 strata of 4 nodes: E = the full sum, Var = Σ_m n_m² Var_{i∈S_m}(L_i)/2, both exact."""
    raw_fn, kw = self._deterministic()
    reps = 4000
    terms = jax.vmap(
        lambda i: likelihood.vlb_term(
            raw_fn, self.X, jnp.zeros_like(self.X), jnp.full((2,), i), var_type="small", **kw
        )
    )(
        jnp.arange(17)
    )  # [17, B]
    terms = np.asarray(terms, np.float64)
    exact_var = sum(16 * terms[1 + 4 * m : 5 + 4 * m].var(axis=0) / 2 for m in range(4))
    est = jax.jit(
        jax.vmap(
            lambda key: likelihood.discrete_vlb_stratified(raw_fn, self.X, key, num_strata=4, **kw)[
                1
            ]
        )
    )(jax.random.split(jax.random.key(2), reps))
    kl = np.asarray(est["kl"], np.float64)  # [reps, B]
    se = np.sqrt(exact_var / reps)
    np.testing.assert_array_less(np.abs(kl.mean(0) - terms[1:].sum(0)), 4 * se)
    np.testing.assert_allclose(kl.var(0), exact_var, rtol=0.1)
    np.testing.assert_allclose(np.asarray(est["nats_mc_var"]).mean(0), exact_var, rtol=0.1)

  def test_unbiased_on_a_network(self):
    """A random learn_sigma MLP with real ε noise: stratified (M=4) and full sums agree in mean,
    and the estimated variance matches the spread of the estimates."""
    model = models.make(dict(kind="mlp", width=32, depth=1, learn_sigma=True))
    x = jnp.tile(self.X[:1], (2048, 1, 1, 1))
    params = model.init(jax.random.key(0), x[:1], jnp.ones((1,)), None, train=False)

    def raw_fn(z, c):
      return model.apply(params, z, c, None, train=False)

    kw = dict(
        schedule=schedules.make("iddpm_cosine", num_timesteps=17),
        param=EPS_PARAM,
        num_steps=16,
        var_type="learned_range",
    )
    _, full = jax.jit(lambda x: likelihood.discrete_vlb_full(raw_fn, x, jax.random.key(1), **kw))(x)
    _, est = jax.jit(
        lambda x: likelihood.discrete_vlb_stratified(
            raw_fn, x, jax.random.key(2), num_strata=4, **kw
        )
    )(x)
    a, b = np.asarray(full["nats"], np.float64), np.asarray(est["nats"], np.float64)
    se = math.sqrt(a.var() / a.size + b.var() / b.size)
    self.assertLess(abs(a.mean() - b.mean()), 4 * se, msg=f"{a.mean()} {b.mean()} {se}")
    ratio = float(np.mean(est["nats_mc_var"])) / b.var()
    self.assertBetween(ratio, 0.8, 1.25)

  def test_vlb_gradients_are_finite_at_every_node(self):
    """Regression: the decoder's unused value on KL rows (and its unselected tail branch) used to
    put NaN into the hybrid loss's gradient at high-noise nodes (NaN after one training step)."""
    sched = schedules.make("iddpm_cosine", num_timesteps=1000)
    x = (
        jnp.asarray(
            np.random.default_rng(0).integers(0, 256, (4, 4, 4, 1)) / 127.5 - 1, jnp.float32
        )
        .at[:, 0]
        .set(-1.0)
    )
    eps = jax.random.normal(jax.random.key(0), x.shape)

    def term(p, i):
      def net(z, c):
        del c
        return jnp.concatenate([p[0] * jnp.tanh(z) + 0.5, p[1] * jnp.ones_like(z)], -1)

      return jnp.sum(
          likelihood.vlb_term(
              net,
              x,
              eps,
              jnp.full((4,), i),
              schedule=sched,
              param=EPS_PARAM,
              num_steps=999,
              var_type="learned_range",
          )
      )

    grads = jax.jit(jax.vmap(jax.grad(term), in_axes=(None, 0)))(
        jnp.array([1.0, 0.3]), jnp.array([0, 1, 2, 500, 998, 999])
    )
    chex.assert_tree_all_finite(grads)

  def test_exact_model_bound_is_the_nll(self):
    """Gaussian data, exact mean and exact reverse variance: the chain's VLB is -log q(x) at any N,
    per example (closed form ½ Σ log 2πv + (x - μ)²/v); the fixed-β̃ bound is looser."""
    mean, var = jnp.asarray([0.4, -0.3]), jnp.asarray([0.5, 2.0])
    x = mean + jnp.sqrt(var) * jax.random.normal(jax.random.key(3), (8192, 2))
    nll = np.asarray(
        0.5 * jnp.sum(jnp.log(2 * math.pi * var) + (x - mean) ** 2 / var, -1), np.float64
    )
    sched = schedules.make("linear_logsnr", logsnr_lo=-10.0, logsnr_hi=10.0)
    for num_steps, num_strata in ((8, 0), (64, 8)):
      exact = _exact_raw_fn(sched, mean, var, np.arange(num_steps + 1) / num_steps)
      kw = dict(schedule=sched, param=EPS_PARAM, num_steps=num_steps, decoder="gaussian")

      def bound(var_type, strata=num_strata, kw=kw, exact=exact):
        raw_fn = exact if var_type == "learned_range" else lambda z, c: exact(z, c)[..., :2]
        if strata:
          return likelihood.discrete_vlb_stratified(
              raw_fn, x, jax.random.key(4), num_strata=strata, var_type=var_type, **kw
          )
        return likelihood.discrete_vlb_full(raw_fn, x, jax.random.key(4), var_type=var_type, **kw)

      aux = bound("learned_range")[1]
      gap = np.asarray(aux["nats"], np.float64) - nll  # only the estimator's ε / node noise
      se = gap.std() / math.sqrt(gap.size)
      self.assertLess(abs(gap.mean()), 4 * se, msg=f"N={num_steps}: {gap.mean()} ± {se}")
      if num_strata:  # the variance estimate matches the spread (measured 8.89 vs 8.57)
        self.assertBetween(float(np.mean(aux["nats_mc_var"])) / gap.var(), 0.85, 1.2)
      small = np.asarray(bound("small")[1]["nats"], np.float64) - nll
      self.assertGreater(small.mean(), 10 * se, msg=f"N={num_steps}")


def _toy_config(**method):
  config = config_lib.load(os.path.join(REPO, "configs", "ddpm", "toy2d.py"), "smoke")
  config.schedule = dict(kind="iddpm_cosine", num_timesteps=20)
  config.model.learn_sigma = True
  config.method.update(method)
  return config


class _Toy:
  element_shape, num_classes = (2,), 0


X_TOY = jnp.asarray(np.random.default_rng(1).integers(0, 256, (8, 2)) / 127.5 - 1, jnp.float32)


class MethodTest(chex.TestCase, parameterized.TestCase):

  def _method(self, **method):
    m = methods.make(_toy_config(**method), _Toy())
    return m, m.init(jax.random.key(0), {"x": X_TOY})

  def _out_grads(self, m, params, batch, rng):
    g = jax.grad(lambda p: m.loss(p, batch, rng)[0])(params)["out_dense"]
    return np.asarray(g["kernel"]), np.asarray(g["bias"])

  def test_hybrid_vlb_trains_only_the_variance(self):
    rng = jax.random.key(1)
    m, params = self._method(objective="iddpm_hybrid", objective_kwargs=dict(lambda_vlb=0.001))
    m0, _ = self._method(objective="iddpm_hybrid", objective_kwargs=dict(lambda_vlb=0.0))
    self.assertEqual(m.chain.num_steps(), 19)
    (k, b), (k0, b0) = (self._out_grads(mm, params, {"x": X_TOY}, rng) for mm in (m, m0))
    # Output units 0..1 are the mean, 2..3 the variance (learn_sigma doubles the last axis).
    np.testing.assert_allclose(k[:, :2] - k0[:, :2], 0.0, atol=1e-9)
    np.testing.assert_allclose(b[:2] - b0[:2], 0.0, atol=1e-9)
    self.assertGreater(np.abs(k[:, 2:] - k0[:, 2:]).max(), 1e-6)
    np.testing.assert_array_equal(k0[:, 2:], 0.0)  # L_simple alone does not reach Σ
    self.assertGreater(np.abs(k0[:, :2]).max(), 1e-4)
    loss, metrics = m.loss(params, {"x": X_TOY}, rng)
    self.assertEqual(set(metrics), {"mse", "vb"})
    self.assertTrue(np.isfinite(float(loss)))

  def test_weighted_objective_and_denoiser_ignore_the_variance_channels(self):
    m, params = self._method()
    k, _ = self._out_grads(m, params, {"x": X_TOY}, jax.random.key(2))
    np.testing.assert_array_equal(k[:, 2:], 0.0)
    self.assertGreater(np.abs(k[:, :2]).max(), 1e-4)
    moved = jax.tree.map(lambda a: a, params)
    moved["out_dense"] = {
        "kernel": params["out_dense"]["kernel"].at[:, 2:].add(3.0),
        "bias": params["out_dense"]["bias"].at[2:].add(3.0),
    }
    x, sigma = X_TOY, jnp.full((8,), 0.7)
    raw = [m.raw_fn(p)(x, jnp.full((8,), 300.0)) for p in (moved, params)]
    self.assertGreater(float(jnp.abs(raw[0] - raw[1]).max()), 1.0)
    np.testing.assert_array_equal(m.denoiser(moved)(x, sigma), m.denoiser(params)(x, sigma))
    heun = [
        m.sample(p, jax.random.key(3), 8, solver="heun", num_steps=4, grid="karras")
        for p in (moved, params)
    ]
    np.testing.assert_array_equal(heun[0], heun[1])
    ancestral = [
        m.sample(p, jax.random.key(3), 8, solver="iddpm_ancestral") for p in (moved, params)
    ]
    self.assertGreater(float(jnp.abs(ancestral[0] - ancestral[1]).max()), 1e-3)

  def test_coupled_eps_is_used(self):
    sched = schedules.make("iddpm_cosine", num_timesteps=20)
    kw = dict(
        schedule=sched,
        param=EPS_PARAM,
        weight_fn=weighting.make_weighting("eps_mse", schedule=sched),
        t_sampler=weighting.make_t_sampler("uniform"),
    )
    net = _test_net(None)
    eps = jax.random.normal(jax.random.key(5), X_TOY.shape)
    loss, aux = losses.weighted_loss(net, X_TOY, jax.random.key(4), eps=eps, **kw)
    alpha, sigma = sched.alpha_sigma(aux["t"])
    z = alpha[:, None] * X_TOY + sigma[:, None] * eps
    _, eps_hat = EPS_PARAM.x0_eps(
        net(*EPS_PARAM.net_inputs(z, aux["t"], alpha, sigma)), z, alpha, sigma
    )
    np.testing.assert_allclose(
        loss, 0.5 * aux["weight"] * jnp.sum((eps - eps_hat) ** 2, -1), rtol=1e-5
    )
    with self.assertRaisesRegex(ValueError, "eps shape"):
      losses.weighted_loss(net, X_TOY, jax.random.key(4), eps=eps[:, :1], **kw)
    # Through the Method: the batch's "eps" is what the loss sees.
    m, params = self._method()
    rng = jax.random.key(6)
    rng_loss, rng_drop = jax.random.split(rng)
    want, _ = losses.weighted_loss(
        m.mean_raw_fn(params, train=True, rng=rng_drop),
        X_TOY,
        rng_loss,
        schedule=m.schedule(),
        param=m.param,
        weight_fn=m.weight_fn,
        t_sampler=m.t_sampler,
        eps=eps,
    )
    got, _ = m.loss(params, {"x": X_TOY, "eps": eps}, rng)
    np.testing.assert_allclose(got, jnp.mean(want), rtol=1e-6)
    fresh, _ = m.loss(params, {"x": X_TOY}, rng)
    self.assertGreater(abs(float(fresh) - float(got)), 1e-6)

  def test_sample_and_bpd(self):
    m, params = self._method(objective="iddpm_hybrid")
    x = m.sample(
        params,
        jax.random.key(7),
        8,
        solver="iddpm_ancestral",
        num_steps=5,
        solver_kwargs=dict(clip_x0=True),
    )
    chex.assert_shape(x, (8, 2))
    chex.assert_tree_all_finite(x)
    # The Method's sampler is iddpm_ancestral on its own network, chain and keys.
    rng_init, rng_solve = jax.random.split(jax.random.key(7))
    kept = respacing.space_timesteps(20, 5)
    want = respacing.iddpm_ancestral(
        m.raw_fn(params),
        jax.random.normal(rng_init, (8, 2)),
        rng_solve,
        t=jnp.asarray(kept / 19, jnp.float32),
        chain=respacing.respaced_chain(m.schedule().alphas_cumprod()[kept]),
        param=m.param,
        clip_x0=True,
    )
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    out = jax.jit(m.bpd)(params, jax.random.key(8), X_TOY)
    self.assertEqual(set(out), {"bpd", "prior", "decoder", "kl", "bpd_mc_var"})
    chex.assert_tree_shape_prefix(out, (8,))
    np.testing.assert_allclose(out["bpd"], out["prior"] + out["decoder"] + out["kl"], rtol=1e-5)
    # num_strata=0: every term, no variance estimate.
    m.config.eval.bpd_kwargs = dict(num_strata=0, var_type="small")
    out = m.bpd(params, jax.random.key(8), X_TOY)
    self.assertEqual(set(out), {"bpd", "prior", "decoder", "kl"})

  def test_errors_name_the_argument(self):
    with self.assertRaisesRegex(ValueError, "'nope'"):
      self._method(objective="nope")
    with self.assertRaisesRegex(ValueError, "learn_sigma"):
      config = _toy_config(objective="iddpm_hybrid")
      config.model.learn_sigma = False
      methods.make(config, _Toy())
    with self.assertRaisesRegex(ValueError, "num_timesteps=20"):
      self._method(objective="iddpm_hybrid", objective_kwargs=dict(num_steps=1000))
    with self.assertRaisesRegex(ValueError, "lambda"):
      self._method(objective="iddpm_hybrid", objective_kwargs=dict(lambda_=0.1))
    m, params = self._method()
    with self.assertRaisesRegex(ValueError, "'eta'"):
      m.sample(params, jax.random.key(0), 8, solver="iddpm_ancestral", solver_kwargs=dict(eta=1))
    with self.assertRaisesRegex(ValueError, "num_steps=21"):
      m.sample(params, jax.random.key(0), 8, solver="iddpm_ancestral", num_steps=21)
    with self.assertRaisesRegex(ValueError, "'eps'"):
      self._method(objective="iddpm_hybrid")[0].loss(
          params, {"x": X_TOY, "eps": X_TOY}, jax.random.key(0)
      )
    m.config.eval.bpd_kwargs = dict(t_start=0.001)
    with self.assertRaisesRegex(ValueError, "t_start"):
      m.bpd(params, jax.random.key(0), X_TOY)
    for path in ("edm/toy2d.py", "flow_matching/toy2d.py"):
      config = config_lib.load(os.path.join(REPO, "configs", path), "smoke")
      m = methods.make(config, _Toy())
      p = m.init(jax.random.key(0), {"x": X_TOY})
      with self.assertRaisesRegex(ValueError, repr(config.schedule.kind)):
        m.bpd(p, jax.random.key(0), X_TOY)
      with self.assertRaisesRegex(ValueError, repr(config.schedule.kind)):
        m.sample(p, jax.random.key(0), 8, solver="iddpm_ancestral")


class ConfigTest(chex.TestCase):

  def test_ddpm_twin_uses_the_paper_chain(self):
    fm = config_lib.load(os.path.join(REPO, "configs", "ddpm", "fashion_mnist.py"))
    c10 = config_lib.load(os.path.join(REPO, "configs", "ddpm", "cifar10.py"))
    for config in (fm, c10):
      self.assertEqual(
          config.schedule.to_dict(),
          dict(kind="ddpm", num_timesteps=1000, beta_start=1e-4, beta_end=0.02),
      )
      self.assertEqual(config.method.param_kwargs.noise_cond_scale, 999.0)
      self.assertEqual((config.sample.solver, config.sample.num_steps), ("ddpm", 1000))
      self.assertEqual(config.eval.bpd_kwargs.var_type, "large")  # run_cifar.py: fixedlarge
    # The sampler visits exactly the chain's 1000 nodes.
    m = methods.make(fm, _Toy())
    sig = sampling.sigmas(m, None, 1000, fm.sample.grid, fm.sample.grid_kwargs)[:-1]
    want = np.sqrt(1 / m.schedule().alphas_cumprod() - 1)[::-1]
    np.testing.assert_allclose(sig, want, rtol=1e-4)

  def test_ddim_twin_steps_on_trained_nodes(self):
    """DDIM's sub-sequence σ̃_τ are nodes τ of the twin's chain: the network sees 999·t = τ − 1."""
    config = config_lib.load(os.path.join(REPO, "configs", "ddim", "fashion_mnist.py"))
    m = methods.make(config, _Toy())
    sig = np.asarray(
        sampling.sigmas(
            m, None, config.sample.num_steps, config.sample.grid, config.sample.grid_kwargs
        )
    )
    self.assertEqual(sig[-1], 0.0)
    taus = np.asarray(solvers.grids.ddim_timesteps(100, "quadratic"))
    t = np.asarray(m.schedule().t_from_logsnr(jnp.asarray(-2 * np.log(sig[:-1]))))
    np.testing.assert_allclose(999 * t, taus - 1, atol=2e-2)
    self.assertEqual(config.eval.bpd_num_examples, 0)
    samplers = {k: v.to_dict() for k, v in config.eval.fd_samplers.items()}
    self.assertEqual(
        samplers["default_clip"], dict(solver_kwargs=dict(eta=0.0, clip_denoised=True))
    )
    self.assertEqual(
        samplers["heun35_clip"], dict(config_lib.HEUN35, solver_kwargs=dict(clip_denoised=True))
    )

  def test_paper_settings(self):
    fm = config_lib.load(os.path.join(REPO, "configs", "iddpm", "fashion_mnist.py"))
    c10 = config_lib.load(os.path.join(REPO, "configs", "iddpm", "cifar10.py"))
    for config, steps in ((fm, 1000), (c10, 4000)):
      self.assertEqual(config.schedule.kind, "iddpm_cosine")
      self.assertEqual(config.schedule.num_timesteps, steps)
      self.assertEqual(config.method.objective, "iddpm_hybrid")
      self.assertEqual(config.method.objective_kwargs.lambda_vlb, 0.001)
      self.assertTrue(config.model.learn_sigma)
      self.assertEqual(config.sample.solver, "iddpm_ancestral")
    self.assertEqual(
        (fm.train.num_steps, fm.data.batch_size, fm.sample.num_steps), (6000, 256, 100)
    )
    self.assertEqual(
        (
            c10.model.ch,
            c10.model.ch_mult,
            c10.model.num_res_blocks,
            c10.model.attn_resolutions,
            c10.model.dropout,
        ),
        (128, (1, 2, 2, 2), 3, (16, 8), 0.3),
    )
    self.assertEqual((c10.optim.lr, c10.data.batch_size, c10.train.num_steps), (1e-4, 128, 500_000))
    self.assertEqual(fm.eval.bpd_num_examples, 10_000)
    self.assertEqual(fm.eval.bpd_kwargs.var_type, "learned_range")
