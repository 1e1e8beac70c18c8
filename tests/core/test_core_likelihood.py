"""Likelihood bounds: decoders and KL terms against float64 references written from the papers
(guided-diffusion's formulas for the DDPM chain), and exactness on Gaussian data."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized
from scipy import integrate
from scipy import stats

from diffjax.core import gaussian_reference as gr
from diffjax.core import learned
from diffjax.core import likelihood
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedule_base
from diffjax.core import schedules
from diffjax.core import weighting

MEAN = jnp.asarray([0.4, -0.3])
VAR = jnp.asarray([0.5, 2.0])


def _gaussian_data(batch, seed=0):
  return MEAN + jnp.sqrt(VAR) * jax.random.normal(jax.random.key(seed), (batch, 2))


class DecoderTest(absltest.TestCase):

  def test_discretized_gaussian_matches_scipy(self):
    rng = np.random.default_rng(0)
    k = np.array([0, 1, 17, 128, 254, 255] * 3)
    x = (k / 127.5 - 1.0).reshape(3, 6)
    mean = x + rng.uniform(-0.05, 0.05, x.shape)  # keeps every probability above underflow
    log_var = rng.uniform(-10, -3, x.shape)
    std = np.exp(0.5 * log_var)
    upper = stats.norm.cdf((x - mean + 1 / 255) / std)
    lower = stats.norm.cdf((x - mean - 1 / 255) / std)
    p = np.where(
        k.reshape(3, 6) == 0, upper, np.where(k.reshape(3, 6) == 255, 1 - lower, upper - lower)
    )
    want = -np.log(p).sum(axis=1)
    got = likelihood.discretized_gaussian_nll(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(mean, jnp.float32),
        jnp.asarray(log_var, jnp.float32),
    )
    np.testing.assert_allclose(got, want, rtol=1e-4)

  def test_vdm_decoder_matches_brute_force(self):
    rng = np.random.default_rng(1)
    k = rng.integers(0, 16, (4, 5))
    x = 2 * (k + 0.5) / 16 - 1
    alpha0, sigma0 = 0.99, 0.14
    z0 = alpha0 * x + sigma0 * rng.normal(size=x.shape)
    grid = 2 * (np.arange(16) + 0.5) / 16 - 1
    logits = -0.5 * ((z0[..., None] / alpha0 - grid) * alpha0 / sigma0) ** 2
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -np.take_along_axis(logp, k[..., None], -1)[..., 0].sum(1)
    got = likelihood.vdm_decoder_nll(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(z0, jnp.float32),
        jnp.full(4, alpha0),
        jnp.full(4, sigma0),
        num_bins=16,
        grid="vdm",
    )
    np.testing.assert_allclose(got, want, rtol=1e-4)

  def test_vdm_decoder_on_the_data_grid(self):
    # Data k/127.5 - 1 (diffjax.data's scaling) read through z₀ at λ₀ = 13.3, σ̃₀ = e^{-6.65}.
    # For an interior value, -log p = log Σ_j exp(δ_j ε - δ_j²/2), δ_j = j·(2/255)/σ̃₀: its
    # expectation over ε ~ N(0, 1) by quadrature is the reference (≈ 7e-3 nats per dim).
    x = jnp.asarray(np.random.default_rng(0).integers(1, 255, (256, 16)) / 127.5 - 1, jnp.float32)
    sched = schedules.make("linear_logsnr")
    alpha0, sigma0 = sched.alpha_sigma(jnp.zeros(256))
    z0 = alpha0[:, None] * x + sigma0[:, None] * jax.random.normal(jax.random.key(0), x.shape)
    nll = np.asarray(likelihood.vdm_decoder_nll(x, z0, alpha0, sigma0), np.float64) / 16
    st = math.exp(-13.3 / 2)
    deltas = np.arange(-3, 4) * (2 / 255) / st
    integrand = lambda e: stats.norm.pdf(e) * np.log(np.sum(np.exp(deltas * e - deltas**2 / 2)))
    want = integrate.quad(integrand, -12, 12, points=[-3, 3])[0]
    self.assertLess(
        abs(nll.mean() - want),
        4 * nll.std() / math.sqrt(nll.size) + 1e-5,
        msg=f"{nll.mean()} vs {want}",
    )
    # On VDM's own grid the same data sit up to 1/256 ≈ 3σ̃₀ off: ~80x worse (0.55 nats/dim).
    off = likelihood.vdm_decoder_nll(x, z0, alpha0, sigma0, grid="vdm") / 16
    self.assertGreater(float(jnp.mean(off)), 50 * want)
    with self.assertRaisesRegex(ValueError, "grid"):
      likelihood.data_grid(256, "uniform")

  def test_prior_kl_by_quadrature(self):
    x, a1, s1 = 0.7, 0.3, 0.95
    p_var = a1**2 + s1**2
    q = stats.norm(a1 * x, s1)
    integrand = lambda z: q.pdf(z) * (q.logpdf(z) - stats.norm(0, math.sqrt(p_var)).logpdf(z))
    want = integrate.quad(integrand, -20, 20)[0]
    np.testing.assert_allclose(likelihood.prior_kl(jnp.full((1, 1), x), a1, s1), [want], rtol=1e-5)


class GaussianReferenceTest(absltest.TestCase):

  def test_optimal_x0_is_posterior_mean_by_quadrature(self):
    m, v, a, s, z = 0.4, 0.5, 0.8, 0.6, 1.3
    post = lambda x: stats.norm.pdf(x, m, math.sqrt(v)) * stats.norm.pdf(z, a * x, s)
    want = integrate.quad(lambda x: x * post(x), -20, 20)[0] / integrate.quad(post, -20, 20)[0]
    got = gr.optimal_x0(jnp.full((1, 1), z), jnp.full(1, a), jnp.full(1, s), m, v)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-5)

  def test_diffusion_loss_is_integral_of_mmse(self):
    want = sum(
        integrate.quad(lambda l: 0.5 * v * math.exp(l) / (1 + v * math.exp(l)), -5, 9)[0]
        for v in (0.5, 2.0)
    )
    np.testing.assert_allclose(gr.diffusion_loss(-5.0, 9.0, VAR), want, rtol=1e-5)

  def test_closed_form_elbo_tightens_to_nll(self):
    gaps = [
        float(
            gr.elbo(MEAN, VAR, schedules.make("linear_logsnr", logsnr_lo=-l, logsnr_hi=l))["total"]
            - gr.nll(MEAN, VAR)
        )
        for l in (4.0, 8.0, 16.0)
    ]
    self.assertTrue(gaps[0] > gaps[1] > gaps[2] > 0, msg=str(gaps))
    self.assertLess(gaps[2], 1e-3)


class GaussianExactnessTest(parameterized.TestCase):
  """With the optimal denoiser, MC bounds match the closed forms; discrete -> continuous."""

  SCHED = schedules.make("linear_logsnr", logsnr_lo=-6.0, logsnr_hi=6.0)

  def test_continuous_vdm_elbo(self):
    x = _gaussian_data(16384)
    param = parameterization.make("eps")
    raw = gr.optimal_raw_fn(self.SCHED, param, MEAN, VAR)
    _, aux = jax.jit(
        lambda x: likelihood.vdm_elbo(
            raw, x, jax.random.key(1), schedule=self.SCHED, param=param, decoder="gaussian"
        )
    )(x)
    want = gr.elbo(MEAN, VAR, self.SCHED)
    for k in ("prior", "recon", "diffusion"):
      mc = np.asarray(aux[k], np.float64)
      se = mc.std() / math.sqrt(mc.size)
      self.assertLess(abs(mc.mean() - float(want[k])), 4 * se + 1e-5, msg=f"{k}: {mc.mean()}")

  def test_discrete_vlb_converges_to_continuous(self):
    x = _gaussian_data(8192)
    param = parameterization.make("v")
    raw = gr.optimal_raw_fn(self.SCHED, param, MEAN, VAR)
    continuous = float(gr.diffusion_loss(-6.0, 6.0, VAR))
    errors = []
    # num_steps only enters arithmetic, so one compiled function serves every T.
    elbo = jax.jit(
        lambda x, steps: likelihood.vdm_elbo(
            raw,
            x,
            jax.random.key(2),
            schedule=self.SCHED,
            param=param,
            num_steps=steps,
            decoder="gaussian",
        )
    )
    for steps in (4, 32, 256):
      _, aux = elbo(x, jnp.float32(steps))
      mc = np.asarray(aux["diffusion"], np.float64)
      closed = float(
          gr.discrete_diffusion_loss(self.SCHED.logsnr(jnp.linspace(0, 1, steps + 1)), VAR)
      )
      self.assertLess(abs(mc.mean() - closed), 4 * mc.std() / math.sqrt(mc.size), msg=str(steps))
      errors.append(closed - continuous)
    # The discrete loss exceeds the continuous one (VDM App. E) by O(1/T).
    self.assertTrue(errors[0] > errors[1] > errors[2] > 0, msg=str(errors))
    np.testing.assert_allclose(errors[1] / errors[2], 8.0, rtol=0.15)  # 8.9 measured

  def test_full_discrete_vlb_terms(self):
    steps = 16
    x = _gaussian_data(4096)
    param = parameterization.make("x0")
    raw = gr.optimal_raw_fn(self.SCHED, param, MEAN, VAR)
    _, aux = jax.jit(
        lambda x: likelihood.discrete_vlb_full(
            raw,
            x,
            jax.random.key(3),
            schedule=self.SCHED,
            param=param,
            num_steps=steps,
            var_type="small",
            decoder="gaussian",
        )
    )(x)
    lams = self.SCHED.logsnr(jnp.linspace(0, 1, steps + 1))
    kl = np.asarray(aux["kl"], np.float64)
    self.assertLess(
        abs(kl.mean() - float(gr.discrete_diffusion_loss(lams, VAR))),
        4 * kl.std() / math.sqrt(kl.size),
    )
    # Decoder N(x; x̂₀*(z₀), β̃₁): E = ½ Σ_d [log 2π β̃₁ + x-MMSE(λ₀)/β̃₁].
    lam0, lam1 = float(lams[0]), float(lams[1])
    v_q1 = (1 / (1 + math.exp(lam0))) * -math.expm1(lam1 - lam0)
    x_mmse = np.asarray(VAR) / (1 + np.asarray(VAR) * math.exp(lam0))
    want = 0.5 * np.sum(np.log(2 * math.pi * v_q1) + x_mmse / v_q1)
    dec = np.asarray(aux["decoder"], np.float64)
    self.assertLess(abs(dec.mean() - want), 4 * dec.std() / math.sqrt(dec.size))


def _guided_diffusion_reference(betas, k, x, eps, eps_hat, var_raw, var_type):
  """Float64 NumPy transcription of guided-diffusion's `_vb_terms_bpd` formulas (nats, summed)."""
  ac = np.cumprod(1 - betas)
  ac_prev = np.append(1.0, ac[:-1])
  post_var = betas * (1 - ac_prev) / (1 - ac)
  post_log_var_clipped = np.log(np.append(post_var[1], post_var[1:]))
  coef1 = betas * np.sqrt(ac_prev) / (1 - ac)
  coef2 = np.sqrt(1 - betas) * (1 - ac_prev) / (1 - ac)
  x_t = np.sqrt(ac[k]) * x + np.sqrt(1 - ac[k]) * eps
  x0_hat = np.sqrt(1 / ac[k]) * x_t - np.sqrt(1 / ac[k] - 1) * eps_hat
  model_mean = coef1[k] * x0_hat + coef2[k] * x_t
  true_mean = coef1[k] * x + coef2[k] * x_t
  if var_type == "small":
    model_log_var = np.full_like(x, post_log_var_clipped[k])
  elif var_type == "large":
    model_log_var = np.full_like(x, np.log(np.append(post_var[1], betas[1:]))[k])
  else:
    frac = (var_raw + 1) / 2
    model_log_var = frac * np.log(betas[k]) + (1 - frac) * post_log_var_clipped[k]
  if k == 0:
    std = np.exp(0.5 * model_log_var)
    upper = stats.norm.cdf((x - model_mean + 1 / 255) / std)
    lower = stats.norm.cdf((x - model_mean - 1 / 255) / std)
    p = np.where(x < -0.999, upper, np.where(x > 0.999, 1 - lower, upper - lower))
    return -np.log(p).sum()
  lv1, lv2 = post_log_var_clipped[k], model_log_var
  kl = 0.5 * (-1 + lv2 - lv1 + np.exp(lv1 - lv2) + (true_mean - model_mean) ** 2 * np.exp(-lv2))
  return kl.sum()


