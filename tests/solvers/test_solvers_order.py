"""Order of every deterministic solver against the exact Gaussian PF-ODE solution.

For x0 ~ N(μ, diag s²) the PF-ODE map is x(σ) = μ + (x(σ₀) - μ)√((s² + σ²)/(s² + σ₀²))
(`testing.gaussian_ode_solution`). Doubling the steps must cut the max error by 2^order: the
measured slope log2(e_n / e_2n) is within ±0.3 of the order stated in `solvers.SOLVERS`, which is
the global order including each multistep method's lower-order start (a first-order start step has
local error O(h²), so DPM-Solver++(3M), DEIS and LMS are globally second order; the formulas'
own orders are tested separately below). All in float64.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import solvers
from diffjax.solvers import multistep
from diffjax.solvers import ode
from diffjax.solvers import testing

MEAN, STD = np.array([1.0, -0.5, 0.0]), np.array([0.5, 2.0, 1.0])


def _log_grid(hi, lo):
  return lambda n: np.exp(np.linspace(np.log(hi), np.log(lo), n + 1))


def _lin_grid(hi, lo):
  return lambda n: np.linspace(hi, lo, n + 1)


def _karras_grid(hi, lo, rho=7.0):
  """EDM's grid (Karras et al. 2022, Eq. 5), non-uniform in σ, ending at lo (no final step to 0,
  whose length σ_min would not shrink with n)."""
  ramp = lambda n: np.linspace(0.0, 1.0, n + 1)
  return lambda n: (hi ** (1 / rho) + ramp(n) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


# name, options, grid, step counts, expected slope. Exponential integrators and Heun use a grid
# uniform in log σ (= uniform λ). Multistep methods whose lower-order start dominates use grids on
# which the start is hard (their asymptotic regime). The Adams–Bashforth methods (iPNDM, PLMS,
# PNDM) run on a grid uniform in σ, where their weights are the classical equal-step ones, and on
# the Karras grid, where PLMS/PNDM need variable-step weights to keep their order; with the paper's
# equal-step weights (equal_steps=True) they fall to order 2 there. iPNDM keeps the equal-step
# weights: its Euler start makes it order 2 on any grid.
CASES = (
    ("euler", {}, _log_grid(10.0, 0.1), (64, 128), 1),
    ("heun", {}, _log_grid(10.0, 0.1), (64, 128), 2),
    ("dpm_solver_2", {}, _log_grid(10.0, 0.1), (64, 128), 2),
    ("dpm_solver_3", {}, _log_grid(10.0, 0.1), (64, 128), 3),
    ("dpmpp_2s", {}, _log_grid(10.0, 0.1), (64, 128), 2),
    ("dpmpp_2m", {}, _log_grid(10.0, 0.1), (64, 128), 2),
    ("dpmpp_3m", {}, _log_grid(3.0, 0.1), (128, 256), 2),
    ("deis", {}, _log_grid(3.0, 0.1), (128, 256), 2),
    ("lms", {}, _log_grid(3.0, 0.1), (128, 256), 2),
    ("ipndm", {}, _lin_grid(1.5, 0.3), (256, 512), 2),
    ("plms", {}, _lin_grid(1.5, 0.3), (256, 512), 3),
    ("pndm", {}, _lin_grid(1.5, 0.3), (128, 256), 4),
    ("ipndm", {}, _karras_grid(3.0, 0.1), (128, 256), 2),
    ("plms", {}, _karras_grid(3.0, 0.1), (128, 256), 3),
    ("pndm", {}, _karras_grid(3.0, 0.1), (128, 256), 4),
)
# Not the registered order: the paper's equal-step weights on a non-uniform grid.
EQUAL_STEP_CASES = (
    ("plms", {"equal_steps": True}, _karras_grid(3.0, 0.1), (128, 256), 2),
    ("pndm", {"equal_steps": True}, _karras_grid(3.0, 0.1), (128, 256), 2),
)


def _errors(name, options, make_grid, steps):
  x = 3.0 * jax.random.normal(jax.random.key(0), (8, 3), jnp.float64)
  gauss = testing.gaussian(MEAN, STD)
  errs = []
  for n in steps:
    sigmas = make_grid(n)
    exact = testing.gaussian_ode_solution(x, sigmas[0], sigmas[-1], MEAN, STD)
    out = solvers.solve(name, gauss.denoiser, x, sigmas, **options)
    chex.assert_type(out, jnp.float64)
    errs.append(float(jnp.max(jnp.abs(out - exact))))
  return np.array(errs)


class OrderTest(parameterized.TestCase):

  @parameterized.parameters(*CASES)
  def test_error_falls_at_order(self, name, options, make_grid, steps, order):
    with jax.enable_x64(True):
      errs = _errors(name, options, make_grid, steps)
    slopes = -np.diff(np.log2(errs))
    self.assertTrue(np.all(np.isfinite(slopes)), msg=f"{name}: errors {errs}")
    np.testing.assert_allclose(slopes[-1], order, atol=0.3, err_msg=f"{name}: errors {errs}")
    self.assertEqual(solvers.SOLVERS[name].order, order)

  @parameterized.parameters(*EQUAL_STEP_CASES)
  def test_equal_step_weights_lose_order_on_karras_grid(
      self, name, options, make_grid, steps, order
  ):
    with jax.enable_x64(True):
      errs = _errors(name, options, make_grid, steps)
    slopes = -np.diff(np.log2(errs))
    np.testing.assert_allclose(slopes[-1], order, atol=0.3, err_msg=f"{name}: errors {errs}")

  @parameterized.parameters("plms", "pndm")
  def test_variable_step_weights_are_classical_on_uniform_grid(self, name):
    """On equal σ steps the variable-step weights are PNDM Eq. 12's, up to rounding."""
    with jax.enable_x64(True):
      x = 3.0 * jax.random.normal(jax.random.key(0), (8, 3), jnp.float64)
      gauss = testing.gaussian(MEAN, STD)
      sigmas = np.linspace(1.5, 0.3, 13)
      variable = solvers.solve(name, gauss.denoiser, x, sigmas)
      equal = solvers.solve(name, gauss.denoiser, x, sigmas, equal_steps=True)
      np.testing.assert_allclose(np.asarray(variable), np.asarray(equal), rtol=0, atol=1e-13)

  def test_adaptive_meets_tolerance(self):
    with jax.enable_x64(True):
      x = 3.0 * jax.random.normal(jax.random.key(0), (8, 3), jnp.float64)
      gauss = testing.gaussian(MEAN, STD)
      for rtol, bound, end in ((1e-9, 1e-8, 0.0),):
        sigmas = np.array([10.0, end])
        exact = testing.gaussian_ode_solution(x, 10.0, end, MEAN, STD)
        out = solvers.solve("adaptive", gauss.denoiser, x, sigmas, rtol=rtol, atol=rtol)
        self.assertLess(float(jnp.max(jnp.abs(out - exact))), bound)


