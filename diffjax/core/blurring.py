r"""Blurring diffusion (Hoogeboom & Salimans 2023, arXiv:2209.05557): Gaussian diffusion in the DCT
basis with a per-frequency signal scale, i.e. heat dissipation plus noise as one Gaussian process.

With u = V x (orthonormal 2-D DCT, `core.heat`), the forward process is, per frequency (k, l),
  q(u_t | u_0) = N(α_t d_t u_0, σ_t² I),   d_t = (1 - d_min) exp(-λ_{k,l} τ_t) + d_min,
  σ_B(t) = σ_B,max sin²(π t / 2),   τ_t = σ_B(t)²/2
(the paper's appendix listing `get_frequency_scaling`: the blur std is σ_B,max sin², not sin), on
a base schedule (α_t, σ_t) (theirs: cosine with λ ∈ [-10, 10]). The marginal is Gaussian per
frequency with α_t^{(k,l)} = α_t d_t^{(k,l)}, so everything of diffjax's Gaussian process holds
frequency-wise, and the ancestral step s < t is the Gaussian posterior q(u_s | u_t, u_0) (paper
Eq. 9–10, listing `denoise`) with α_{t|s} = α_t d_t/(α_s d_s), σ²_{t|s} = σ_t² - α_{t|s}² σ_s²:
  μ = α_{t|s} σ_s²/σ_t² u_t + σ²_{t|s}/σ_t² · α_s d_s û_0,   Var = σ²_{t|s} σ_s²/σ_t²,
where an ε-model gives α_s d_s û_0 = (α_s d_s)/(α_t d_t) (u_t - σ_t ε̂) (`posterior_eps`, the
listing's form). σ_B,max = 0 is the plain Gaussian process (tests/core/test_blurring.py: marginals
and the step equal DDPM's). The Method is `methods.blurring_diffusion`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from diffjax.core import heat


def _b(v):
  return jnp.reshape(v, (-1, 1, 1, 1))


@dataclasses.dataclass(frozen=True)
class BlurringProcess:
  """Attributes: schedule (a diffjax schedule, the base α_t, σ_t), blur_sigma_max (σ_B,max in
  pixels; paper: 20 at 32×32 and 64×64), d_min (paper: 0.001)."""

  schedule: object
  blur_sigma_max: float = 20.0
  d_min: float = 0.001

  def tau(self, t: jax.Array) -> jax.Array:
    """τ_t = σ_B(t)²/2 with σ_B(t) = σ_B,max sin²(πt/2)."""
    return 0.5 * (self.blur_sigma_max * jnp.sin(0.5 * math.pi * jnp.asarray(t)) ** 2) ** 2

  def d(self, t: jax.Array, shape) -> jax.Array:
    """Per-frequency d_t, [B, H, W, 1] for t [B] and spatial shape (H, W)."""
    return (1.0 - self.d_min) * heat.frequency_scale(self.tau(t), shape) + self.d_min

  def alpha_sigma(self, t: jax.Array, shape):
    """(per-frequency α_t d_t [B, H, W, 1], σ_t [B, 1, 1, 1]) in the DCT basis."""
    alpha, sigma = self.schedule.alpha_sigma(t)
    return _b(alpha) * self.d(t, shape), _b(sigma)

  def diffuse(self, x: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
    """z_t = Vᵀ(α_t d_t V x + σ_t V ε) in pixel space; x, eps [B, H, W, C], t [B]."""
    a, s = self.alpha_sigma(t, x.shape[1:3])
    return heat.idct(a * heat.dct(x) + s * heat.dct(eps))

  def _step_coefficients(self, t, s_time, shape):
    a_t, sig_t = self.alpha_sigma(t, shape)
    a_s, sig_s = self.alpha_sigma(s_time, shape)
    a_ts = a_t / a_s
    var_ts = sig_t**2 - a_ts**2 * sig_s**2
    return a_t, sig_t, a_s, sig_s, a_ts, var_ts

  def posterior(self, z_t, x0_hat, t, s_time):
    """(mean, variance) of q(z_s | z_t, x̂₀) in pixel space (variance per frequency, [B, H, W, 1];
    add √var ⊙ V ξ noise in the DCT basis)."""
    _, sig_t, a_s, sig_s, a_ts, var_ts = self._step_coefficients(t, s_time, z_t.shape[1:3])
    mean = a_ts * sig_s**2 / sig_t**2 * heat.dct(z_t) + a_s * var_ts / sig_t**2 * heat.dct(x0_hat)
    return heat.idct(mean), var_ts * sig_s**2 / sig_t**2

  def posterior_eps(self, z_t, eps_hat, t, s_time):
    """`posterior` with x̂₀ given by an ε-prediction, α_s d_s x̂₀ = (α_s d_s/α_t d_t)(u_t - σ_t ε̂)
    per frequency (never dividing by α_t d_t alone, which is ~1e-6 at t = 1)."""
    a_t, sig_t, a_s, sig_s, a_ts, var_ts = self._step_coefficients(t, s_time, z_t.shape[1:3])
    u_t = heat.dct(z_t)
    scaled_x0 = (a_s / a_t) * (u_t - sig_t * heat.dct(eps_hat))
    mean = a_ts * sig_s**2 / sig_t**2 * u_t + var_ts / sig_t**2 * scaled_x0
    return heat.idct(mean), var_ts * sig_s**2 / sig_t**2
