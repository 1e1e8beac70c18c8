"""Stochastic interpolants with Gaussian ends: the closed-form velocity and denoiser are the
regressions of the loss's targets, and the ODE/SDE samplers with them transport N(0, I) to the
data's Gaussian."""

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax.core import interpolants

MEAN = np.array([1.0, -0.5])
COV = np.array([[0.5, 0.2], [0.2, 0.3]])


def _paths():
  return [
      interpolants.Interpolant("linear", "bridge", 1.0),
      interpolants.Interpolant("trig", "bridge", 0.5),
      interpolants.Interpolant("linear", "none"),
  ]


class ClosedFormTest(parameterized.TestCase):

  @parameterized.parameters((0, 0.3), (1, 0.8), (2, 0.6))
  def test_fields_are_the_least_squares_regressions(self, index, t):
    """Least squares of the loss's targets (a'x + b'y and ξ) on (z, 1) over 400k samples gives
    the closed-form affine maps: the loss is minimised by the exact heads."""
    path = _paths()[index]
    n = 400_000
    rng = np.random.default_rng(index)
    x = rng.multivariate_normal(MEAN, COV, size=n).astype(np.float32)
    y, xi = rng.standard_normal((2, n, 2)).astype(np.float32)
    tt = jnp.full((n,), t)
    z, v_target = path.sample(jnp.asarray(x), jnp.asarray(y), jnp.asarray(xi), tt)
    design = np.concatenate([np.asarray(z, np.float64), np.ones((n, 1))], axis=1)
    fields = interpolants.gaussian_fields(path, MEAN, COV)
    probe = np.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    v_exact, eta_exact = fields(jnp.asarray(probe), jnp.full((3,), t))
    probe_design = np.concatenate([probe, np.ones((3, 1))], axis=1)
    coef = np.linalg.lstsq(design, np.asarray(v_target, np.float64), rcond=None)[0]
    np.testing.assert_allclose(probe_design @ coef, v_exact, atol=0.01)
    if path.stochastic:
      coef = np.linalg.lstsq(design, xi.astype(np.float64), rcond=None)[0]
      np.testing.assert_allclose(probe_design @ coef, eta_exact, atol=0.01)
    else:
      self.assertIsNone(eta_exact)

  @parameterized.parameters((0, 0.2), (1, 0.6), (2, 0.4))
  def test_drift_solves_the_continuity_equation(self, index, t):
    """u = v + γ'η is affine, u(z) = A(z − a m) + c; the Gaussian marginal N(a m, Σ_t) with
    Σ_t = a²C + (b² + γ²)I is transported by it iff c = a'm and AΣ_t + Σ_tAᵀ = dΣ_t/dt
    = 2aa'C + 2(bb' + γγ')I."""
    path = _paths()[index]
    fields = interpolants.gaussian_fields(path, MEAN, COV)
    tt = jnp.full((3,), t)
    (a, b, g), (da, db, dg) = path.coefficients(tt[:1]), path.derivatives(tt[:1])
    a, b, g, da, db, dg = (float(q[0]) for q in (a, b, g, da, db, dg))
    probe = a * MEAN + np.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    u = np.asarray(path.drift(*fields(jnp.asarray(probe, jnp.float32), tt), tt), np.float64)
    c, mat = u[0], (u[1:] - u[0]).T
    np.testing.assert_allclose(c, da * MEAN, atol=1e-5)
    sigma_t = a * a * COV + (b * b + g * g) * np.eye(2)
    want = 2 * a * da * COV + 2 * (b * db + g * dg) * np.eye(2)
    np.testing.assert_allclose(mat @ sigma_t + sigma_t @ mat.T, want, atol=1e-4)


class SamplerTest(parameterized.TestCase):

  @parameterized.product(index=[0, 1, 2], solver=["heun", "sde"])
  def test_exact_fields_transport_noise_to_the_data(self, index, solver):
    path = _paths()[index]
    if solver == "sde" and not path.stochastic:
      with self.assertRaisesRegex(ValueError, "gamma='bridge'"):
        interpolants.sde_solve(path, None, jnp.zeros((1, 2)), 2, jax.random.PRNGKey(0), 1.0)
      return
    fields = interpolants.gaussian_fields(path, MEAN, COV)
    y = jax.random.normal(jax.random.PRNGKey(index), (20_000, 2))
    if solver == "heun":
      x = jax.jit(lambda y: interpolants.ode_solve(path, fields, y, 50, "heun"))(y)
    else:
      run = lambda y: interpolants.sde_solve(path, fields, y, 400, jax.random.PRNGKey(1), 1.0)
      x = jax.jit(run)(y)
    x = np.asarray(x, np.float64)
    np.testing.assert_allclose(x.mean(0), MEAN, atol=0.03)
    np.testing.assert_allclose(np.cov(x, rowvar=False), COV, atol=0.03)

  def test_euler_order_one_heun_order_two(self):
    path = _paths()[1]
    fields = interpolants.gaussian_fields(path, MEAN, COV)
    y = jax.random.normal(jax.random.PRNGKey(0), (64, 2))
    ref = interpolants.ode_solve(path, fields, y, 2000, "heun")
    err = lambda n, m: float(jnp.max(jnp.abs(interpolants.ode_solve(path, fields, y, n, m) - ref)))
    self.assertAlmostEqual(err(20, "euler") / err(40, "euler"), 2.0, delta=0.3)
    self.assertAlmostEqual(err(20, "heun") / err(40, "heun"), 4.0, delta=0.8)
