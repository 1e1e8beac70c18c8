"""CTM (Kim et al. 2023): the loss against the paper's formula on fixed tensors, the draws, the start
from the teacher, γ-sampling against CM's sampler and the exact output law, and exactness on a
Gaussian mixture whose PF-ODE map (the exact teacher's trajectory) the adaptive solver computes."""

import math
import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import methods
from diffjax.methods import ctm
from diffjax.methods import ctm_lib
from diffjax.methods import sampling
from diffjax.solvers import adaptive
from diffjax.solvers import consistency as consistency_solver
from diffjax.solvers import testing

GMM = testing.GaussianMixture(
    means=np.array([[-1.0, 0.5], [1.2, -0.3]]),
    stds=np.array([[0.3, 0.5], [0.4, 0.2]]),
    weights=np.array([0.4, 0.6]),
)
SIGMA_MIN, SD = 0.002, 0.5
MEAN, STD = np.array([0.7, -0.2]), np.array([0.4, 0.3])  # a Gaussian: closed-form PF-ODE map


class _Data:
  element_shape, num_classes = (2,), 0


def _config(**kwargs):
  config = ml_collections.ConfigDict()
  config.init_from = ""
  config.train = dict(num_steps=10)
  config.model = config_lib.mlp(width=16, depth=2)
  settings = dict(teacher="random", dsm_layer="out_dense", num_scales=6, max_heun_steps=3)
  settings.update(kwargs)
  config.update(config_lib.ctm(**settings))
  return config


def _karras(num_steps):
  """The ρ-grid from 80 to σ_min with num_steps + 1 levels (ρ = 7)."""
  a, c = 80.0 ** (1 / 7), SIGMA_MIN ** (1 / 7)
  return (a + np.arange(num_steps + 1) / num_steps * (c - a)) ** 7


def _gauss_jump(x, t, s):
  """The exact G of N(MEAN, STD²): μ + (x − μ)√((v + s²)/(v + t²)); t, s [B]."""
  v = jnp.asarray(STD**2, x.dtype)
  return MEAN + (x - MEAN) * jnp.sqrt((v + s[:, None] ** 2) / (v + t[:, None] ** 2))


def _ode_map(x, t, s):
  """The GMM's PF-ODE map t → s per example (adaptive Dormand–Prince, tight tolerances)."""

  def one(xi, ti, si):
    y, _ = adaptive.adaptive(GMM.denoiser, xi[None], jnp.stack([ti, si]), rtol=1e-7, atol=1e-7)
    return jnp.where(si < ti, y[0], xi)

  return jax.vmap(one)(x, t, s)


class _ExactCTM(ctm.CTM):
  """The Method with its network replaced by an exact trajectory model `JUMP`."""

  JUMP = staticmethod(_gauss_jump)

  def jump_fn(self, params, label=None, *, train=False, rng=None):
    return self.JUMP


@flax.struct.dataclass
class _State:
  params: dict
  ema_params: dict
  method_state: dict


