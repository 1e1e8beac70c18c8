"""IHDM against exact answers: Gaussian data x ~ N(m, Σ) on 4×4 images, where the heat operator F_k
is a known linear map and E[u_{k−1} | ũ_k] is linear in closed form.

Sigma points make the Monte Carlo exact: 2n points μ ± √n L e_j of a Gaussian N(μ, LLᵀ) in R^n
have exactly its mean and covariance, so the batch mean of any quadratic function of them (the
loss of a linear predictor) is its expectation, and any affine map of them (a sampler step with a
linear predictor) has exactly the pushed-forward mean and covariance.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import absltest

from diffjax import config_lib
from diffjax.core import heat
from diffjax.methods import ihdm

H = W = 4
D = H * W
SIGMA = 0.1  # training noise σ
DELTA = 0.15  # sampling noise δ


def sigma_points(mean, cov):
  """[2n, n] points with exactly the mean and covariance of N(mean, cov)."""
  n = mean.shape[0]
  chol = np.linalg.cholesky(cov)
  offsets = np.sqrt(n) * chol.T  # rows √n L e_j
  return np.concatenate([mean + offsets, mean - offsets]).astype(np.float32)


def dense_heat(tau):
  """F(τ) as a [D, D] matrix (columns: heat of the basis images)."""
  basis = jnp.eye(D).reshape(D, H, W, 1)
  return np.asarray(heat.heat(basis, jnp.full((D,), tau)).reshape(D, D).T, np.float64)


class IHDMExactTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(0)
    self.m = rng.normal(size=D)
    a = rng.normal(size=(D, D))
    self.cov = a @ a.T / D + 0.1 * np.eye(D)
    self.taus = np.asarray(heat.tau_from_blur_std(ihdm.blur_sigmas(3, 0.5, 2.0)), np.float64)
    self.F = [dense_heat(t) for t in self.taus]  # F_0 = I, ..., F_3

  def exact(self, k):
    """E[u_{k−1} | ũ_k] = A ũ_k + b, and the minimum loss tr Cov[u_{k−1} | ũ_k]."""
    fk, fp = self.F[k], self.F[k - 1]
    s_uu = fk @ self.cov @ fk.T + SIGMA**2 * np.eye(D)
    a = fp @ self.cov @ fk.T @ np.linalg.inv(s_uu)
    b = fp @ self.m - a @ fk @ self.m
    min_loss = np.trace(fp @ self.cov @ fp.T - a @ fk @ self.cov @ fp.T)
    return a, b, min_loss

  def test_loss_minimiser_is_the_bayes_predictor(self):
    """At the exact predictor the expected loss equals tr Cov[u_{k−1}|ũ_k] and its gradient with
    respect to a linear model (P, c) vanishes; a perturbed P has a larger loss."""
    k = 2
    a, b, min_loss = self.exact(k)
    pts = sigma_points(
        np.concatenate([self.m, np.zeros(D)]),
        np.block([[self.cov, np.zeros((D, D))], [np.zeros((D, D)), np.eye(D)]]),
    )
    x, eps = pts[:, :D].reshape(-1, H, W, 1), pts[:, D:].reshape(-1, H, W, 1)
    ks = jnp.full((x.shape[0],), k)

    def loss(p, c):
      def predict(u, _):
        flat = u.reshape(u.shape[0], D)
        return (flat @ p.T + c - flat).reshape(u.shape)  # residual parameterisation

      return jnp.mean(ihdm.per_example_loss(predict, x, ks, eps, self.taus, SIGMA))

    p0, c0 = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    value, (gp, gc) = value_and_grad(p0, c0)
    value_off, (gp_off, _) = value_and_grad(p0 + 0.05, c0)
    self.assertAlmostEqual(float(value), min_loss, delta=1e-4 * min_loss)
    self.assertLess(float(jnp.max(jnp.abs(gp))), 1e-3 * float(jnp.max(jnp.abs(gp_off))))
    self.assertLess(float(jnp.max(jnp.abs(gc))), 1e-4)
    self.assertGreater(float(value_off), min_loss * 1.01)

  def _predictor(self):
    """The exact residual f_k(u) = A_k u + b_k − u for k = 1..3 (index k of stacked arrays)."""
    exact = [self.exact(k) for k in (1, 2, 3)]
    a = jnp.asarray(np.stack([np.eye(D)] + [e[0] for e in exact]), jnp.float32)
    b = jnp.asarray(np.stack([np.zeros(D)] + [e[1] for e in exact]), jnp.float32)

    def predict(u, k):
      flat = u.reshape(u.shape[0], D)
      return (jnp.einsum("bij,bj->bi", a[k], flat) + b[k] - flat).reshape(u.shape)

    return predict

  def test_one_reverse_step_law(self):
    """ũ_3 ~ its true law, one step u_2 = A ũ_3 + b + δ ξ: mean F_2 m (the Bayes predictor is
    unbiased) and covariance A Cov[ũ_3] Aᵀ + δ² I, exactly."""
    a, _, _ = self.exact(3)
    f3, f2 = self.F[3], self.F[2]
    cov_u = f3 @ self.cov @ f3.T + SIGMA**2 * np.eye(D)
    pts = sigma_points(
        np.concatenate([f3 @ self.m, np.zeros(D)]),
        np.block([[cov_u, np.zeros((D, D))], [np.zeros((D, D)), np.eye(D)]]),
    )
    u, xi = pts[:, :D].reshape(-1, H, W, 1), pts[:, D:].reshape(-1, H, W, 1)
    out, mean = ihdm.reverse_step(self._predictor(), jnp.asarray(u), 3, jnp.asarray(xi), DELTA)
    out = np.asarray(out, np.float64).reshape(-1, D)
    chex.assert_trees_all_close(out.mean(0), f2 @ self.m, atol=1e-4)
    emp = (out - out.mean(0)).T @ (out - out.mean(0)) / out.shape[0]
    chex.assert_trees_all_close(emp, a @ cov_u @ a.T + DELTA**2 * np.eye(D), atol=1e-4)
    chex.assert_trees_all_close(np.asarray(out - mean.reshape(-1, D)), DELTA * xi.reshape(-1, D))

  def test_chain_runs_levels_down_and_returns_the_mean(self):
    """From u_3 = F_3 m (no prior noise) the chain's final mean μ_0 has expectation m exactly (each
    exact step maps E[u_k] = F_k m to F_{k−1} m; a wrong level order breaks it)."""
    n = 4096
    u3 = jnp.broadcast_to(
        jnp.asarray(self.F[3] @ self.m, jnp.float32).reshape(1, H, W, 1), (n, H, W, 1)
    )
    chain = jax.jit(ihdm.sample_chain, static_argnums=(0, 2, 3))
    out = chain(self._predictor(), u3, 3, DELTA, jax.random.key(0))
    out = np.asarray(out).reshape(n, D)
    # Its spread: the δ noise of the steps k = 3, 2 pushed through the later exact steps.
    a1, a2 = self.exact(1)[0], self.exact(2)[0]
    cov = DELTA**2 * (a1 @ a1.T + a1 @ a2 @ a2.T @ a1.T)
    se = np.sqrt(np.diag(cov) / n)
    self.assertLess(float(np.max(np.abs(out.mean(0) - self.m) / se)), 5.0)
    chex.assert_trees_all_close(np.cov(out.T), cov, atol=0.15 * np.max(np.abs(cov)))

  def test_schedule_and_config_errors(self):
    """Official schedule: σ_B,0 = 0, then K log-spaced stds from σ_min to σ_max."""
    s = ihdm.blur_sigmas(50, 0.5, 20.0)
    self.assertEqual(s.shape, (51,))
    chex.assert_trees_all_close(s[[0, 1, -1]], np.array([0.0, 0.5, 20.0], np.float32))
    chex.assert_trees_all_close(np.diff(np.log(s[1:])), np.full(49, np.log(40.0) / 49), atol=1e-5)
    config = config_lib.load("configs/ihdm/fashion_mnist.py", "smoke")
    config.method.blur_sigma_min = 0.0
    with self.assertRaisesRegex(ValueError, "method.blur_sigma_min"):
      ihdm.IHDM(config, element_shape=(8, 8, 1))


if __name__ == "__main__":
  absltest.main()
