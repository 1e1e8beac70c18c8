"""PF-ODE log-likelihood against the exact log-density of Gaussian data under its exact denoiser."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from diffjax.core import gaussian_reference
from diffjax.solvers import likelihood

SIGMA_MIN, SIGMA_MAX = 0.01, 50.0


def _log_normal(x, var):
  """log N(x; 0, diag(var)) summed over all but the batch axis."""
  x = np.asarray(x, np.float64).reshape(x.shape[0], -1)
  var = np.broadcast_to(np.asarray(var, np.float64).reshape(-1), x.shape[1:])
  return -0.5 * np.sum(x**2 / var + np.log(2 * np.pi * var), axis=1)


def _full_cov_denoiser(cov):
  """D(x, σ) = Σ(Σ + σ²I)⁻¹x for x ~ N(0, Σ), through Σ's eigendecomposition."""
  evals, evecs = np.linalg.eigh(cov)
  evals, evecs = jnp.asarray(evals, jnp.float32), jnp.asarray(evecs, jnp.float32)

  def denoiser(x, sigma):
    y = x @ evecs
    return (y * evals / (evals + sigma[:, None] ** 2)) @ evecs.T

  return denoiser


def _exact_end_logp(aux, var):
  """log p at σ_min from the solved path and the exact marginal N(0, var + σ_max²) at σ_max."""
  return _log_normal(aux["x_end"], np.asarray(var) + SIGMA_MAX**2) + np.asarray(aux["delta_logp"])