class FormulaOrderTest(parameterized.TestCase):
  """The multistep formulas themselves, given exact history (no start-up error)."""

  @parameterized.parameters((1.0, 3), (2.0, 4))
  def test_dpmpp_3m_local_error(self, d2_scale, local_order):
    """One order-3 DPM-Solver++ update from the exact trajectory: the local error is O(h^{p+1}).

    The official coefficient (d2_scale = 1) gives local order 3 (a second-order method); the
    corrected D2 (d2_scale = 2) gives local order 4.
    """
    with jax.enable_x64(True):
      x0 = jnp.array([[7.0, -3.0, 2.0]], jnp.float64)
      gauss = testing.gaussian(MEAN, STD)
      exact = lambda s: testing.gaussian_ode_solution(x0, 10.0, s, MEAN, STD)
      den = lambda s: gauss.denoiser(exact(s), jnp.array([s], jnp.float64))
      update = jax.jit(ode.dpmpp_multistep_update, static_argnums=(6, 7))
      errs = []
      for h in (0.2, 0.1, 0.05, 0.025):
        lam0 = -np.log(2.0)
        s2, s1, s0, s_next = np.exp(-(lam0 + h * np.array([-2.0, -1.0, 0.0, 1.0])))
        m_hist = jnp.stack([den(s1), den(s2)])
        out = update(
            exact(s0),
            den(s0),
            m_hist,
            jnp.float64(s0),
            jnp.array([s1, s2]),
            jnp.float64(s_next),
            3,
            d2_scale,
        )
        errs.append(float(jnp.max(jnp.abs(out - exact(s_next)))))
      slopes = -np.diff(np.log2(errs))
      np.testing.assert_allclose(slopes[-1], local_order, atol=0.3, err_msg=str(errs))

  @parameterized.parameters(1, 2, 3, 4)
  def test_lms_coefficients_integrate_polynomials_exactly(self, k):
    """C_j = ∫ L_j: Σ_j C_j p(σ_j) = ∫ p for every polynomial p of degree < k (order k)."""
    with jax.enable_x64(True):
      taus = jnp.array([1.0, 1.3, 1.7, 2.2][:k], jnp.float64)
      sigma, sigma_next = jnp.float64(1.0), jnp.float64(0.6)
      c = multistep._lagrange_coeffs(sigma, sigma_next, taus, k, lambda s: s)
      for degree in range(k):
        approx = float(jnp.sum(c * taus**degree))
        exact = (0.6 ** (degree + 1) - 1.0) / (degree + 1)
        np.testing.assert_allclose(approx, exact, rtol=1e-12, atol=1e-14)

  @parameterized.parameters(1, 2, 3, 4)
  def test_lagrange_coefficients_reduce_to_adams_bashforth_on_equal_steps(self, k):
    """History at σ + j h, step to σ - h: C_j = -h b_j with b_j the equal-step AB-k weights."""
    with jax.enable_x64(True):
      h = 0.1
      taus = jnp.asarray(0.7 + h * np.arange(4)[:k], jnp.float64)
      c = multistep._lagrange_coeffs(jnp.float64(0.7), jnp.float64(0.7 - h), taus, k, lambda s: s)
      np.testing.assert_allclose(
          np.asarray(c), -h * np.array(multistep._AB[k - 1]), rtol=1e-12, atol=1e-15
      )

  @parameterized.parameters(1, 2, 3, 4)
  def test_adams_bashforth_weights_are_exact_for_polynomials(self, k):
    """Equal-step AB-k: h Σ_j b_j p(-j h) = ∫_0^h p for deg p < k (PNDM Eq. 12 weights)."""
    weights = np.array(multistep._AB[k - 1])
    for degree in range(k):
      approx = np.sum(weights * (-np.arange(k, dtype=np.float64)) ** degree)
      np.testing.assert_allclose(approx, 1.0 / (degree + 1), rtol=1e-12)
