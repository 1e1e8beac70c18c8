"""Consistency models (CD, CT, iCT, ECT): schedules against the official code's values, distances
and losses against the papers' formulas on fixed tensors, the boundary condition, and exactness on
a Gaussian mixture whose PF-ODE map (the consistency function of the exact teacher) is computed by
the adaptive solver."""

import math
import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import special

from diffjax import config_lib
from diffjax import methods
from diffjax import solvers
from diffjax.methods import consistency
from diffjax.methods import consistency_lib as lib
from diffjax.solvers import adaptive
from diffjax.solvers import testing

GMM = testing.GaussianMixture(
    means=np.array([[-1.0, 0.5], [1.2, -0.3]]),
    stds=np.array([[0.3, 0.5], [0.4, 0.2]]),
    weights=np.array([0.4, 0.6]),
)
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0


class _Data:
  element_shape, num_classes = (2,), 0


def _config(variant, **kwargs):
  config = ml_collections.ConfigDict()
  config.init_from = ""
  config.train = dict(num_steps=10)
  config.model = config_lib.mlp(width=16, depth=2)
  settings = dict(
      cd=dict(s0=18, s1=18, mu0=0.0, adaptive_ema=False, progressive=False, teacher="random"),
      ct=dict(s0=2, s1=150, mu0=0.9),
      ict=dict(s0=10, s1=1280, p_mean=-1.1, p_std=2.0),
      ect=dict(p_mean=-1.1, p_std=2.0, q=2.0, k=8.0, b=1.0, double_every_steps=4),
  )[variant]
  settings.update(kwargs)
  config.update(config_lib.consistency(variant, total_steps=1000, **settings))
  return config


def _f_star(x, sigma):
  """The exact consistency function: the PF-ODE map of the GMM from σ to σ_min (adaptive
  Dormand–Prince at tight tolerances), per example; the identity at σ = σ_min."""

  def one(xi, si):
    grid = jnp.stack([jnp.maximum(si, SIGMA_MIN * (1 + 1e-6)), jnp.float32(SIGMA_MIN)])
    y, _ = adaptive.adaptive(GMM.denoiser, xi[None], grid, rtol=1e-7, atol=1e-7)
    return jnp.where(si > SIGMA_MIN * (1 + 1e-5), y[0], xi)

  return jax.vmap(one)(x, sigma)


class _ExactCM(consistency.Consistency):
  """The Method with its network replaced by the exact consistency function, its teacher (EDM
  preconditioning, shift 0) by the GMM's exact denoiser."""

  def consistency_fn(self, params, label=None, *, train=False, rng=None, shift=None):
    return GMM.denoiser if shift == 0.0 else _f_star


class ScheduleTest(parameterized.TestCase):

  def test_cm_curriculum_equals_the_official_values(self):
    # openai/consistency_models create_ema_and_scales_fn("adaptive", 0.9, "progressive", 2, 150,
    # 800000), evaluated with NumPy: (target_ema, scales); N includes the code's "+ 1" and μ uses
    # the count before it (k = 0: μ = 0.9² = 0.81, not the paper's 0.9).
    official = {
        0: (0.81, 2),
        1: (0.9, 3),
        5000: (0.9825931938526898, 13),
        100000: (0.9960320247854624, 54),
        400000: (0.9980140403749149, 107),
        799999: (0.9985961794038429, 151),
        800000: (0.9985961794038429, 151),
    }
    for k, (mu, n) in official.items():
      got_mu, got_n = lib.cm_ema_and_scales(k, total_steps=800000, s0=2, s1=150, mu0=0.9)
      self.assertEqual(int(got_n), n, f"k={k}")
      np.testing.assert_allclose(float(got_mu), mu, rtol=1e-6, err_msg=f"k={k}")
    mu, n = lib.cm_ema_and_scales(
        7, total_steps=10, s0=18, s1=18, mu0=0.0, adaptive_ema=False, progressive=False
    )  # CD's fixed mode: N = s0, μ = μ0
    self.assertEqual((float(mu), int(n)), (0.0, 18))
    with self.assertRaisesRegex(ValueError, "adaptive_ema"):
      lib.cm_ema_and_scales(0, total_steps=1, s0=2, s1=2, mu0=0.9, progressive=False)

  def test_ict_doubling(self):
    # K = 400k, s0 = 10, s1 = 1280: K' = ⌊400000 / (log2 128 + 1)⌋ = 50000 (iCT eq. 7).
    for k, n in {
        0: 11,
        49999: 11,
        50000: 21,
        100000: 41,
        300000: 641,
        350000: 1281,
        399999: 1281,
    }.items():
      self.assertEqual(int(lib.ict_num_scales(k, total_steps=400000, s0=10, s1=1280)), n, k)

  def test_ict_index_distribution_is_the_discretised_lognormal(self):
    n = 11
    i = np.arange(n)
    sig = (
        SIGMA_MIN ** (1 / RHO) + i / (n - 1) * (SIGMA_MAX ** (1 / RHO) - SIGMA_MIN ** (1 / RHO))
    ) ** RHO
    cdf = special.erf((np.log(sig) + 1.1) / (np.sqrt(2) * 2.0))
    want = np.diff(cdf) / np.sum(np.diff(cdf))
    logits = lib.ict_index_logits(
        jnp.int32(n), 32, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=RHO, p_mean=-1.1, p_std=2.0
    )
    got = jax.nn.softmax(logits)
    np.testing.assert_allclose(np.asarray(got[: n - 1]), want, rtol=1e-4)
    self.assertEqual(float(jnp.sum(got[n - 1 :])), 0.0)

  def test_ect_mapping(self):
    t = np.array([0.01, 0.5, 2.0, 10.0, 80.0])
    for stage in (0, 1, 3):
      ratio = 1 - 2.0 ** -(stage + 1) * (1 + 8.0 / (1 + np.exp(t)))
      want = np.maximum(t * ratio, 0.0)
      got = lib.ect_r(jnp.asarray(t, jnp.float32), stage, q=2.0, k=8.0, b=1.0)
      np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-7)
    self.assertEqual(float(lib.ect_r(jnp.float32(0.01), 0, q=2.0, k=8.0, b=1.0)), 0.0)


