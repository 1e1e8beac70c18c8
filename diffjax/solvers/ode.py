"""Deterministic one-step and exponential-integrator PF-ODE solvers in the σ-frame.

The probability-flow ODE is dx/dσ = (x - D(x, σ))/σ (Karras et al. 2022, Eq. 3). With the
half-log-SNR ℓ = -log σ (DPM-Solver's λ, Lu et al. 2022) it becomes dx/dℓ = D - x, whose linear part
is integrated exactly by the exponential integrators below. In the σ-frame α = 1, so the official
VP formulas hold with α_t = 1 and σ_t = σ (dividing the VP update by α_t gives exactly these).

Every solver has the signature `fn(denoiser, x, sigmas, key=None, **options) -> (x, nan_step)`;
`h = log(σ / σ_next)` is the step in ℓ. A step to σ_next = 0 returns D(x, σ) (the limit of the
first-order step, = EDM's final Euler step), since ℓ = ∞ there.
"""

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.solvers import stepping

_call = stepping.call_denoiser


def euler(denoiser, x, sigmas, key=None):
  """Euler on dx/dσ = (x - D)/σ; order 1. Equals DDIM with η = 0 (Song et al. 2021a, Eq. 13).

  Args:
    denoiser: σ-frame denoiser D(x [B, ...], σ [B]) -> [B, ...].
    x: [B, ...] initial state at sigmas[0].
    sigmas: [N + 1] strictly decreasing grid.
    key: unused.

  Returns:
    (x [B, ...] at sigmas[-1], first non-finite step or -1). N network evaluations.
  """
  del key

  def step(x, carry, i, sigma, sigma_next, key_i):
    d = stepping.eps_from(x, _call(denoiser, x, sigma), sigma)
    return x + (sigma_next - sigma) * d, carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas)
  return x, nan_step


def heun(denoiser, x, sigmas, key=None):
  """Heun's 2nd-order method, EDM Algorithm 1 (Karras et al. 2022); Euler on a step to σ = 0.

  Returns:
    (x, nan_step); 2N - 1 evaluations on a grid ending in 0, else 2N.
  """
  del key

  def step(x, carry, i, sigma, sigma_next, key_i):
    d = stepping.eps_from(x, _call(denoiser, x, sigma), sigma)
    x_euler = x + (sigma_next - sigma) * d

    def correct():
      d_next = stepping.eps_from(x_euler, _call(denoiser, x_euler, sigma_next), sigma_next)
      return x + (sigma_next - sigma) * 0.5 * (d + d_next)

    return stepping.if_final(sigma_next, lambda: x_euler, correct), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas)
  return x, nan_step


def dpm_solver_2(denoiser, x, sigmas, key=None, r1=0.5):
  """Single-step DPM-Solver-2 (Lu et al. 2022, Alg. 1, 'dpmsolver' form), noise prediction.

  With ε_s = (x - D_s)/σ_s and the intermediate ℓ_s1 = ℓ_s + r1·h:
    x_s1 = x - σ_s1 (e^{r1 h} - 1) ε_s
    x_t  = x - σ_t (e^h - 1) ε_s - σ_t (e^h - 1)/(2 r1) (ε_s1 - ε_s).

  Args:
    r1: position of the intermediate point as a fraction of the step in ℓ (0.5 in the paper).

  Returns:
    (x, nan_step); 2 evaluations a step, 1 on a final step to σ = 0.
  """
  del key

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)

    def regular():
      eps = stepping.eps_from(x, x0, sigma)
      h = jnp.log(sigma / sigma_next)
      sigma_s1 = sigma * jnp.exp(-r1 * h)
      x_s1 = x - sigma_s1 * jnp.expm1(r1 * h) * eps
      eps_s1 = stepping.eps_from(x_s1, _call(denoiser, x_s1, sigma_s1), sigma_s1)
      phi_1 = jnp.expm1(h)
      return x - sigma_next * phi_1 * eps - (0.5 / r1) * sigma_next * phi_1 * (eps_s1 - eps)

    return stepping.if_final(sigma_next, lambda: x0, regular), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas)
  return x, nan_step


