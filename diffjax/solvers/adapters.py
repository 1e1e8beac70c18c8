"""Adapters from trained diffjax models to σ-frame denoisers D(x̃, σ̃) -> x̂₀.

DESIGN.md: the σ-frame is x̃ = z/α, σ̃ = σ/α = exp(-λ/2). Given σ̃, λ = -2 log σ̃, t = t(λ) under
the model's schedule, z = α_t x̃, and the parameterisation maps the raw output to x̂₀
(`parameterization.denoise`). Works for every schedule family and parameterisation, flow velocity
models included (x̂₀ = (z - σ û)/(α + σ)).
"""

import jax
import jax.numpy as jnp

from diffjax.core import parameterization as param_lib


def from_raw(raw_fn, schedule, param):
  """Wraps `raw_fn(z_in [B, ...], noise_cond [B]) -> raw [B, ...]` as D(x̃, σ̃).

  Args:
    raw_fn: the network, already closed over its parameters (and label, if any).
    schedule: the diffjax schedule the model was trained with.
    param: its diffjax parameterisation.

  Returns:
    denoiser(x [B, ...], sigma [B]) -> x0_hat [B, ...], in x's dtype.
  """

  def denoiser(x: jax.Array, sigma: jax.Array) -> jax.Array:
    lam = -2.0 * jnp.log(sigma)
    t = schedule.t_from_logsnr(lam)
    alpha, _ = schedule.alpha_sigma(t)
    z = param_lib.bcast(alpha, x) * x
    x0, _ = param_lib.denoise(param, raw_fn, z, t, schedule)
    return x0.astype(x.dtype)

  return denoiser
