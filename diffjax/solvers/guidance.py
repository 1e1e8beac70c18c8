"""Guidance wrappers over σ-frame denoisers.

In the σ-frame Tweedie's formula reads D(x, σ) = x + σ² ∇log p_σ(x), so adding a term g to the
score moves the denoiser by σ² g.
"""

import jax
import jax.numpy as jnp


def cfg(denoiser_cond, denoiser_uncond, scale: float):
  """Classifier-free guidance (Ho & Salimans 2022): D_u + s (D_c - D_u).

  s = 1 is the conditional model, s = 0 the unconditional one; the paper's w is s - 1. Equivalent
  to the score ∇log p(x) + s ∇log p(c | x) with the implicit classifier p(c | x) ∝ p(x|c)/p(x).

  Args:
    denoiser_cond, denoiser_uncond: D(x [B, ...], σ [B]) -> [B, ...].
    scale: guidance scale s.
  """

  def denoiser(x, sigma):
    d_u = denoiser_uncond(x, sigma)
    return d_u + scale * (denoiser_cond(x, sigma) - d_u)

  return denoiser


def classifier(denoiser, log_prob_fn, scale: float):
  """Classifier guidance (Dhariwal & Nichol 2021, Eq. 14, score form): D + s σ² ∇ₓ log p(y | x, σ).

  Args:
    denoiser: D(x, σ).
    log_prob_fn: `log_prob_fn(x [B, ...], sigma [B]) -> [B]` log p(y | x) of a noisy classifier
      for the wanted labels, in the σ-frame (feed it x̃; a classifier trained on z = α x̃ must be
      wrapped by the caller).
    scale: guidance scale s (1 = exact conditioning with an exact classifier).
  """

  def denoiser_guided(x, sigma):
    grad = jax.grad(lambda v: jnp.sum(log_prob_fn(v, sigma)))(x)
    sig2 = (sigma**2).reshape(sigma.shape + (1,) * (x.ndim - 1))
    return denoiser(x, sigma) + scale * sig2 * grad

  return denoiser_guided
