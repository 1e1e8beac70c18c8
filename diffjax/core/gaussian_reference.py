r"""Closed forms for Gaussian data x ~ N(μ, diag(v)): the exact answers the core is tested against.

With z = α x + σ ε and λ = log(α²/σ²) (per dimension, μ and v broadcast against [B, ...] data):
  optimal x̂₀(z) = E[x | z] = μ + α v/(α² v + σ²) (z - α μ)
  E‖x - x̂₀*‖²    = v/(1 + v e^λ)            (x-MMSE per dim)
  E‖ε - ε̂*‖²     = v e^λ/(1 + v e^λ)        (ε-MMSE per dim, = e^λ · x-MMSE)
and the I-MMSE integral of VDM's diffusion loss (Kingma et al. 2021, eq. 17) is
  ½ ∫_{λ_min}^{λ_max} v e^λ/(1 + v e^λ) dλ = ½ log((1 + v e^{λ_max}) / (1 + v e^{λ_min})).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from diffjax.core import parameterization as param_lib

Array = jax.Array


def optimal_x0(z: Array, alpha: Array, sigma: Array, mean: Array, var: Array) -> Array:
  """E[x | z_t = z] for x ~ N(mean, diag(var)). z: [B, ...]; alpha, sigma: [B]."""
  a, s = param_lib.bcast(alpha, z), param_lib.bcast(sigma, z)
  return mean + a * var / (a**2 * var + s**2) * (z - a * mean)


def optimal_denoiser(mean: Array, var: Array):
  """σ-frame denoiser D(x, σ̃) = μ + v/(v + σ̃²)(x - μ) (x = x₀ + σ̃ ε); σ̃ scalar or [B]."""

  def denoiser(x, sigma):
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
    return optimal_x0(x, jnp.ones_like(sigma), sigma, mean, var)

  return denoiser


def optimal_raw_fn(schedule: Any, param: param_lib.Parameterization, mean: Array, var: Array):
  """raw_fn(z_in, noise_cond) of the Bayes-optimal network under (schedule, param)."""

  def raw_fn(z_in, noise_cond):
    t = param.t_from_noise_cond(noise_cond, schedule)
    alpha, sigma = schedule.alpha_sigma(t)
    z = z_in / param_lib.bcast(param.input_scale(alpha, sigma), z_in)
    x0 = optimal_x0(z, alpha, sigma, mean, var)
    eps = (z - param_lib.bcast(alpha, z) * x0) / param_lib.bcast(sigma, z)
    return param.raw_target(x0, eps, alpha, sigma)

  return raw_fn


def eps_mmse(lam: Array, var: Array) -> Array:
  """Per-dimension E‖ε - ε̂*‖² at log-SNR λ; lam [B] -> [B, *var.shape]."""
  snr_v = jnp.exp(lam).reshape(lam.shape + (1,) * jnp.ndim(var)) * var
  return snr_v / (1.0 + snr_v)


def diffusion_loss(logsnr_min: float, logsnr_max: float, var: Array) -> Array:
  """Continuous-time diffusion loss with the optimal denoiser, nats (sum over dims)."""
  return 0.5 * jnp.sum(
      jnp.log1p(var * math.exp(logsnr_max)) - jnp.log1p(var * math.exp(logsnr_min))
  )


def discrete_diffusion_loss(lams: Array, var: Array) -> Array:
  """T-step diffusion loss, λ_0 > ... > λ_T: ½ Σ_i (e^{λ_{i-1}} - e^{λ_i}) Σ_d v/(1 + v e^{λ_i})."""
  lams = jnp.asarray(lams)
  x_mmse = var / (1.0 + var * jnp.exp(lams[1:]).reshape((-1,) + (1,) * jnp.ndim(var)))
  d_snr = jnp.exp(lams[:-1]) - jnp.exp(lams[1:])
  return 0.5 * jnp.sum(d_snr * jnp.sum(x_mmse.reshape(x_mmse.shape[0], -1), axis=1))


def prior_kl(mean: Array, var: Array, alpha1: float, sigma1: float) -> Array:
  """E_x KL(N(α₁ x, σ₁²) ‖ N(0, α₁² + σ₁²)) summed over dims, nats."""
  p = alpha1**2 + sigma1**2
  second = sigma1**2 + alpha1**2 * (jnp.square(mean) + var)
  return 0.5 * jnp.sum(second / p - 1.0 - jnp.log(sigma1**2 / p) + jnp.zeros_like(var))


def gaussian_recon_nll(var: Array, alpha0: float, sigma0: float) -> Array:
  """E[-log N(x; z₀/α₀, σ̃₀²)] summed over dims (z₀ = α₀x + σ₀ε), nats."""
  st2 = (sigma0 / alpha0) ** 2
  return 0.5 * jnp.sum(jnp.log(2.0 * math.pi * st2) + 1.0 + jnp.zeros_like(var))


def elbo(mean: Array, var: Array, schedule: Any) -> dict[str, Array]:
  """Expected continuous-time VDM ELBO terms (nats per example) with the optimal denoiser and a
  Gaussian decoder, on `schedule`'s λ range."""
  with jax.ensure_compile_time_eval():
    a, s = schedule.alpha_sigma(jnp.asarray([0.0, 1.0]))
    a0, s0, a1, s1 = float(a[0]), float(s[0]), float(a[1]), float(s[1])
  terms = {
      "prior": prior_kl(mean, var, a1, s1),
      "recon": gaussian_recon_nll(var, a0, s0),
      "diffusion": diffusion_loss(schedule.logsnr_min, schedule.logsnr_max, var),
  }
  terms["total"] = terms["prior"] + terms["recon"] + terms["diffusion"]
  return terms


