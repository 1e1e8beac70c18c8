"""solve / nfe / grid: input validation, NaN reporting, evaluation counts, dtypes, jit."""

import chex
import jax
import pytest
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from jax.experimental import checkify

from diffjax import solvers
from diffjax.core import schedules
from diffjax.solvers import testing

GAUSS = testing.gaussian([0.5, -1.0], [0.7, 1.3])
X = 5.0 * jax.random.normal(jax.random.key(0), (4, 2))
KEY = jax.random.key(1)
ALL = sorted(set(solvers.SOLVERS) - {"adaptive"})


def _counting(denoiser, counter):
  """The denoiser, plus a host callback that counts its executed calls (untaken lax.cond /
  lax.switch branches do not run)."""

  def counted(x, sigma):
    jax.debug.callback(lambda: counter.append(1))
    return denoiser(x, sigma)

  return counted


class ValidationTest(parameterized.TestCase):

  def test_unknown_solver(self):
    with self.assertRaisesRegex(ValueError, "unknown solver 'nope'.*heun"):
      solvers.solve("nope", GAUSS.denoiser, X, np.array([1.0, 0.0]))
    with self.assertRaisesRegex(ValueError, "unknown solver"):
      solvers.nfe("nope", 3)

  def test_unknown_grid_and_option(self):
    with self.assertRaisesRegex(ValueError, "unknown grid 'bogus'.*karras"):
      solvers.grid("bogus", 5, schedule=None)
    with self.assertRaisesRegex(ValueError, "bad option for grid 'karras'"):
      solvers.grid("karras", 5, schedule=None, sigma_mn=0.1)
    with self.assertRaisesRegex(ValueError, "unknown option 'S_churm' for solver"):
      solvers.solve("edm_stochastic", GAUSS.denoiser, X, np.array([1.0, 0.0]), key=KEY, S_churm=1.0)

  @parameterized.parameters(
      ([1.0, 2.0, 0.0], "strictly decreasing; sigmas\\[0\\]"),
      ([3.0, 1.0, 1.0], "strictly decreasing; sigmas\\[1\\]"),
      ([1.0, -0.5], "non-negative"),
      ([np.inf, 1.0], "finite"),
      ([1.0], "at least 2 entries"),
      ([[1.0, 0.0]], "1-D"),
  )
  def test_bad_sigmas(self, sigmas, message):
    with self.assertRaisesRegex(ValueError, message):
      solvers.solve("euler", GAUSS.denoiser, X, np.array(sigmas))

  def test_missing_key_and_bad_x(self):
    with self.assertRaisesRegex(ValueError, "stochastic and needs key"):
      solvers.solve("ddpm", GAUSS.denoiser, X, np.array([1.0, 0.0]))
    with self.assertRaisesRegex(ValueError, "ddim with eta > 0 needs a key|needs key"):
      solvers.solve("ddim", GAUSS.denoiser, X, np.array([1.0, 0.0]), eta=0.5)
    solvers.solve("ddim", GAUSS.denoiser, X, np.array([1.0, 0.0]))  # η = 0 needs none
    with self.assertRaisesRegex(ValueError, "floating point"):
      solvers.solve("euler", GAUSS.denoiser, jnp.ones((2, 2), jnp.int32), np.array([1.0, 0.0]))

  def test_karras_narrowed_to_the_schedule_range(self):
    # EDM's sampler: sigma_min = max(sigma_min, net.sigma_min), sigma_max = min(sigma_max, ...).
    vdm = schedules.make("linear_logsnr", logsnr_lo=-5.0, logsnr_hi=13.3)  # VDM's γ range
    got = solvers.grid("karras", 18, schedule=vdm)
    np.testing.assert_allclose(got[[0, -2]], [np.exp(2.5), 0.002], rtol=1e-6)  # σ̃ = e^{-λ/2}
    np.testing.assert_allclose(
        got, solvers.grid("karras", 18, schedule=None, sigma_max=float(np.exp(2.5))), rtol=1e-6
    )  # λ in float32
    cosine = schedules.make("iddpm_cosine", num_timesteps=1000)  # starts at σ̃ = √β_1/(1-β_1)
    low = float(np.sqrt(1 / cosine.alphas_cumprod()[0] - 1))
    np.testing.assert_allclose(
        solvers.grid("karras", 18, schedule=cosine)[[0, -2]], [80.0, low], rtol=1e-5
    )
    # Schedules that span [0.002, 80] (EDM, flows, the v-prediction cosine) keep EDM's grid.
    for kind in ("edm", "rectified_flow", "cosine"):
      np.testing.assert_allclose(
          solvers.grid("karras", 18, schedule=schedules.make(kind)),
          solvers.grid("karras", 18, schedule=None),
          rtol=1e-12,
          err_msg=kind,
      )
    with self.assertRaisesRegex(ValueError, "sigma_min < sigma_max"):
      solvers.grid("karras", 18, sigma_min=20.0, schedule=vdm)

  def test_bad_grid_values(self):
    with self.assertRaisesRegex(ValueError, "sigma_min < sigma_max"):
      solvers.grid("karras", 5, schedule=None, sigma_min=2.0, sigma_max=1.0)
    for name in ("uniform_t", "uniform_logsnr", "quadratic", "time_uniform", "logSNR", "ddim"):
      with self.assertRaisesRegex(ValueError, f"grid '{name}' .*needs schedule="):
        solvers.grid(name, 5, schedule=None)
    with self.assertRaisesRegex(ValueError, "num_steps"):
      solvers.grid("karras", 0, schedule=None)
    with self.assertRaisesRegex(ValueError, "infinite"):
      solvers.grid("uniform_t", 5, schedule=schedules.make("flow"), t_max=1.0)