class DDPMChainTest(parameterized.TestCase):

  @parameterized.product(
      var_type=["small", "large", "learned_range"], kind=["ddpm", "iddpm_cosine"]
  )
  def test_vlb_terms_match_guided_diffusion_formulas(self, var_type, kind):
    num_t = 50
    sched = schedules.make(kind, num_timesteps=num_t)
    rng = np.random.default_rng(0)
    shape = (6, 2, 2, 3)
    x = (rng.integers(0, 256, shape) / 127.5 - 1).astype(np.float32)
    eps = rng.normal(size=shape).astype(np.float32)
    k = np.array([0, 1, 2, 17, 48, 49])
    eps_hat = (eps + 0.3 * rng.normal(size=shape)).astype(np.float32)
    var_raw = rng.uniform(-1, 1, shape).astype(np.float32)
    out = np.concatenate([eps_hat, var_raw], -1) if var_type == "learned_range" else eps_hat
    got = likelihood.vlb_term(
        lambda z, c: jnp.asarray(out),
        jnp.asarray(x),
        jnp.asarray(eps),
        jnp.asarray(k),
        schedule=sched,
        param=parameterization.make("eps"),
        num_steps=num_t - 1,
        var_type=var_type,
    )
    want = [
        _guided_diffusion_reference(
            sched.betas(),
            k[b],
            x[b].astype(np.float64),
            eps[b].astype(np.float64),
            eps_hat[b].astype(np.float64),
            var_raw[b].astype(np.float64),
            var_type,
        )
        for b in range(6)
    ]
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)

  def test_hybrid_loss(self):
    num_t = 20
    sched = schedules.make("iddpm_cosine", num_timesteps=num_t)
    param = parameterization.make("eps")
    x = jnp.asarray(
        np.random.default_rng(2).integers(0, 256, (8, 2, 2, 1)) / 127.5 - 1, jnp.float32
    )

    def net(scale_mean, scale_var):
      return lambda z, c: jnp.concatenate(
          [scale_mean * jnp.tanh(z), scale_var * jnp.tanh(z + 0.01 * c[:, None, None, None])], -1
      )

    def total(sm, sv):
      return likelihood.iddpm_hybrid_loss(
          net(sm, sv), x, jax.random.key(0), schedule=sched, param=param, num_steps=num_t - 1
      )

    vb_part = lambda sm, sv: jnp.mean(0.001 * num_t * total(sm, sv)[1]["vb"])

    @jax.jit
    def run():
      loss, aux = total(0.7, 0.5)
      # The same node and ε, regenerated independently of the loss code.
      rng_i, rng_eps = jax.random.split(jax.random.key(0))
      i = jax.random.randint(rng_i, (8,), 0, num_t)
      eps = jax.random.normal(rng_eps, x.shape)
      term = likelihood.vlb_term(
          net(0.7, 0.5),
          x,
          eps,
          i,
          schedule=sched,
          param=param,
          num_steps=num_t - 1,
          var_type="learned_range",
      )
      return loss, aux, i, term, jax.grad(vb_part, argnums=(0, 1))(0.7, 0.5)

    loss, aux, i, term, (g_mean, g_var) = run()
    # loss = mse + λ T vb, vb = the same term vlb_term gives (bits/dim), at the same node.
    np.testing.assert_array_equal(aux["i"], i)
    np.testing.assert_allclose(aux["vb"], term / (4 * math.log(2)), rtol=1e-5)
    np.testing.assert_allclose(loss, aux["mse"] + 0.001 * num_t * aux["vb"], rtol=1e-6)
    # Stop-gradient: the VLB part trains only the variance channels (IDDPM §3.1).
    self.assertEqual(float(g_mean), 0.0)
    self.assertNotEqual(float(g_var), 0.0)


