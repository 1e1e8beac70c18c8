r"""The Schrödinger bridge between two Gaussians in closed form (Bunne et al. 2023,
arXiv:2202.05722, Theorem 3; the static part is the entropic OT plan of Janati et al. 2020 and
Mallasto et al. 2021).

For π₀ = N(m₀, Σ₀), π₁ = N(m₁, Σ₁) and the reference σ·W on [0, 1], the SB coupling of
(X₀, X₁) is Gaussian with these marginals and cross-covariance
  C_σ = ½ (Σ₀^{1/2} D_σ Σ₀^{−1/2} − σ² I),   D_σ = (4 Σ₀^{1/2} Σ₁ Σ₀^{1/2} + σ⁴ I)^{1/2}.
It is the entropic OT plan for ‖x − y‖² with ε = 2σ²: π(x, y) ∝ f(x) g(y) exp(−‖x − y‖²/(2σ²)),
so the joint precision's off-diagonal block is −I/σ² (what tests/core/test_gaussian_sb.py checks).
For Σ₀ = Σ₁ = I: C = ½(sqrt(4 + σ⁴) − σ²)·I, i.e. (√5 − 1)/2·I at σ² = 1.
"""

from __future__ import annotations

import numpy as np


def _sqrtm(a: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((a + a.T) / 2.0)
  return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


def cross_covariance(cov0: np.ndarray, cov1: np.ndarray, sigma: float) -> np.ndarray:
  """C_σ = Cov(X₀, X₁) of the SB coupling, [d, d] (float64)."""
  cov0, cov1 = np.asarray(cov0, np.float64), np.asarray(cov1, np.float64)
  d = cov0.shape[0]
  s0 = _sqrtm(cov0)
  s2 = float(sigma) ** 2
  dmat = _sqrtm(4.0 * s0 @ cov1 @ s0 + s2 * s2 * np.eye(d))
  return 0.5 * (s0 @ dmat @ np.linalg.inv(s0) - s2 * np.eye(d))


def joint_covariance(cov0, cov1, sigma) -> np.ndarray:
  """The [2d, 2d] covariance of (X₀, X₁) under the SB coupling."""
  c = cross_covariance(cov0, cov1, sigma)
  return np.block([[np.asarray(cov0, np.float64), c], [c.T, np.asarray(cov1, np.float64)]])


def coupling_errors(x0, x1, mean0, cov0, mean1, cov1, sigma) -> dict:
  """Errors of a sampled coupling (x0 [N, d], x1 [N, d]) against the SB: Frobenius norms of the
  differences of each end's mean and covariance and of the cross-covariance (sample estimates),
  each divided by sqrt(d) (per-dimension RMS, comparable across d)."""
  x0, x1 = np.asarray(x0, np.float64), np.asarray(x1, np.float64)
  d = x0.shape[1]
  joint = np.cov(np.concatenate([x0, x1], axis=1), rowvar=False)
  want = joint_covariance(cov0, cov1, sigma)
  norm = lambda a: float(np.linalg.norm(a) / np.sqrt(d))  # pylint: disable=unnecessary-lambda-assignment
  return {
      "mean0": norm(x0.mean(0) - np.asarray(mean0)),
      "mean1": norm(x1.mean(0) - np.asarray(mean1)),
      "cov0": norm(joint[:d, :d] - want[:d, :d]),
      "cov1": norm(joint[d:, d:] - want[d:, d:]),
      "cross_cov": norm(joint[:d, d:] - want[:d, d:]),
      "cross_cov_diag_mean": float(np.mean(np.diag(joint[:d, d:]))),
  }