class PFODELikelihoodTest(absltest.TestCase):

  def test_isotropic_gaussian_equals_true_density(self):
    # x ~ N(0, v I): the prior N(0, (σ_max² + v) I) is the exact marginal, so log p is exact.
    v = 0.5
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 3)) * 1.3
    den = gaussian_reference.optimal_denoiser(jnp.zeros(()), jnp.asarray(v))
    for div in ("exact", "rademacher"):
      logp, _ = jax.jit(
          lambda x, d=div: likelihood.pfode_log_likelihood(
              den,
              x,
              jax.random.PRNGKey(1),
              sigma_min=SIGMA_MIN,
              sigma_max=SIGMA_MAX,
              num_steps=64,
              divergence=d,
              data_var=v,
          )
      )(x)
      np.testing.assert_allclose(logp, _log_normal(x, v + SIGMA_MIN**2), atol=2e-4, rtol=1e-5)

  def test_anisotropic_gaussian_rademacher_is_exact(self):
    # A diagonal Jacobian: vᵀJv = tr J for every Rademacher v, so Hutchinson is exact too.
    var = jnp.asarray([0.05, 0.3, 1.0, 2.5])
    x = jax.random.normal(jax.random.PRNGKey(2), (5, 4)) * jnp.sqrt(var)
    den = gaussian_reference.optimal_denoiser(jnp.zeros(()), var)
    kw = dict(sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, num_steps=64)
    _, aux_r = likelihood.pfode_log_likelihood(
        den, x, jax.random.PRNGKey(3), divergence="rademacher", **kw
    )
    _, aux_e = likelihood.pfode_log_likelihood(den, x, divergence="exact", **kw)
    truth = _log_normal(x, var + SIGMA_MIN**2)
    np.testing.assert_allclose(_exact_end_logp(aux_r, var), truth, atol=3e-4)
    np.testing.assert_allclose(aux_r["delta_logp"], aux_e["delta_logp"], atol=1e-4)

  def test_correlated_gaussian_exact_and_hutchinson_mean(self):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T / 3 + 0.1 * np.eye(3)
    den = _full_cov_denoiser(cov)
    x = jnp.asarray(rng.multivariate_normal(np.zeros(3), cov, size=2), jnp.float32)
    kw = dict(sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, num_steps=64)
    _, aux = likelihood.pfode_log_likelihood(den, x, divergence="exact", **kw)
    c0, c1 = cov + SIGMA_MIN**2 * np.eye(3), cov + SIGMA_MAX**2 * np.eye(3)

    def mvn(z, c):
      z = np.asarray(z, np.float64)
      return -0.5 * (np.einsum("bi,ij,bj->b", z, np.linalg.inv(c), z) + np.linalg.slogdet(c)[1]) - (
          1.5 * np.log(2 * np.pi)
      )

    truth = mvn(x, c0)
    np.testing.assert_allclose(
        mvn(aux["x_end"], c1) + np.asarray(aux["delta_logp"]), truth, atol=3e-4
    )
    # Gaussian probes: unbiased, not exact (off-diagonal Jacobian); their mean over many probes.
    xs = jnp.repeat(x[:1], 4000, axis=0)
    _, aux_g = jax.jit(
        lambda xs: likelihood.pfode_log_likelihood(
            den,
            xs,
            jax.random.PRNGKey(4),
            divergence="gaussian",
            num_steps=12,
            **{k: v for k, v in kw.items() if k != "num_steps"},
        )
    )(xs)
    _, aux_e12 = likelihood.pfode_log_likelihood(
        den, x[:1], divergence="exact", sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, num_steps=12
    )
    d = np.asarray(aux_g["delta_logp"], np.float64)
    self.assertLess(
        abs(d.mean() - float(aux_e12["delta_logp"][0])), 4 * d.std() / math.sqrt(len(d))
    )
    self.assertGreater(d.std(), 1e-3)  # the estimator is noisy here: the check above has teeth

  def test_rk4_converges_faster_than_heun(self):
    v = 0.2
    x = jnp.asarray([[0.3, -0.7]])
    den = gaussian_reference.optimal_denoiser(jnp.zeros(()), jnp.asarray(v))
    truth = _log_normal(x, v + SIGMA_MIN**2)[0]
    err = {}
    for m in ("heun", "rk4"):
      for n in (32, 64):
        logp, _ = likelihood.pfode_log_likelihood(
            den,
            x,
            method=m,
            divergence="exact",
            num_steps=n,
            sigma_min=SIGMA_MIN,
            sigma_max=SIGMA_MAX,
            data_var=v,
        )
        err[m, n] = abs(float(logp[0]) - truth)
    self.assertGreater(err["heun", 32] / err["heun", 64], 3.0)  # order 2: ~4x
    self.assertGreater(err["rk4", 32] / err["rk4", 64], 10.0)  # order 4: ~16x
    self.assertLess(err["rk4", 32], err["heun", 64])

  def test_bpd_offset_and_dequantisation(self):
    den = gaussian_reference.optimal_denoiser(jnp.zeros(()), jnp.asarray(0.3))
    x = jnp.asarray([[0.2, -1.0, 1.0, 0.0]])
    kw = dict(sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, num_steps=8, divergence="exact")
    out = likelihood.bpd(den, x, jax.random.PRNGKey(0), dequantize=False, **kw)
    logp, _ = likelihood.pfode_log_likelihood(den, x, **kw)
    expected = -float(logp[0]) / (4 * math.log(2)) + math.log2(127.5)
    self.assertAlmostEqual(float(out["bpd"][0]), expected, places=4)
    self.assertAlmostEqual(likelihood.bin_width("vdm"), 2 / 256)
    deq = likelihood.bpd(den, x, jax.random.PRNGKey(0), **kw)
    self.assertNotAlmostEqual(float(deq["bpd"][0]), float(out["bpd"][0]), places=4)

  def test_bad_arguments(self):
    den = gaussian_reference.optimal_denoiser(jnp.zeros(()), jnp.asarray(1.0))
    x = jnp.zeros((1, 2))
    with self.assertRaisesRegex(ValueError, "divergence"):
      likelihood.pfode_log_likelihood(den, x, divergence="skilling")
    with self.assertRaisesRegex(ValueError, "sigma_min"):
      likelihood.pfode_log_likelihood(den, x, sigma_min=0.0, divergence="exact")


if __name__ == "__main__":
  absltest.main()