class LearnedScheduleTest(absltest.TestCase):

  def test_monotone_endpoints_inverse_and_gradients(self):
    module = learned.LearnedLogSNR(num_features=32)
    variables = jax.jit(module.init)(jax.random.key(0), jnp.zeros((1,)))
    # Random (not initial) parameters: monotonicity must come from the architecture.
    variables = jax.jit(
        lambda v: jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(1), p.shape), v)
    )(variables)
    t = jnp.linspace(0.0, 1.0, 101)
    tt = jnp.linspace(0.1, 0.9, 9)

    @jax.jit
    def evaluate(v):
      s = module.bind(v)
      lam = s.logsnr(t)
      fd = (s.logsnr(tt + 1e-3) - s.logsnr(tt - 1e-3)) / 2e-3
      return lam, s.t_from_logsnr(lam), s.dlogsnr_dt(tt), fd

    lam, t_back, dlam, fd = evaluate(variables)
    self.assertTrue(bool(jnp.all(jnp.diff(lam) < 0)))
    np.testing.assert_allclose(
        lam[jnp.array([0, -1])],
        [variables["params"]["logsnr_max"], variables["params"]["logsnr_min"]],
        rtol=1e-5,
    )
    np.testing.assert_allclose(t_back, t, atol=1e-5)
    np.testing.assert_allclose(dlam, fd, rtol=2e-2)
    # Gradients reach the schedule through the unified loss, under jit.
    x = jnp.ones((4, 3))

    def loss(v, which):
      s = module.bind(v)
      kw = dict(schedule=s, param=parameterization.make("eps"))
      if which == "weighted":
        return jnp.mean(
            losses.weighted_loss(
                lambda z, c: 0.5 * z,
                x,
                jax.random.key(0),
                weight_fn=weighting.make_weighting("elbo"),
                t_sampler=weighting.make_t_sampler("uniform"),
                **kw,
            )[0]
        )
      return jnp.mean(
          likelihood.vdm_elbo(lambda z, c: 0.5 * z, x, jax.random.key(0), decoder="gaussian", **kw)[
              1
          ]["nats"]
      )

    for which in ("weighted", "vdm_elbo"):
      grads = jax.jit(jax.grad(loss), static_argnums=1)(variables, which)
      self.assertTrue(all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads)))
      # The end points get gradients (through the prior/decoder terms and through -dλ/dt).
      self.assertNotEqual(float(grads["params"]["logsnr_max"]), 0.0, msg=which)
      self.assertNotEqual(float(grads["params"]["logsnr_min"]), 0.0, msg=which)