class LossTest(parameterized.TestCase):

  def test_distances(self):
    a = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    b = jnp.array([[1.0, 0.0, 1.0], [3.0, 4.0, 0.0]])
    np.testing.assert_allclose(lib.distance(a, b, "l2"), [8 / 3, 25 / 3], rtol=1e-6)
    np.testing.assert_allclose(
        lib.distance(a, b, "pseudo_huber", 0.5),
        [math.sqrt(8 + 0.25) - 0.5, math.sqrt(25 + 0.25) - 0.5],
        rtol=1e-6,
    )
    self.assertAlmostEqual(lib.huber_c_for((32, 32, 3)), 0.00054 * math.sqrt(3072))
    with self.assertRaisesRegex(ValueError, "method.metric"):
      lib.distance(a, b, "lpips")

  @pytest.mark.slow
  def test_boundary_condition_and_ect_is_edm(self):
    method = methods.make(_config("ct"), _Data)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 2))
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    f = method.denoiser(params)
    np.testing.assert_array_equal(f(x, jnp.full((5,), SIGMA_MIN)), x)  # f(x, σ_min) = x exactly
    self.assertGreater(float(jnp.max(jnp.abs(f(x, jnp.full((5,), 1.0)) - x))), 1e-3)
    c_skip, c_out, c_in, c_noise = lib.boundary_coefficients(jnp.float32(2.0), 0.5, 0.0)
    np.testing.assert_allclose(
        [c_skip, c_out, c_in, c_noise],
        [0.25 / 4.25, 1.0 / math.sqrt(4.25), 1 / math.sqrt(4.25), 0.25 * math.log(2.0)],
        rtol=1e-6,
    )

  @parameterized.parameters("ct", "ict", "ect")
  def test_loss_is_the_papers_formula(self, variant):
    self._check_formula(variant)

  @pytest.mark.slow
  def test_cd_loss_is_the_papers_formula(self):
    self._check_formula("cd")

  def _check_formula(self, variant):
    method = methods.make(_config(variant, metric="pseudo_huber", huber_c=0.1), _Data)
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 16)[0])
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    state = method.init_state_with_params(params)
    state["step"] = jnp.int32(5)
    rng = jax.random.PRNGKey(3)
    loss, _ = method.loss_with_state(params, state, {"x": x}, rng)
    # The formula written out: the draws as the Method takes them, then the paper's pair.
    rng_t, rng_eps, rng_drop = jax.random.split(rng, 3)
    eps = jax.random.normal(rng_eps, x.shape)
    f = method.consistency_fn(params, train=True, rng=rng_drop)
    grid = (
        lambda i, n: (
            SIGMA_MAX ** (1 / RHO) + i / (n - 1) * (SIGMA_MIN ** (1 / RHO) - SIGMA_MAX ** (1 / RHO))
        )
        ** RHO
    )
    weight = 1.0
    if variant in ("cd", "ct"):
      n = (
          18
          if variant == "cd"
          else int(lib.cm_ema_and_scales(5, total_steps=1000, s0=2, s1=150, mu0=0.9)[1])
      )
      i = jax.random.randint(rng_t, (16,), 0, n - 1)
      hi, lo = grid(i, n), grid(i + 1, n)
      x_hi = x + hi[:, None] * eps
      if variant == "cd":  # Heun with EDM's denoiser of the teacher (the initial network here)
        den = method.consistency_fn(state["teacher"], shift=0.0)
        d = (x_hi - den(x_hi, hi)) / hi[:, None]
        x_e = x_hi + (lo - hi)[:, None] * d
        x_lo = x_hi + (lo - hi)[:, None] / 2 * (d + (x_e - den(x_e, lo)) / lo[:, None])
      else:
        x_lo = x + lo[:, None] * eps
      target = method.consistency_fn(state["target"], train=True, rng=rng_drop)(x_lo, lo)
    elif variant == "ict":
      n = 11
      sig = grid(jnp.arange(n)[::-1], n)  # ascending σ_1 … σ_N
      cdf = jax.scipy.special.erf((jnp.log(sig) + 1.1) / (math.sqrt(2) * 2.0))
      j = jax.random.categorical(
          rng_t, jnp.log(jnp.pad(jnp.diff(cdf), (0, 1280 - n + 1))), shape=(16,)
      )
      lo, hi = sig[j], sig[j + 1]
      target = f(x + lo[:, None] * eps, lo)
      weight = 1.0 / (hi - lo)
    else:
      hi = jnp.exp(-1.1 + 2.0 * jax.random.normal(rng_t, (16,)))
      lo = lib.ect_r(hi, 5 // 4, q=2.0, k=8.0, b=1.0)
      target = jnp.where((lo > 0)[:, None], f(x + lo[:, None] * eps, jnp.where(lo > 0, lo, 1.0)), x)
      weight = 1.0 / (hi - lo)
    pred = f(x + hi[:, None] * eps, hi)
    want = jnp.mean(weight * (jnp.sqrt(jnp.sum((pred - target) ** 2, -1) + 0.01) - 0.1))
    np.testing.assert_allclose(float(loss), float(want), rtol=2e-5)

  def test_target_ema_update_and_step(self):
    method = methods.make(_config("ct"), _Data)
    params = {"w": jnp.ones(3)}
    state = {"step": jnp.int32(0), "target": {"w": jnp.zeros(3)}}
    new = method.update_state(state, {"w": jnp.full(3, 2.0)})
    mu = float(lib.cm_ema_and_scales(0, total_steps=1000, s0=2, s1=150, mu0=0.9)[0])
    np.testing.assert_allclose(new["target"]["w"], 2.0 * (1 - mu), rtol=1e-6)
    self.assertEqual(int(new["step"]), 1)
    del params

  def test_bad_config(self):
    cfg = _config("ct")
    cfg.method.variant = "pd"
    with self.assertRaisesRegex(ValueError, "method.variant"):
      methods.make(cfg, _Data)
    cfg = _config("cd", teacher="checkpoint")
    with self.assertRaisesRegex(ValueError, "init_from"):
      methods.make(cfg, _Data)
    cfg = _config("ict", mu0=0.9)
    with self.assertRaisesRegex(ValueError, "unknown keys \\['mu0'\\]"):
      methods.make(cfg, _Data)


class ExactnessTest(parameterized.TestCase):
  """On the GMM the exact teacher's PF-ODE map is known (adaptive solver): the consistency
  function of the exact teacher is a fixed point of the CD loss, and sampling with it is the ODE
  map."""

  @pytest.mark.slow
  def test_cd_loss_vanishes_at_the_exact_consistency_function(self):
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 32)[0])
    losses = []
    for n in (10, 40):
      config = _config("cd", s0=n, s1=n)
      method = _ExactCM(config, element_shape=(2,), num_classes=0)
      state = {"step": jnp.int32(0), "target": {}, "teacher": {}}
      loss, _ = method.loss_with_state({}, state, {"x": x}, jax.random.PRNGKey(1))
      losses.append(float(loss))
    # One Heun step's local error is O(h³): the squared error falls like h⁶ (4⁶ ≈ 4000 for 4×
    # the grid points; measured 5.2e-4 -> 1.2e-7).
    self.assertLess(losses[0], 1e-3)
    self.assertLess(losses[1], losses[0] / 1000)

  @pytest.mark.slow
  def test_one_step_sampling_with_the_exact_function_is_the_ode_map(self):
    noise = jax.random.normal(jax.random.PRNGKey(2), (16, 2))
    grid = solvers.grid("karras", 1, schedule=None, append_zero=False)
    got = solvers.solve("consistency", _f_star, SIGMA_MAX * noise, grid, key=jax.random.PRNGKey(0))
    want = solvers.solve(
        "adaptive",
        GMM.denoiser,
        SIGMA_MAX * noise,
        np.array([SIGMA_MAX, SIGMA_MIN]),
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(got, want, atol=2e-4)

  def test_multistep_adds_the_right_noise(self):
    # With f(x, σ) = x (a stand-in) two steps return x̂₀ + √(σ_1² − σ_min²) z_1 exactly.
    grid = solvers.grid("karras", 2, schedule=None, append_zero=False)
    x = SIGMA_MAX * jax.random.normal(jax.random.PRNGKey(0), (4, 2))
    key = jax.random.PRNGKey(5)
    got = solvers.solve("consistency", lambda x, s: 0.0 * x + 1.0, x, grid, key=key)
    z = jax.random.normal(jax.random.fold_in(key, 1), x.shape)
    np.testing.assert_allclose(got, 1.0 + 0.0 * z, atol=1e-6)  # f ignores its input
    got = solvers.solve("consistency", lambda x, s: x, x, grid, key=key)
    np.testing.assert_allclose(got, x + math.sqrt(grid[1] ** 2 - SIGMA_MIN**2) * z, rtol=1e-5)
    self.assertEqual(solvers.nfe("consistency", 4), 4)
