"""The unified loss equals each paper's written loss, and all weightings share one minimiser."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest
from absl.testing import parameterized

from diffjax.core import gaussian_reference
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting

SHAPE = (8, 4, 4, 3)


def _random_net(seed):
  """A fixed random function of (z_in, noise_cond): stands in for a network."""
  k1, k2 = jax.random.split(jax.random.key(seed))
  w = jax.random.normal(k1, SHAPE[1:]) * 0.5
  b = jax.random.normal(k2, SHAPE[1:]) * 0.3
  return lambda z_in, nc: w * z_in + b * jnp.tanh(0.01 * nc)[:, None, None, None]


def _run(schedule, param, weight_fn, t_sampler, seed=0):
  x = jax.random.normal(jax.random.key(100 + seed), SHAPE)
  rng = jax.random.key(seed)
  net = _random_net(seed)
  loss, aux = losses.weighted_loss(
      net, x, rng, schedule=schedule, param=param, weight_fn=weight_fn, t_sampler=t_sampler
  )
  # The same t and ε, regenerated independently of the loss code.
  rng_t, rng_eps = jax.random.split(rng)
  t, _ = t_sampler(rng_t, SHAPE[0], schedule)
  eps = jax.random.normal(rng_eps, SHAPE)
  np.testing.assert_array_equal(t, aux["t"])
  alpha, sigma = schedule.alpha_sigma(t)
  return loss, aux, x, eps, t, alpha, sigma, net


def _b(u):
  return u[:, None, None, None]


def _sum(u):
  return jnp.sum(u, axis=(1, 2, 3))


class NamedLossTest(absltest.TestCase):
  """Each test: our per-example loss = (stated factor) × the paper's own formula."""

  def test_edm_loss(self):
    # EDM eq. 8 / Table 1: λ(σ)‖D(x + σε; σ) - x‖², λ(σ) = (σ² + σ_d²)/(σ σ_d)²,
    # ln σ ~ N(-1.2, 1.2²).
    # Weighting view: w/p = (e^{-λ} + σ_d²)/σ_d², so ours = ½ × EDM's.
    sched = schedules.make("edm")
    param = parameterization.make("edm", sigma_data=0.5)
    loss, _, x, eps, t, _, sigma, net = _run(
        sched,
        param,
        weighting.make_weighting("edm", sigma_data=0.5),
        weighting.make_t_sampler("edm_lognormal"),
    )
    sd = 0.5
    c_skip = sd**2 / (sigma**2 + sd**2)
    c_out = sigma * sd / jnp.sqrt(sigma**2 + sd**2)
    c_in = 1 / jnp.sqrt(sigma**2 + sd**2)
    y = x + _b(sigma) * eps
    d = _b(c_skip) * y + _b(c_out) * net(_b(c_in) * y, jnp.log(sigma) / 4)
    lam_edm = (sigma**2 + sd**2) / (sigma * sd) ** 2
    np.testing.assert_allclose(loss, 0.5 * lam_edm * _sum((d - x) ** 2), rtol=2e-4)

  def test_flow_matching_loss(self):
    # Rectified flow / CFM: E_t ‖v(z_t, t) - (ε - x)‖², t ~ U[0, 1]; ours = ½ × that.
    sched = schedules.make("flow")
    param = parameterization.make("flow")
    loss, _, x, eps, t, _, _, net = _run(
        sched,
        param,
        weighting.make_weighting("flow", schedule=sched),
        weighting.make_t_sampler("uniform"),
    )
    z = _b(1 - t) * x + _b(t) * eps
    np.testing.assert_allclose(loss, 0.5 * _sum((net(z, 1000 * t) - (eps - x)) ** 2), rtol=2e-4)

  def test_v_mse_loss(self):
    # Salimans & Ho 2022: ‖v̂ - (α ε - σ x)‖² with t ~ U on cosine; ours = ½ × that.
    sched = schedules.make("cosine")
    loss, _, x, eps, t, alpha, sigma, net = _run(
        sched,
        parameterization.make("v"),
        weighting.make_weighting("v_mse", schedule=sched),
        weighting.make_t_sampler("uniform"),
    )
    z = _b(alpha) * x + _b(sigma) * eps
    v = _b(alpha) * eps - _b(sigma) * x
    np.testing.assert_allclose(loss, 0.5 * _sum((net(z, 1000 * t) - v) ** 2), rtol=2e-4)

  def test_ddpm_l_simple(self):
    # Ho et al. eq. 14: ‖ε - ε_θ(sqrt(ᾱ) x + sqrt(1 - ᾱ) ε, t)‖²; ours = ½ × that.
    sched = schedules.make("ddpm")
    loss, _, x, eps, t, alpha, sigma, net = _run(
        sched,
        parameterization.make("eps"),
        weighting.make_weighting("eps_mse", schedule=sched),
        weighting.make_t_sampler("uniform"),
    )
    abar = alpha**2
    z = _b(jnp.sqrt(abar)) * x + _b(jnp.sqrt(1 - abar)) * eps
    np.testing.assert_allclose(loss, 0.5 * _sum((eps - net(z, 1000 * t)) ** 2), rtol=2e-4)

  def test_vdm_continuous_elbo(self):
    # VDM eq. 17: ½ (-dλ/dt) ‖ε - ε̂‖² with t ~ U (factor 1).
    sched = schedules.make("cosine")
    loss, _, x, eps, t, alpha, sigma, net = _run(
        sched,
        parameterization.make("eps"),
        weighting.make_weighting("elbo"),
        weighting.make_t_sampler("uniform", low_discrepancy=True),
    )
    z = _b(alpha) * x + _b(sigma) * eps
    np.testing.assert_allclose(
        loss, 0.5 * -sched.dlogsnr_dt(t) * _sum((eps - net(z, 1000 * t)) ** 2), rtol=2e-4
    )

  def test_p2_and_min_snr(self):
    sched = schedules.make("cosine")
    for kind, kw, factor in (
        ("p2", {"gamma": 1.0, "k": 1.0}, lambda snr: 1 / (1 + snr)),  # Choi et al. eq. 8
        ("min_snr", {"snr_gamma": 5.0}, lambda snr: jnp.minimum(snr, 5.0) / snr),
    ):  # Hang et al.
      loss, aux, x, eps, t, alpha, sigma, net = _run(
          sched,
          parameterization.make("eps"),
          weighting.make_weighting(kind, schedule=sched, **kw),
          weighting.make_t_sampler("uniform"),
      )
      z = _b(alpha) * x + _b(sigma) * eps
      snr = (alpha / sigma) ** 2
      np.testing.assert_allclose(
          loss, 0.5 * factor(snr) * _sum((eps - net(z, 1000 * t)) ** 2), rtol=2e-4, err_msg=kind
      )

  def test_x0_mse_with_x0_param(self):
    sched = schedules.make("vp")
    loss, _, x, eps, t, alpha, sigma, net = _run(
        sched,
        parameterization.make("x0"),
        weighting.make_weighting("x0_mse", schedule=sched),
        weighting.make_t_sampler("uniform"),
    )
    z = _b(alpha) * x + _b(sigma) * eps
    np.testing.assert_allclose(loss, 0.5 * _sum((net(z, 1000 * t) - x) ** 2), rtol=2e-4)

  def test_any_param_with_any_weighting(self):
    # ε-MSE computed from a v-network: ½‖ε - ε̂(v̂)‖², with ε̂ formed explicitly.
    sched = schedules.make("cosine")
    param = parameterization.make("v")
    loss, _, x, eps, t, alpha, sigma, net = _run(
        sched,
        param,
        weighting.make_weighting("eps_mse", schedule=sched),
        weighting.make_t_sampler("uniform"),
    )
    z = _b(alpha) * x + _b(sigma) * eps
    eps_hat = _b(sigma) * z + _b(alpha) * net(z, 1000 * t)
    np.testing.assert_allclose(loss, 0.5 * _sum((eps - eps_hat) ** 2), rtol=2e-4)


