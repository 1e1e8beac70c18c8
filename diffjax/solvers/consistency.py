"""Multistep consistency sampling (Song et al. 2023, Alg. 1) over a consistency function.

The "denoiser" is a consistency function f(x, σ) (a Method's σ-frame `denoiser`): it maps a point
at noise level σ straight to the data end of its PF-ODE trajectory. On a grid
σ_0 > σ_1 > … > σ_N the sampler evaluates f at σ_0, …, σ_{N−1}:
  x̂ = f(σ_0 ε_0, σ_0);  x̂ = f(x̂ + √(σ_i² − σ_min²) ε_i, σ_i) for i = 1, …, N − 1,
and returns x̂: N evaluations, the last grid entry (σ_min, or 0) is where the samples live. With the
exact PF-ODE map as f, one step gives exact samples (tests/methods/test_consistency.py).
"""

import jax
import jax.numpy as jnp

from diffjax.solvers import stepping


def consistency(denoiser, x, sigmas, key=None, sigma_min=0.002):
  """CM's `stochastic_iterative_sampler` on the grid `sigmas` (module docstring).

  Args:
    denoiser: consistency function f(x [B, ...], σ [B]) -> x̂ [B, ...].
    x: [B, ...] start, σ_0·ε.
    sigmas: [N + 1] decreasing grid; f is evaluated at sigmas[:-1].
    key: PRNG key (needed when N > 1: fresh noise is added before steps 1 … N − 1).
    sigma_min: the consistency function's boundary σ_min (the noise added is
      √(σ_i² − σ_min²)).

  Returns:
    (x̂ [B, ...], nan_step).
  """
  if sigmas.shape[0] > 2 and key is None:
    raise ValueError("consistency sampling with more than one step needs a key")

  def step(x0, carry, i, sigma, sigma_next, key_i):
    del sigma_next
    if key_i is None:
      noisy = x
    else:
      noise = jax.random.normal(key_i, x0.shape, x0.dtype)
      scale = jnp.sqrt(jnp.maximum(sigma**2 - sigma_min**2, 0.0))
      noisy = jnp.where(i == 0, x, x0 + scale * noise)
    return stepping.call_denoiser(denoiser, noisy, sigma), carry

  x0, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x0, nan_step