class ChainStartTest(parameterized.TestCase):
  """`t_start`: the chain's nodes t_start + (1 - t_start) i/N."""

  def test_equals_the_chain_of_a_time_shifted_schedule(self):
    # Independent answer: t_start = a on schedule S is the t_start = 0 chain of S(a + (1 - a) t).
    base, a, n = schedules.make("vp"), 0.05, 12

    class Shifted(schedule_base.Schedule):
      family = "vp"

      def logsnr(self, t):
        return base.logsnr(a + (1 - a) * t)

      def t_from_logsnr(self, lam):
        return (base.t_from_logsnr(lam) - a) / (1 - a)

    rng = np.random.default_rng(1)
    x = jnp.asarray((rng.integers(0, 256, (n + 1, 4, 4, 1)) / 127.5 - 1), jnp.float32)
    eps = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    i = jnp.arange(n + 1)
    raw_fn = lambda z, c: 0.3 * z + 0.1  # ignores the noise input, which differs by t convention
    for var_type in ("small", "large"):
      kw = dict(param=parameterization.make("eps"), num_steps=n, var_type=var_type)
      got = likelihood.vlb_term(raw_fn, x, eps, i, schedule=base, t_start=a, **kw)
      want = likelihood.vlb_term(raw_fn, x, eps, i, schedule=Shifted(), **kw)
      np.testing.assert_allclose(got, want, rtol=2e-5, err_msg=var_type)
      unshifted = likelihood.vlb_term(raw_fn, x, eps, i, schedule=base, **kw)
      self.assertGreater(float(jnp.max(jnp.abs(unshifted - want) / jnp.abs(want))), 0.1)

  def test_ddpm_chain_on_the_continuous_vp(self):
    # DDPM's x_1..x_1000 (Ho et al.: ᾱ_i = ∏(1 - β_j), β linear 1e-4 → 0.02) are the continuous
    # VP's nodes with t_start = 1/1000, N = 999, to within the continuum limit of the product.
    ho = schedules.make("ddpm", num_timesteps=1000).alphas_cumprod()
    t = likelihood.node_t(jnp.arange(1000), 999, 1e-3)
    abar = np.asarray(jax.nn.sigmoid(schedules.make("vp").logsnr(t)), np.float64)
    # 1 - ᾱ: the integral of β(s) exceeds the sum of the β_j by half a step's increase of β each,
    # 11 % at x_1 (σ 0.0105 vs 0.0100), under 1 % from x_100 on.
    ratio = (1 - abar) / (1 - ho)
    np.testing.assert_array_less(np.abs(ratio - 1), 0.12)
    np.testing.assert_array_less(np.abs(ratio[100:] - 1), 0.01)
    # With t_start = 0 node 0 would sit at σ = 0.001, ten times below DDPM's first latent.
    first = float(jnp.sqrt(jax.nn.sigmoid(-schedules.make("vp").logsnr(0.0))))
    self.assertLess(first, 0.2 * math.sqrt(1 - ho[0]))