def dpm_solver_3(denoiser, x, sigmas, key=None, r1=1.0 / 3.0, r2=2.0 / 3.0):
  """Single-step DPM-Solver-3 (Lu et al. 2022, Alg. 2, 'dpmsolver' form), noise prediction.

  With φ₁(h) = e^h - 1, φ₂ = φ₁/h - 1 at the step sizes shown:
    x_s1 = x - σ_s1 φ₁(r1 h) ε_s
    x_s2 = x - σ_s2 φ₁(r2 h) ε_s - (r2/r1) σ_s2 (φ₁(r2 h)/(r2 h) - 1)(ε_s1 - ε_s)
    x_t  = x - σ_t φ₁(h) ε_s - (1/r2) σ_t φ₂(h) (ε_s2 - ε_s).

  Returns:
    (x, nan_step); 3 evaluations a step, 1 on a final step to σ = 0.
  """
  del key

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)

    def regular():
      eps = stepping.eps_from(x, x0, sigma)
      h = jnp.log(sigma / sigma_next)
      sigma_s1, sigma_s2 = sigma * jnp.exp(-r1 * h), sigma * jnp.exp(-r2 * h)
      phi_11, phi_12, phi_1 = jnp.expm1(r1 * h), jnp.expm1(r2 * h), jnp.expm1(h)
      phi_22 = phi_12 / (r2 * h) - 1.0
      phi_2 = phi_1 / h - 1.0
      x_s1 = x - sigma_s1 * phi_11 * eps
      eps_s1 = stepping.eps_from(x_s1, _call(denoiser, x_s1, sigma_s1), sigma_s1)
      x_s2 = x - sigma_s2 * phi_12 * eps - (r2 / r1) * sigma_s2 * phi_22 * (eps_s1 - eps)
      eps_s2 = stepping.eps_from(x_s2, _call(denoiser, x_s2, sigma_s2), sigma_s2)
      return x - sigma_next * phi_1 * eps - (1.0 / r2) * sigma_next * phi_2 * (eps_s2 - eps)

    return stepping.if_final(sigma_next, lambda: x0, regular), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas)
  return x, nan_step


def dpmpp_2s(denoiser, x, sigmas, key=None, r1=0.5):
  """Single-step DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1), data prediction:
    x_s1 = (σ_s1/σ_s) x - (e^{-r1 h} - 1) D_s
    x_t  = (σ_t/σ_s) x - (e^{-h} - 1) D_s - (e^{-h} - 1)/(2 r1) (D_s1 - D_s).

  Returns:
    (x, nan_step); 2 evaluations a step, 1 on a final step to σ = 0.
  """
  del key

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)

    def regular():
      h = jnp.log(sigma / sigma_next)
      sigma_s1 = sigma * jnp.exp(-r1 * h)
      x_s1 = (sigma_s1 / sigma) * x - jnp.expm1(-r1 * h) * x0
      x0_s1 = _call(denoiser, x_s1, sigma_s1)
      phi_1 = jnp.expm1(-h)
      return (sigma_next / sigma) * x - phi_1 * x0 - (0.5 / r1) * phi_1 * (x0_s1 - x0)

    return stepping.if_final(sigma_next, lambda: x0, regular), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas)
  return x, nan_step


def multistep_orders(num_steps: int, order: int, lower_order_final: bool) -> np.ndarray:
  """Per-step order of a multistep solver: warm-up min(order, i + 1), and DPM-Solver's
  `lower_order_final` rule min(order, N - i), which the official code applies only when N < 10.
  """
  i = np.arange(num_steps)
  orders = np.minimum(order, i + 1)
  if lower_order_final and num_steps < 10:
    orders = np.minimum(orders, num_steps - i)
  return orders.astype(np.int32)