def nll(mean: Array, var: Array) -> Array:
  """E[-log N(x; μ, v)] = Σ_d ½ log(2πe v), the value a tight bound reaches."""
  return 0.5 * jnp.sum(jnp.log(2.0 * math.pi * math.e * var) + jnp.zeros_like(mean))


# -- Full-covariance Gaussian data and linear-Gaussian measurements (guidance, inverse problems) --
# x₀ ~ N(μ, Σ) in d dimensions, x = x₀ + σ ε (σ-frame), y = A x₀ + σ_y η. Everything is Gaussian:
#   E[x₀ | x]       = μ + Σ (Σ + σ² I)⁻¹ (x - μ),    Cov[x₀ | x] = Σ - Σ (Σ + σ² I)⁻¹ Σ
#   p(y | x)        = N(y; A E[x₀ | x], σ_y² I + A Cov[x₀ | x] Aᵀ)        (exact noisy likelihood)
#   p(x₀ | y)       = N(m, C): C = (Σ⁻¹ + AᵀA/σ_y²)⁻¹, m = C (Σ⁻¹ μ + Aᵀ y/σ_y²)
#   E[x₀ | x, y]    = P⁻¹ (Σ⁻¹ μ + x/σ² + Aᵀ y/σ_y²), P = Σ⁻¹ + I/σ² + AᵀA/σ_y².
# A noiseless mask (inpainting) conditions the observed coordinates exactly: `conditional`.


def _shrink(cov: Array, sigma: Array):
  """(V [d, d], λ/(λ + σ²) [B, d]) with Σ = V diag(λ) Vᵀ: Σ(Σ + σ²I)⁻¹ = V diag(λ/(λ+σ²)) Vᵀ."""
  lam, vecs = jnp.linalg.eigh(cov)
  return vecs, lam / (lam + sigma[:, None] ** 2), lam


def full_denoiser(mean: Array, cov: Array):
  """σ-frame denoiser E[x₀ | x] of N(mean [d], cov [d, d]); x [B, d], σ [B]."""

  def denoiser(x, sigma):
    vecs, k, _ = _shrink(cov.astype(x.dtype), sigma)
    return mean + ((x - mean) @ vecs * k) @ vecs.T

  return denoiser


def noisy_log_likelihood(mean: Array, cov: Array, a: Array, y: Array, noise_var: float):
  """log p(y | x, σ) of the exact linear-Gaussian model, fn(x [B, d], σ [B]) -> [B]; y [m] or
  [B, m], a [m, d]."""
  den = full_denoiser(mean, cov)

  def log_prob(x, sigma):
    vecs, k, lam = _shrink(cov.astype(x.dtype), sigma)
    av = a @ vecs  # [m, d]
    post = lam * (1.0 - k)  # eigenvalues of Cov[x₀ | x] = λσ²/(λ + σ²), [B, d]
    s_mat = noise_var * jnp.eye(a.shape[0], dtype=x.dtype) + jnp.einsum(
        "id,bd,jd->bij", av, post, av
    )
    r = y - den(x, sigma) @ a.T
    quad = jnp.einsum("bi,bi->b", r, jnp.linalg.solve(s_mat, r[..., None])[..., 0])
    return -0.5 * (quad + jnp.linalg.slogdet(s_mat)[1] + a.shape[0] * math.log(2 * math.pi))

  return log_prob


def linear_posterior(mean: Array, cov: Array, a: Array, y: Array, noise_var: float):
  """(m [d], C [d, d]) of p(x₀ | y) for y = A x₀ + N(0, noise_var I), one measurement y [m]."""
  prec = jnp.linalg.inv(cov) + a.T @ a / noise_var
  post_cov = jnp.linalg.inv(prec)
  return post_cov @ (jnp.linalg.solve(cov, mean) + a.T @ y / noise_var), post_cov


def posterior_denoiser(mean: Array, cov: Array, a: Array, y: Array, noise_var: float):
  """E[x₀ | x, y]: the denoiser of the posterior p(x₀ | y), fn(x [B, d], σ [B]) -> [B, d]."""

  def denoiser(x, sigma):
    eye = jnp.eye(cov.shape[0], dtype=x.dtype)
    base = jnp.linalg.solve(cov, mean) + a.T @ y / noise_var
    prec0 = jnp.linalg.inv(cov) + a.T @ a / noise_var
    prec = prec0[None] + eye[None] / sigma[:, None, None] ** 2
    rhs = base[None] + x / sigma[:, None] ** 2
    return jnp.linalg.solve(prec, rhs[..., None])[..., 0]

  return denoiser


def conditional(mean: Array, cov: Array, observed: Array, y: Array):
  """(m [d], C [d, d]) of x₀ given x₀[observed] = y[observed] exactly (observed: [d] bool; the
  observed coordinates of m are y's, their rows/columns of C zero)."""
  o = jnp.asarray(observed, bool)
  oo = jnp.outer(o, o)
  s_oo = jnp.where(oo, cov, jnp.eye(cov.shape[0], dtype=cov.dtype))  # Σ_oo, identity elsewhere
  gain = jnp.where(o[None, :] & ~o[:, None], cov, 0.0) @ jnp.linalg.inv(s_oo)  # Σ_uo Σ_oo⁻¹
  m = jnp.where(o, y, mean + gain @ jnp.where(o, y - mean, 0.0))
  c = jnp.where(~jnp.outer(o, jnp.ones_like(o)) & ~jnp.outer(jnp.ones_like(o), o), 1.0, 0.0) * (
      cov - gain @ jnp.where(o[:, None], cov, 0.0)
  )
  return m, c