def _bad_denoiser(x, sigma):
  """NaN below σ = 0.5."""
  return jnp.where(sigma[:, None] < 0.5, jnp.nan, GAUSS.denoiser(x, sigma))


def _check_nan(testcase, name, step):
  sigmas = np.array([4.0, 2.0, 1.0, 0.6, 0.3, 0.1, 0.0])
  with testcase.assertRaisesRegex(
      FloatingPointError, f"step {step} \\(sigma {sigmas[step]:.6g} -> "
  ):
    solvers.solve(name, _bad_denoiser, X, sigmas, key=KEY)
  _, info = solvers.solve(
      name, _bad_denoiser, X, sigmas, key=KEY, nan_check="none", return_info=True
  )
  testcase.assertEqual(int(info["nan_step"]), step)


class NanReportTest(parameterized.TestCase):
  """A denoiser that returns NaN below σ = 0.5 is reported at the first step that calls it there."""

  # Step 3 (0.6 -> 0.3) evaluates below 0.5 only for solvers with a stage inside or at the end
  # of the step (Heun's corrector at 0.3, SEEDS-3's stage at 0.6·2^{-1/3}); the others first call
  # it at the start of step 4.
  @parameterized.parameters(("euler", 4), ("heun", 3), ("seeds_3", 3), ("pc", 4))
  def test_raises_with_first_bad_step(self, name, step):
    _check_nan(self, name, step)

  def test_checkify_under_jit(self):
    sigmas = np.array([4.0, 2.0, 1.0, 0.3, 0.0])
    run = lambda x: solvers.solve("heun", _bad_denoiser, x, sigmas, nan_check="checkify")
    err, _ = checkify.checkify(jax.jit(run))(X)
    self.assertRegex(str(err.get()), "non-finite value at step 2")

  def test_raise_under_jit(self):
    sigmas = np.array([4.0, 2.0, 1.0, 0.3, 0.0])
    run = jax.jit(lambda x: solvers.solve("heun", _bad_denoiser, x, sigmas))
    with self.assertRaisesRegex(Exception, "step 2"):
      jax.block_until_ready(run(X))

  def test_finite_denoiser_passes(self):
    _, info = solvers.solve(
        "heun", GAUSS.denoiser, X, solvers.grid("karras", 5, schedule=None), return_info=True
    )
    self.assertEqual(int(info["nan_step"]), -1)
    self.assertEqual(info["nfe"], 9)


def _check_nfe(testcase, name, grids):
  options = {"eta": 0.5} if name == "ddim" else {}
  for sigmas in grids:
    counter = []
    out = solvers.solve(name, _counting(GAUSS.denoiser, counter), X, sigmas, key=KEY, **options)
    jax.block_until_ready(out)
    expected = solvers.nfe(name, len(sigmas) - 1, ends_at_zero=sigmas[-1] == 0, **options)
    testcase.assertLen(counter, expected, msg=f"{name} on {sigmas}")