class LossTest(parameterized.TestCase):

  def _formula(self, method, params, state, x, rng):
    """The paper's loss written out (draws as the Method takes them; network via model.apply)."""
    n_max, big_n = method.max_heun_steps, method.num_scales
    rng_d, rng_drop = jax.random.split(rng)
    rng_n, rng_i, rng_j, rng_eps, rng_ln, rng_u, rng_dn = jax.random.split(rng_d, 7)
    k = np.arange(1, n_max + 1)
    n = 1 + int(jax.random.categorical(rng_n, jnp.log(jnp.asarray(k / k.sum(), jnp.float32))))
    b = x.shape[0]
    i = jax.random.randint(rng_i, (b,), 0, big_n - n)
    j = jax.random.randint(rng_j, (b,), i + n, big_n)
    a, c = 80.0 ** (1 / 7), SIGMA_MIN ** (1 / 7)
    level = lambda idx, m=big_n: (a + idx / (m - 1) * (c - a)) ** 7
    t, u, s = level(i), level(i + n), level(j)
    eps = jax.random.normal(rng_eps, x.shape)

    def g_of(p, y, tt, ss, train=True):
      c_in = 1 / jnp.sqrt(tt**2 + SD**2)
      kw = dict(rngs={"dropout": rng_drop}) if train else {}
      extra = {} if ss is None else dict(interval_cond=jnp.log(ss) / 4)
      raw = method.model.apply(
          {"params": p}, c_in[:, None] * y, jnp.log(tt) / 4, None, train=train, **extra, **kw
      )
      c_skip, c_out = SD**2 / (tt**2 + SD**2), tt * SD / jnp.sqrt(tt**2 + SD**2)
      return c_skip[:, None] * y + c_out[:, None] * raw

    big_g = lambda p, y, tt, ss: (ss / tt)[:, None] * y + (1 - ss / tt)[:, None] * g_of(
        p, y, tt, ss
    )
    teacher = lambda y, sig: g_of(state["teacher"], y, sig, None, train=False)
    smin = jnp.full((b,), SIGMA_MIN)

    def terms(p):
      x_t = x + t[:, None] * eps
      est = big_g(state["target"], big_g(p, x_t, t, s), s, smin)
      y = x_t
      for step in range(n):  # Heun σ_{i+k} → σ_{i+k+1}
        h, h2 = level(i + step), level(i + step + 1)
        d = (y - teacher(y, h)) / h[:, None]
        y_e = y + (h2 - h)[:, None] * d
        y = y + (h2 - h)[:, None] / 2 * (d + (y_e - teacher(y_e, h2)) / h2[:, None])
      tgt = big_g(state["target"], big_g(params, y, u, s), s, smin)
      l_ctm = jnp.mean((est - tgt) ** 2)
      sig = jnp.concatenate(
          [
              jnp.exp(-1.2 + 1.2 * jax.random.normal(rng_ln, (b // 2,))),
              level(jax.random.uniform(rng_u, (b - b // 2,)) * 0.7, 2),
          ]
      )
      den = g_of(p, x + sig[:, None] * jax.random.normal(rng_dn, x.shape), sig, sig)
      w = (sig**2 + SD**2) / (sig * SD) ** 2
      return l_ctm, jnp.mean(w * jnp.mean((den - x) ** 2, axis=-1))

    return terms

  def test_loss_is_the_papers_formula(self):
    method = methods.make(_config(dsm_weight=0.7), _Data)
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 16)[0])
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    state = method.init_state_with_params(params)
    state["target"] = jax.tree.map(lambda v: 0.9 * v, params)  # θ⁻ ≠ θ
    rng = jax.random.PRNGKey(3)
    loss, _ = jax.jit(method.loss_with_state)(params, state, {"x": x}, rng)
    l_ctm, l_dsm = jax.jit(self._formula(method, params, state, x, rng))(params)
    np.testing.assert_allclose(float(loss), float(l_ctm + 0.7 * l_dsm), rtol=1e-5)
    self.assertGreater(float(l_ctm), 0.0)

  @pytest.mark.slow
  def test_adaptive_dsm_weight_is_the_gradient_ratio(self):
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 16)[0])
    method = methods.make(_config(), _Data)
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    state = method.init_state_with_params(params)
    state["target"] = jax.tree.map(lambda v: 0.9 * v, params)
    rng = jax.random.PRNGKey(3)
    # ‖∇_W L_CTM‖ / (‖∇_W L_DSM‖ + 1e-4) at the last layer's kernel W.
    _, (metrics, _) = method.loss_with_state(params, state, {"x": x}, rng)
    terms = self._formula(method, params, state, x, rng)
    with_w = lambda w, idx: terms(dict(params, out_dense=dict(params["out_dense"], kernel=w)))[idx]
    norms = [
        float(jnp.linalg.norm(jax.grad(with_w)(params["out_dense"]["kernel"], idx)))
        for idx in (0, 1)
    ]
    np.testing.assert_allclose(
        float(metrics["dsm_lambda"]), norms[0] / (norms[1] + 1e-4), rtol=1e-4
    )

  def test_draws(self):
    method = methods.make(_config(num_scales=8, max_heun_steps=5), _Data)
    x = jnp.zeros((64, 2))
    d = jax.jit(jax.vmap(lambda k: method.draws(k, x)))(
        jax.random.split(jax.random.PRNGKey(0), 200)
    )
    n, i, j = np.asarray(d["n"]), np.asarray(d["i"]), np.asarray(d["j"])
    self.assertTrue(np.all((n >= 1) & (n <= 5)))
    self.assertTrue(np.all((i >= 0) & (i + n[:, None] <= 7)))
    self.assertTrue(np.all((j >= i + n[:, None]) & (j <= 7)))
    freq = np.bincount(n, minlength=6)[1:] / n.size
    np.testing.assert_allclose(freq, np.arange(1, 6) / 15, atol=0.08)  # p(n) ∝ n
    sig = np.asarray(d["dsm_sigma"])
    lo = (80.0 ** (1 / 7) + 0.7 * (SIGMA_MIN ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    self.assertTrue(np.all((sig[:, 32:] >= lo * (1 - 1e-5)) & (sig[:, 32:] <= 80.0)))
    np.testing.assert_allclose(np.mean(np.log(sig[:, :32])), -1.2, atol=0.05)
    np.testing.assert_allclose(np.std(np.log(sig[:, :32])), 1.2, atol=0.05)

  def test_start_from_is_the_teacher_ddim_step(self):
    method = methods.make(_config(), _Data)
    x = jax.random.normal(jax.random.PRNGKey(0), (6, 2))
    student = method.init(jax.random.PRNGKey(1), {"x": x})
    teacher = ctm_lib.without_interval(method.init(jax.random.PRNGKey(2), {"x": x}))
    state = _State(student, student, method.init_state_with_params(student))
    new = method.start_from(state, _State(teacher, teacher, {}))
    t, s = jnp.linspace(0.1, 40.0, 6), jnp.linspace(0.01, 3.0, 6)
    den = method.teacher_denoiser(teacher)
    want = (s / t)[:, None] * x + (1 - s / t)[:, None] * den(x, t)
    np.testing.assert_allclose(method.jump_fn(new.params)(x, t, s), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(method.denoiser(new.ema_params)(x, t), den(x, t), rtol=1e-5)
    self.assertEqual(jax.tree.structure(new.method_state["teacher"]), jax.tree.structure(teacher))
    bad = dict(teacher, out_dense={"kernel": jnp.zeros((3, 3)), "bias": jnp.zeros(3)})
    with self.assertRaisesRegex(ValueError, "init_from"):
      method.start_from(state, _State(bad, bad, {}))

  def test_bad_config(self):
    with self.assertRaisesRegex(ValueError, "init_from"):
      methods.make(_config(teacher="checkpoint"), _Data)
    with self.assertRaisesRegex(ValueError, "method.heun_step_strategy"):
      methods.make(_config(heun_step_strategy="random"), _Data)
    with self.assertRaisesRegex(ValueError, "method.max_heun_steps"):
      methods.make(_config(num_scales=4, max_heun_steps=4), _Data)
    with self.assertRaisesRegex(ValueError, "unknown keys \\['mu0'\\]"):
      methods.make(_config(mu0=0.9), _Data)


class OnGridSamplersTest(parameterized.TestCase):

  @parameterized.parameters("fashion_mnist.py", "cifar10.py")
  def test_inner_levels_are_training_levels(self, name):
    """`step<n>_on_grid` (config_lib.ctm_fd_samplers) jumps between levels σ_i of the method's
    own N-level training grid (`CTM.level`); the official `step<n>` Karras grid does not."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    config = config_lib.load(os.path.join(repo, "configs", "ctm", name))
    config.method.teacher = "random"  # the levels only: no teacher run to load
    method = methods.make(config.copy_and_resolve_references(), _Data)
    train_levels = np.asarray([float(method.level(i)) for i in range(method.num_scales)])
    samplers = config.eval.fd_samplers
    for n in (2, 4):
      on_grid = samplers[f"step{n}_on_grid"]
      got = sampling.sigmas(method, None, n, on_grid.grid, on_grid.grid_kwargs.to_dict())
      self.assertLen(got, n + 1)
      np.testing.assert_allclose(got[[0, -1]], train_levels[[0, -1]], rtol=1e-6)
      gaps = np.min(np.abs(np.log(got[:, None]) - np.log(train_levels[None, :])), axis=1)
      np.testing.assert_array_less(gaps, 1e-6)
      official = sampling.sigmas(method, None, n, config.sample.grid, None)
      gaps = np.min(np.abs(np.log(official[:, None]) - np.log(train_levels[None, :])), axis=1)
      self.assertGreater(gaps[1:-1].min(), 0.05)  # its inner levels lie between σ_i's
      # `:grid=training` makes the on-grid levels the config's own sampler.
      trained = config_lib.load(os.path.join(repo, "configs", "ctm", name), "grid=training")
      kwargs = trained.sample.grid_kwargs.to_dict()
      own = sampling.sigmas(method, None, n, trained.sample.grid, kwargs)
      self.assertEqual(dict(trained.sample.grid_kwargs), dict(on_grid.grid_kwargs))
      np.testing.assert_array_equal(own, got)
    # One value: overriding method.num_scales (as --config.method.num_scales does) moves the grid.
    moved = config_lib.load(
        os.path.join(repo, "configs", "ctm", name), "grid=training", {"method.num_scales": 10}
    )
    self.assertEqual(moved.sample.grid_kwargs.num_levels, 10)
    with self.assertRaisesRegex(ValueError, "sample_grid"):
      config_lib.load(os.path.join(repo, "configs", "ctm", name), "grid=uniform")


class GammaSamplingTest(parameterized.TestCase):

  def test_gamma_zero_is_the_deterministic_jumps_and_one_is_cm(self):
    grid = jnp.asarray(_karras(4), jnp.float32)
    x = 80.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    key = jax.random.PRNGKey(1)
    got, _ = consistency_solver.gamma_sampling(_gauss_jump, x, grid, key=key, gamma=0.0)
    want = x
    for a, b in zip(grid[:-1], grid[1:]):
      want = _gauss_jump(want, jnp.full((8,), a), jnp.full((8,), b))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    one = _gauss_jump(x, jnp.full((8,), 80.0), jnp.full((8,), SIGMA_MIN))  # = the ODE map
    np.testing.assert_allclose(got, one, rtol=1e-4, atol=1e-4)
    got, _ = consistency_solver.gamma_sampling(_gauss_jump, x, grid, key=key, gamma=1.0)
    f = lambda y, sig: _gauss_jump(y, sig, jnp.full_like(sig, SIGMA_MIN))
    want, _ = consistency_solver.consistency(f, x, grid, key=key, sigma_min=SIGMA_MIN)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with self.assertRaisesRegex(ValueError, "gamma"):
      consistency_solver.gamma_sampling(_gauss_jump, x, grid, key=key, gamma=1.5)
    with self.assertRaisesRegex(ValueError, "key"):
      consistency_solver.gamma_sampling(_gauss_jump, x, grid, gamma=0.5)

  @parameterized.parameters(0.0, 0.5, 1.0)
  def test_output_law_with_the_exact_model(self, gamma):
    # The exact G keeps every marginal: the output is N(μ, s² + σ_min²) for every γ.
    method = _ExactCTM(_config(), element_shape=(2,), num_classes=0)
    x = method.sample(
        {}, jax.random.PRNGKey(4), 20_000, num_steps=3, solver_kwargs={"gamma": gamma}
    )
    np.testing.assert_allclose(np.mean(x, 0), MEAN, atol=0.015)
    np.testing.assert_allclose(np.std(x, 0), np.sqrt(STD**2 + SIGMA_MIN**2), rtol=0.03)


class ExactnessTest(parameterized.TestCase):
  """The GMM's PF-ODE map (adaptive solver) is the exact teacher's trajectory."""

  @pytest.mark.slow
  def test_jump_of_the_exact_g_is_the_ode_map_and_g_is_the_denoiser_at_s_eq_t(self):
    class _ExactNet(ctm.CTM):
      """g* = (Φ_{t→s}(x) − (s/t)x)/(1 − s/t) through the Method's own preconditioning: the
      network decodes x = z_in·√(t² + σ_d²), t = e^{4 c_noise}, s = e^{4 interval_cond}."""

      def network_fn(self, params, label=None, *, train=False, rng=None, **extra):
        def fn(z_in, c_noise):
          t, s = jnp.exp(4 * c_noise), jnp.exp(4 * extra["interval_cond"])
          x = z_in * jnp.sqrt(t**2 + SD**2)[:, None]
          g = (_ode_map(x, t, s) - (s / t)[:, None] * x) / (1 - s / t)[:, None]
          c_skip, c_out = SD**2 / (t**2 + SD**2), t * SD / jnp.sqrt(t**2 + SD**2)
          return (g - c_skip[:, None] * x) / c_out[:, None]

        return fn

    method = _ExactNet(_config(), element_shape=(2,), num_classes=0)
    x0 = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 6)[0])
    t = jnp.array([0.3, 0.8, 1.5, 3.0, 10.0, 40.0])
    s = jnp.array([0.002, 0.2, 1.0, 0.5, 9.0, 0.002])
    x = x0 + t[:, None] * jax.random.normal(jax.random.PRNGKey(1), x0.shape)
    got = method.jump_fn({})(x, t, s)
    np.testing.assert_allclose(got, _ode_map(x, t, s), rtol=2e-4, atol=2e-4)
    # g*(x, t, s) → D(x, t) linearly as s → t: the DSM term's target is the exact denoiser.
    errs = []
    for delta in (4e-2, 1e-2):
      s = t * (1 - delta)
      g = (_ode_map(x, t, s) - (s / t)[:, None] * x) / delta
      errs.append(float(jnp.max(jnp.abs(g - GMM.denoiser(x, t)))))
    self.assertLess(errs[1], errs[0] / 3)
    self.assertLess(errs[1], 2e-2)

  @pytest.mark.slow
  def test_soft_target_converges_to_the_ode_map(self):
    # Coarse grid of 5 levels on [σ_min, 2]: t = σ_1, u = σ_2, s = σ_3; refinement r puts r − 1
    # levels between coarse ones (Karras grids in ρ-space nest), so n = r teacher Heun steps.
    x0 = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 8)[0])
    errs = []
    for r in (1, 2, 4):
      method = ctm.CTM(
          _config(num_scales=4 * r + 1, max_heun_steps=r, sigma_max=2.0),
          element_shape=(2,),
          num_classes=0,
      )
      i, j = jnp.full((8,), r), jnp.full((8,), 3 * r)
      t = method.level(i)
      x_t = x0 + t[:, None] * jax.random.normal(jax.random.PRNGKey(1), x0.shape)
      est, tgt = ctm_lib.ctm_pair(
          _ode_map, _ode_map, _ode_map, GMM.denoiser, x_t, i, r, j, method.level, SIGMA_MIN
      )
      want = _ode_map(x_t, t, jnp.full((8,), SIGMA_MIN))
      np.testing.assert_allclose(est, want, atol=2e-4)
      errs.append(float(jnp.max(jnp.abs(tgt - want))))
    self.assertLess(errs[1], errs[0] / 3)  # Heun: second order
    self.assertLess(errs[2], errs[1] / 3)
    self.assertLess(errs[2], 5e-3)


def test_gamma_sampling_of_the_method_is_the_solver():
  method = _ExactCTM(_config(), element_shape=(2,), num_classes=0)
  rng = jax.random.PRNGKey(7)
  got = method.sample({}, rng, 8, num_steps=2, solver_kwargs={"gamma": 0.5})
  rng_init, rng_solve = jax.random.split(rng)
  grid = _karras(2)
  x = 80.0 * jax.random.normal(rng_init, (8, 2))
  want, _ = consistency_solver.gamma_sampling(
      _gauss_jump, x, jnp.asarray(grid, jnp.float32), key=rng_solve, gamma=0.5
  )
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert math.isclose(float(grid[-1]), SIGMA_MIN, rel_tol=1e-5)


class _Image:
  element_shape, num_classes = (8, 8, 3), 0


def test_cifar10_student_is_the_edm_cifar10_teacher_plus_the_s_map():
  # configs/ctm/cifar10.py distils a configs/edm/cifar10.py run: without its `interval_map` the
  # student's parameter tree is the teacher's (what `start_from`'s graft requires).
  shapes = {}
  for name in ("edm", "ctm"):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    config = config_lib.load(os.path.join(repo, "configs", name, "cifar10.py"), "smoke")
    method = methods.make(config, _Image)
    batch = {"x": jnp.zeros((2, 8, 8, 3))}
    shapes[name] = jax.eval_shape(method.init, jax.random.PRNGKey(0), batch)
  assert set(shapes["ctm"]) - set(shapes["edm"]) == {"interval_map"}
  student = ctm_lib.without_interval(shapes["ctm"])
  assert jax.tree.map(lambda a: a.shape, student) == jax.tree.map(lambda a: a.shape, shapes["edm"])
