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
