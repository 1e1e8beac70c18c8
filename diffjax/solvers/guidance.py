"""Guidance wrappers over σ-frame denoisers: classifier-free (with a guidance interval),
autoguidance, and classifier guidance in ADM's two forms.

In the σ-frame Tweedie's formula reads D(x, σ) = x + σ² ∇log p_σ(x), so adding a term g to the
score moves the denoiser by σ² g.

Classifier guidance (Dhariwal & Nichol 2021) has two forms in ADM's code (guided-diffusion
`gaussian_diffusion.py`), with different effective strengths on a finite grid:
  * `condition_score` (their DDIM path, Eq. 14): ε̂ ← ε̂ - √(1-ᾱ) ∇_{x_t} log p(y | x_t). In the
    σ-frame (x̃ = x_t/√ᾱ, σ̃ = √(1-ᾱ)/√ᾱ) this is D ← D + s σ̃² ∇_x̃ log p(y | x̃): `classifier`,
    a denoiser wrapper that every solver can use. On an ancestral (DDPM, β̃) step σ → σ' it moves
    the state by (σ² - σ'²) s ∇_x̃ log p.
  * `condition_mean` (their ancestral path, Eq. 10 / Alg. 1): μ ← μ + s Σ ∇_{x_t} log p(y | x_t),
    Σ the step's variance. It is a property of the ancestral step, not of the denoiser: the `ddpm`
    solver's `mean_guidance` option (`solvers.sde.ddpm`, gradient from `classifier_grad`). On the
    step σ → σ' (β̃ variance) it moves x̃ by σ'²(σ² - σ'²)/σ² · √((1+σ²)/(1+σ'²)) · s ∇_x̃ log p,
    i.e. (σ'/σ)² √((1+σ²)/(1+σ'²)) times the condition_score shift: weaker on coarse grids, equal
    as the steps shrink (both are then the guided reverse SDE). `tests/solvers/test_guidance_modes`
    checks both shifts and both limits against the exact tilted Gaussian.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _bcast(v, x):
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def cfg(denoiser_cond, denoiser_uncond, scale: float, interval: tuple[float, float] | None = None):
  """Classifier-free guidance (Ho & Salimans 2022): D_u + s (D_c - D_u).

  s = 1 is the conditional model, s = 0 the unconditional one; the paper's w is s - 1. Equivalent
  to the score ∇log p(x) + s ∇log p(c | x) with the implicit classifier p(c | x) ∝ p(x|c)/p(x).
  Autoguidance (Karras et al. 2024, EDM2, Eq. 2) is the same formula with a weaker model of the
  same task (smaller or less trained, same label) as `denoiser_uncond`.

  Args:
    denoiser_cond, denoiser_uncond: D(x [B, ...], σ [B]) -> [B, ...].
    scale: guidance scale s.
    interval: (σ_lo, σ_hi): guide only for σ_lo < σ ≤ σ_hi and use D_c elsewhere (guidance
      interval, Kynkäänniemi et al. 2024, Eq. 3 in their σ); None guides at every σ.
  """

  def denoiser(x, sigma):
    d_c, d_u = denoiser_cond(x, sigma), denoiser_uncond(x, sigma)
    s = jnp.full(sigma.shape, scale, d_c.dtype)
    if interval is not None:
      lo, hi = interval
      s = jnp.where((sigma > lo) & (sigma <= hi), s, 1.0)
    return d_u + _bcast(s, d_c) * (d_c - d_u)

  return denoiser


def classifier_grad(log_prob_fn, scale: float = 1.0):
  """g(x, σ) = s ∇ₓ Σ_b log p(y_b | x_b, σ): the per-example gradient of a noisy classifier's
  log-probability (each example's log p depends on its own x only, so the sum's gradient is
  per-example, not batch-coupled).

  Args:
    log_prob_fn: `log_prob_fn(x [B, ...], sigma [B]) -> [B]`, σ-frame (x̃ = z/α).
    scale: guidance scale s.
  """

  def grad(x, sigma):
    return scale * jax.grad(lambda v: jnp.sum(log_prob_fn(v, sigma)))(x)

  return grad


def classifier(denoiser, log_prob_fn, scale: float):
  """Classifier guidance, ADM's `condition_score` (Dhariwal & Nichol 2021, Eq. 14 in score form):
  D + s σ² ∇ₓ log p(y | x, σ).

  Args:
    denoiser: D(x, σ).
    log_prob_fn: `log_prob_fn(x [B, ...], sigma [B]) -> [B]` log p(y | x) of a noisy classifier
      for the wanted labels, in the σ-frame (feed it x̃; a classifier trained on z = α x̃ must be
      wrapped by the caller, as `methods.classifier` does).
    scale: guidance scale s (1 = exact conditioning with an exact classifier).
  """
  grad_fn = classifier_grad(log_prob_fn, scale)

  def denoiser_guided(x, sigma):
    return denoiser(x, sigma) + _bcast(sigma**2, x) * grad_fn(x, sigma)

  return denoiser_guided
