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


def gamma_sampling(jump, x, sigmas, key=None, gamma=0.0, sigma_min=0.002):
  """CTM's γ-sampling (Kim et al. 2023, Alg. 1; official sony/ctm `sample_gamma_multistep_`).

  On the grid σ_0 > … > σ_N = σ_min, step i jumps from σ_i to
  s_i = √(1 − γ²)(σ_{i+1} − σ_min) + σ_min with the trajectory model, then (before the next jump)
  adds noise of standard deviation √(σ_{i+1}² − s_i²), back up to σ_{i+1}. γ = 0: deterministic
  jumps σ_i → σ_{i+1}; γ = 1: jumps to σ_min and noise √(σ_{i+1}² − σ_min²), exactly `consistency`
  with f(x, σ) = G(x, σ, σ_min) and the same key (the noise of step i is drawn from
  fold_in(key, i) in both).

  Args:
    jump: G(x [B, ...], t [B], s [B]) -> [B, ...], the trajectory model.
    x: [B, ...] start, σ_0·ε.
    sigmas: [N + 1] decreasing grid ending at σ_min.
    key: PRNG key (needed when γ > 0 and N > 1).
    gamma: γ ∈ [0, 1], a Python float.
    sigma_min: the data end of the trajectories.

  Returns:
    (x at σ_min [B, ...], nan_step).
  """
  gamma = float(gamma)
  if not 0.0 <= gamma <= 1.0:
    raise ValueError(f"sample.solver_kwargs.gamma={gamma}: expected 0 <= gamma <= 1")
  noisy = gamma > 0.0 and sigmas.shape[0] > 2
  if noisy and key is None:
    raise ValueError("gamma_sampling with gamma > 0 and more than one step needs a key")
  keep = (1.0 - gamma**2) ** 0.5
  s_of = lambda sigma: keep * (sigma - sigma_min) + sigma_min
  full = lambda v, like: jnp.full((like.shape[0],), v, like.dtype)

  def step(x, carry, i, sigma, sigma_next, key_i):
    if noisy:
      # σ² − s² = (σ − s)(σ + s) with σ − s = (1 − √(1 − γ²))(σ − σ_min): no cancellation.
      var = gamma**2 / (1.0 + keep) * (sigma - sigma_min) * (sigma + s_of(sigma))
      noise = jax.random.normal(key_i, x.shape, x.dtype)
      x = jnp.where(i == 0, x, x + jnp.sqrt(jnp.maximum(var, 0.0)) * noise)
    return jump(x, full(sigma, x), full(s_of(sigma_next), x)).astype(x.dtype), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key if noisy else None)
  return x, nan_step