GRID_ZERO = solvers.grid("karras", 5, schedule=None, sigma_max=10.0)
GRID_NONZERO = solvers.grid("karras", 5, schedule=None, sigma_max=10.0, append_zero=False)


class NfeTest(parameterized.TestCase):

  # One solver per counting rule (1, k per step, PLMS, PNDM, PC); every solver under -m slow.
  @parameterized.parameters(
      ("euler", False),
      ("heun", True),
      ("dpm_solver_3", False),
      ("plms", True),
      ("pndm", True),
      ("pc", False),
  )
  def test_nfe_counts_executed_calls(self, name, both_grids):
    _check_nfe(self, name, (GRID_ZERO, GRID_NONZERO) if both_grids else (GRID_ZERO,))

  def test_documented_counts(self):
    self.assertEqual(solvers.nfe("heun", 18), 35)  # EDM: 2n - 1
    self.assertEqual(solvers.nfe("heun", 18, ends_at_zero=False), 36)
    self.assertEqual(solvers.nfe("dpm_solver_3", 4, ends_at_zero=False), 12)
    self.assertEqual(solvers.nfe("pc", 10, n_corrector=2), 30)
    self.assertEqual(solvers.nfe("dpmpp_2m", 10), 10)
    with self.assertRaisesRegex(ValueError, "data-dependent"):
      solvers.nfe("adaptive", 10)


@pytest.mark.slow
class SlowNfeAndNanTest(parameterized.TestCase):

  @parameterized.parameters(*ALL)
  def test_nfe_counts_executed_calls(self, name):
    _check_nfe(self, name, (GRID_ZERO, GRID_NONZERO, np.array([3.0, 0.0])))

  @parameterized.parameters(
      ("dpmpp_3m", 4),
      ("lms", 4),
      ("pndm", 4),
      ("ddpm", 4),
      ("edm_stochastic", 3),
      ("sde_dpmpp_2m", 4),
      ("dpm_solver_3", 3),
  )
  def test_raises_with_first_bad_step(self, name, step):
    _check_nan(self, name, step)