WEIGHT_CASES = {
    "elbo": ({}, "uniform"),
    "eps_mse": ({}, "uniform"),
    "v_mse": ({}, "uniform"),
    "flow": ({}, "logit_normal"),
    "edm": ({}, "edm_lognormal"),
    "edm_monotonic": ({}, "edm_lognormal"),
    "sigmoid": ({"bias": 2.0}, "uniform"),
    "p2": ({"gamma": 1.0}, "uniform"),
    "min_snr": ({}, "uniform"),
}
MEAN = jnp.asarray([0.5, -1.0, 0.0])
VAR = jnp.asarray([0.3, 1.0, 2.0])


def _minimiser_and_se(wkind, param_kind, x0_bias=0.0, batch=4096):
  """Minimiser δ* of the MC loss over raw shifts raw* + δ, and its standard error.

  Per example the loss is exactly quadratic in δ, A_i + B_i δ + C_i δ²; δ* = -mean(B)/(2 mean(C)).
  """
  sched = schedules.make("cosine", truncate_logsnr_min=-8.0, truncate_logsnr_max=8.0)
  param = parameterization.make(param_kind)
  wkw, skind = WEIGHT_CASES[wkind]
  x = MEAN + jnp.sqrt(VAR) * jax.random.normal(jax.random.key(1), (batch, 3))
  opt = gaussian_reference.optimal_raw_fn(sched, param, MEAN + x0_bias, VAR)
  w = weighting.make_weighting(wkind, schedule=sched, **wkw)
  ts = weighting.make_t_sampler(skind, low_discrepancy=True)

  def per_example(delta):
    return losses.weighted_loss(
        lambda z, c: opt(z, c) + delta,
        x,
        jax.random.key(2),
        schedule=sched,
        param=param,
        weight_fn=w,
        t_sampler=ts,
    )[0]

  # Exact for a quadratic: B_i = (L_i(h) - L_i(-h))/(2h), C_i = (L_i(h) + L_i(-h) - 2L_i(0))/(2h²).
  h = 0.1
  lp, l0, lm = (np.asarray(per_example(jnp.asarray(d)), np.float64) for d in (h, 0.0, -h))
  b = (lp - lm) / (2 * h)
  curv = np.mean(lp + lm - 2 * l0) / (2 * h**2)
  return -b.mean() / (2 * curv), b.std() / np.sqrt(batch) / (2 * curv)