def dpmpp_multistep_update(x, m0, m_hist, sigma, sigma_hist, sigma_next, order, d2_scale=1.0):
  """One DPM-Solver++ multistep update (Lu et al. 2022b, Alg. 2 and App. B), data prediction.

  With m0, m1, m2 the denoised values at the current and two previous points and h, h_0, h_1
  the corresponding steps in ℓ, r0 = h_0/h, r1 = h_1/h:
    order 1: x_t = (σ_t/σ) x - φ₁ m0,      φ₁ = e^{-h} - 1
    order 2: ... - ½ φ₁ (m0 - m1)/r0
    order 3: ... + φ₂ D1 - φ₃ D2,          φ₂ = φ₁/h + 1, φ₃ = φ₂/h - ½,
             D1 = D1_0 + r0/(r0 + r1)(D1_0 - D1_1), D2 = d2_scale (D1_0 - D1_1)/(r0 + r1),
             D1_0 = (m0 - m1)/r0, D1_1 = (m1 - m2)/r1.
  d2_scale = 1 is the official code (also k-diffusion's `dpmpp_3m_sde` and diffusers). There
  D2 ≈ h² D''/2 while the exact weight -φ₃ belongs to h² D'' (the single-step third-order update
  uses D2 = 2(D1_1 - D1_0)/(r2 - r1) ≈ h² D''), so the official order-3 step has local error
  O(h³) and the method is second order; d2_scale = 2 makes it third order (tests measure both).

  Args:
    x: [B, ...] state at σ. m0: [B, ...] D(x, σ). m_hist: [2, B, ...] = [m1, m2].
    sigma, sigma_next: scalars. sigma_hist: [2] = [σ1, σ2] of the previous points.
    order: traced int in {1, 2, 3}.

  Returns:
    [B, ...] state at σ_next (> 0).
  """
  h = jnp.log(sigma / sigma_next)
  phi_1 = jnp.expm1(-h)
  base = (sigma_next / sigma) * x - phi_1 * m0
  h_0 = jnp.log(sigma_hist[0] / sigma)
  h_1 = jnp.log(sigma_hist[1] / sigma_hist[0])
  r0, r1 = h_0 / h, h_1 / h
  d1_0 = (m0 - m_hist[0]) / r0

  def second():
    return base - 0.5 * phi_1 * d1_0

  def third():
    d1_1 = (m_hist[0] - m_hist[1]) / r1
    d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
    d2 = d2_scale * (d1_0 - d1_1) / (r0 + r1)
    phi_2 = phi_1 / h + 1.0
    phi_3 = phi_2 / h - 0.5
    return base + phi_2 * d1 - phi_3 * d2

  return jax.lax.switch(order - 1, [lambda: base, second, third])


def _dpmpp_multistep(denoiser, x, sigmas, order, lower_order_final, d2_scale=1.0):
  """Scan of `dpmpp_multistep_update` with the warm-up / lower_order_final orders."""
  num_steps = sigmas.shape[0] - 1
  orders = jnp.asarray(multistep_orders(num_steps, order, lower_order_final))
  hist0 = (jnp.zeros((2,) + x.shape, x.dtype), jnp.ones((2,), sigmas.dtype))

  def step(x, carry, i, sigma, sigma_next, key_i):
    m_hist, sigma_hist = carry  # previous denoised values and σ's, newest first
    m0 = _call(denoiser, x, sigma)
    regular = lambda: dpmpp_multistep_update(
        x, m0, m_hist, sigma, sigma_hist, sigma_next, orders[i], d2_scale
    )
    x_next = stepping.if_final(sigma_next, lambda: m0, regular)
    new_hist = (jnp.stack([m0, m_hist[0]]), jnp.stack([sigma, sigma_hist[0]]))
    return x_next, new_hist

  x, _, nan_step = stepping.run_steps(step, x, sigmas, hist0)
  return x, nan_step


def dpmpp_2m(denoiser, x, sigmas, key=None, lower_order_final=True):
  """Multistep DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2); first order on a step to σ = 0
  (as k-diffusion's `sample_dpmpp_2m`).

  Args:
    lower_order_final: DPM-Solver's rule: with fewer than 10 steps the last step is first order.

  Returns:
    (x, nan_step); N evaluations.
  """
  del key
  return _dpmpp_multistep(denoiser, x, sigmas, 2, lower_order_final)


def dpmpp_3m(denoiser, x, sigmas, key=None, lower_order_final=True, d2_scale=1.0):
  """Multistep DPM-Solver++(3M) (Lu et al. 2022b, App. B; official `multistep_dpm_solver_third_
  update`). Warm-up with orders 1, 2; with fewer than 10 steps and `lower_order_final`, the last
  two steps use orders 2, 1 (official rule). N evaluations.

  Args:
    d2_scale: 1.0 reproduces the official (second-order) update, 2.0 the third-order one; see
      `dpmpp_multistep_update`.
  """
  del key
  return _dpmpp_multistep(denoiser, x, sigmas, 3, lower_order_final, d2_scale)