class DtypeAndJitTest(parameterized.TestCase):

  def test_float64_state_stays_float64(self):
    with jax.enable_x64(True):
      x = jnp.asarray(X, jnp.float64)
      sigmas = solvers.grid("karras", 12, schedule=None)  # float64 NumPy
      out64 = solvers.solve("heun", GAUSS.denoiser, x, sigmas)
      out32 = solvers.solve("heun", GAUSS.denoiser, x.astype(jnp.float32), sigmas)
      chex.assert_type(out64, jnp.float64)
      chex.assert_type(out32, jnp.float32)
      # Reference: Heun by hand in NumPy float64.
      y = np.asarray(x)
      den = lambda v, s: np.asarray(GAUSS.denoiser(jnp.asarray(v), jnp.full((4,), s)))
      for s, t in zip(sigmas[:-1], sigmas[1:]):
        d = (y - den(y, s)) / s
        y_e = y + (t - s) * d
        y = y_e if t == 0 else y + (t - s) * 0.5 * (d + (y_e - den(y_e, t)) / t)
      np.testing.assert_allclose(np.asarray(out64), y, atol=1e-12, rtol=0)
      self.assertGreater(float(jnp.max(jnp.abs(out64 - out32))), 1e-9)

  @parameterized.parameters("dpmpp_3m", "seeds_2", "deis")
  def test_jit_matches_eager_and_traces_once(self, name):
    sigmas = solvers.grid("karras", 6, schedule=None, sigma_max=10.0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def run(x, key):
      return solvers.solve(name, GAUSS.denoiser, x, sigmas, key=key)

    chex.clear_trace_counter()
    a = run(X, KEY)
    run(X + 1.0, KEY)
    b = solvers.solve(name, GAUSS.denoiser, X, sigmas, key=KEY)
    chex.assert_trees_all_close(a, b, atol=1e-5, rtol=1e-5)

  def test_batch_independence(self):
    """Deterministic solvers act per example: a sub-batch gives the same rows."""
    sigmas = solvers.grid("karras", 6, schedule=None, sigma_max=10.0)
    full = solvers.solve("dpm_solver_3", GAUSS.denoiser, X, sigmas)
    part = solvers.solve("dpm_solver_3", GAUSS.denoiser, X[1:3], sigmas)
    chex.assert_trees_all_close(full[1:3], part, atol=1e-6)

  def test_deis_with_schedule_uses_time_variable(self):
    vp = schedules.make("vp")
    sigmas = solvers.grid("uniform_t", 10, schedule=vp)
    with jax.enable_x64(True):
      x = jnp.asarray(X, jnp.float64) * sigmas[0] / 5.0
      rho = solvers.solve("deis", GAUSS.denoiser, x, sigmas)
      tab = solvers.solve("deis", GAUSS.denoiser, x, sigmas, schedule=vp)
      fine = testing.gaussian_ode_solution(x, sigmas[0], 0.0, [0.5, -1.0], [0.7, 1.3])
      self.assertGreater(float(jnp.max(jnp.abs(rho - tab))), 1e-6)
      self.assertLess(float(jnp.max(jnp.abs(tab - fine))), 0.05)


class GridTest(parameterized.TestCase):

  def test_karras_closed_form(self):
    g = solvers.grid("karras", 5, schedule=None, sigma_min=0.1, sigma_max=10.0, rho=3.0)
    i = np.arange(5) / 4
    expected = (10.0 ** (1 / 3) + i * (0.1 ** (1 / 3) - 10.0 ** (1 / 3))) ** 3
    np.testing.assert_allclose(g, np.append(expected, 0.0), rtol=1e-14)
    self.assertEqual(g.dtype, np.float64)
    g2 = solvers.grid("karras", 5, schedule=None, sigma_min=0.1, sigma_max=10.0, append_zero=False)
    self.assertLen(g2, 6)
    np.testing.assert_allclose(g2[[0, -1]], [10.0, 0.1], rtol=1e-14)

  def test_schedule_grids(self):
    edm = schedules.make("edm")  # σ̃(t) = σ(t) on a VE schedule
    g = solvers.grid("uniform_t", 8, schedule=edm, t_min=0.0)
    self.assertLen(g, 9)
    np.testing.assert_allclose(g[[0, -2]], [80.0, 0.002], rtol=1e-5)
    lg = solvers.grid("uniform_logsnr", 8, schedule=edm, t_min=0.0)
    np.testing.assert_allclose(np.diff(np.log(lg[:-1])), np.log(0.002 / 80.0) / 7, rtol=1e-5)
    q = solvers.grid("quadratic", 4, schedule=edm, t_min=0.0, append_zero=False)
    t = np.linspace(1.0, 0.0, 5) ** 2
    a, b = 0.002 ** (1 / 7), 80.0 ** (1 / 7)
    np.testing.assert_allclose(q, (a + t * (b - a)) ** 7, rtol=1e-5)

  @parameterized.parameters(10, 20)
  def test_dpm_solver_grids(self, steps):
    """DPM-Solver's linear VP SDE (β 0.1 → 20): log α_t = -¼t²(β₁ - β₀) - ½tβ₀; t_end = 1e-3 for
    ≤ 15 steps else 1e-4; σ̃ = √(1 - α²)/α."""
    t_end = 1e-3 if steps <= 15 else 1e-4
    sig = lambda t: np.sqrt(np.expm1(0.5 * t**2 * 19.9 + t * 0.1))
    t = np.linspace(1.0, t_end, steps + 1)
    vp = schedules.make("vp", beta_min=0.1, beta_max=20.0, t_min=0.0)
    np.testing.assert_allclose(
        solvers.grid("time_uniform", steps, schedule=vp, append_zero=False), sig(t), rtol=2e-5
    )
    lam = np.linspace(-np.log(sig(1.0)), -np.log(sig(t_end)), steps + 1)
    np.testing.assert_allclose(
        solvers.grid("logSNR", steps, schedule=vp, append_zero=False), np.exp(-lam), rtol=2e-5
    )
    self.assertEqual(solvers.grid("logSNR", steps, schedule=vp)[-1], 0.0)

  def test_user_array(self):
    g = solvers.grid("array", 2, schedule=None, sigmas=[3.0, 1.0, 0.0])
    np.testing.assert_array_equal(g, [3.0, 1.0, 0.0])
    with self.assertRaisesRegex(ValueError, "expected num_steps"):
      solvers.grid("array", 3, schedule=None, sigmas=[3.0, 1.0, 0.0])