class GaussianOptimumTest(parameterized.TestCase):
  """On x ~ N(μ, diag v) the Bayes denoiser E[x | z] minimises every weighted loss."""

  @parameterized.parameters(
      *[(k, "eps") for k in WEIGHT_CASES],
      *[(k, p) for k in ("elbo", "edm", "flow") for p in ("v", "edm", "flow")],
  )
  def test_gradient_vanishes_at_optimal_denoiser(self, wkind, param_kind):
    delta, se = _minimiser_and_se(wkind, param_kind)
    self.assertLess(abs(delta), 4 * se + 1e-6, msg=f"{wkind}/{param_kind}: {delta} ± {se}")

  @parameterized.parameters("elbo", "edm", "flow")
  def test_a_wrong_denoiser_is_detected(self, wkind):
    # Control: with x̂₀ off by 0.3 the same statistic lies far outside its error bar (≥ 6 se).
    delta, se = _minimiser_and_se(wkind, "eps", x0_bias=0.3)
    self.assertGreater(abs(delta), 5 * se, msg=f"{wkind}: {delta} ± {se}")


class LossShapeTest(chex.TestCase):

  def test_shapes_jit_and_vmap(self):
    sched = schedules.make("cosine")
    kwargs = dict(
        schedule=sched,
        param=parameterization.make("eps"),
        weight_fn=weighting.make_weighting("elbo"),
        t_sampler=weighting.make_t_sampler("uniform"),
    )
    net = _random_net(0)
    x = jnp.ones(SHAPE)
    fn = lambda r: losses.weighted_loss(net, x, r, **kwargs)
    loss, aux = jax.jit(fn)(jax.random.key(0))
    chex.assert_shape(loss, (8,))
    chex.assert_type(loss, jnp.float32)
    for v in aux.values():
      chex.assert_shape(v, (8,))
    np.testing.assert_allclose(loss, fn(jax.random.key(0))[0], rtol=1e-5)  # jit = eager
    # vmap over independent keys = separate calls
    keys = jax.random.split(jax.random.key(1), 3)
    many = jax.jit(jax.vmap(lambda r: fn(r)[0]))(keys)
    chex.assert_shape(many, (3, 8))
    np.testing.assert_allclose(many[1], jax.jit(fn)(keys[1])[0], rtol=1e-5)

  def test_mismatched_output_shape(self):
    with self.assertRaisesRegex(ValueError, "raw_fn output shape"):
      losses.weighted_loss(
          lambda z, c: z[..., :1],
          jnp.ones(SHAPE),
          jax.random.key(0),
          schedule=schedules.make("cosine"),
          param=parameterization.make("eps"),
          weight_fn=weighting.make_weighting("elbo"),
          t_sampler=weighting.make_t_sampler("uniform"),
      )

  def test_flow_end_point_t0_gives_finite_loss_and_gradient(self):
    # uniform t in float32 hits t = 0 exactly with probability 2^-23 per draw; there w = p = 0 on a
    # flow schedule. That single example must not turn the batch loss into NaN (seen on a GPU run).
    sched = schedules.make("flow")
    t_fixed = jnp.array([0.0, 0.25, 0.5, 0.75, 0.9, 0.1, 0.3, 0.6])
    t_sampler = lambda rng, b, schedule: (
        t_fixed,
        weighting.uniform_t_density(schedule, schedule.logsnr(t_fixed)),
    )
    x = jax.random.normal(jax.random.key(3), SHAPE)

    def mean_loss(scale):
      net = lambda z, c: scale * _random_net(0)(z, c)
      loss, _ = losses.weighted_loss(
          net,
          x,
          jax.random.key(0),
          schedule=sched,
          param=parameterization.make("flow"),
          weight_fn=weighting.make_weighting("flow", schedule=sched),
          t_sampler=t_sampler,
      )
      return jnp.mean(loss), loss

    (value, per_example), grad = jax.value_and_grad(mean_loss, has_aux=True)(1.0)
    self.assertTrue(bool(jnp.all(jnp.isfinite(per_example))), per_example)
    self.assertEqual(float(per_example[0]), 0.0)
    self.assertTrue(np.isfinite(float(grad)) and np.isfinite(float(value)))


if __name__ == "__main__":
  absltest.main()