class ErrorTest(absltest.TestCase):

  def test_errors_name_the_argument(self):
    with self.assertRaisesRegex(ValueError, "num_timesteps"):
      schedules.make("ddpm", num_timesteps=10)  # β_T = 0.02 · 1000/10 > 1
    sched = schedules.make("ddpm", num_timesteps=30)
    kw = dict(schedule=sched, param=parameterization.make("eps"), num_steps=29)
    x = jnp.zeros((2, 2, 2, 3))
    with self.assertRaisesRegex(ValueError, "var_type"):
      likelihood.vlb_term(lambda z, c: z, x, x, jnp.zeros(2, int), var_type="fixed", **kw)
    with self.assertRaisesRegex(ValueError, "learned_range"):
      likelihood.vlb_term(lambda z, c: z, x, x, jnp.zeros(2, int), var_type="learned_range", **kw)
    with self.assertRaisesRegex(ValueError, "decoder"):
      likelihood.vdm_elbo(
          lambda z, c: z,
          x,
          jax.random.key(0),
          schedule=sched,
          param=parameterization.make("eps"),
          decoder="logistic",
      )
    with self.assertRaisesRegex(ValueError, "t_start"):
      likelihood.vlb_term(lambda z, c: z, x, x, jnp.zeros(2, int), t_start=1.0, **kw)


if __name__ == "__main__":
  absltest.main()
