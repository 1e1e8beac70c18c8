"""Stochastic samplers in the σ-frame: ancestral (DDPM, DDIM η, Euler-a), Euler–Maruyama,
EDM's churn sampler, predictor–corrector, SEEDS-1/2/3 and DPM-Solver++(2M) SDE.

In the σ-frame (VE, x = x0 + σ ε) the reverse SDE with time τ = σ² is dx = -∇log p_σ dτ + dW̄_τ,
and the score is ∇log p_σ(x) = (D(x, σ) - x)/σ² (Tweedie). In ℓ = -log σ it reads
dx = 2(D - x) dℓ + √2 σ dW̄_ℓ; its linear part is solved exactly by the exponential SDE solvers
(SEEDS, Gonzalez et al. 2023; SDE-DPM-Solver++, Lu et al. 2022b).

Signature: `fn(denoiser, x, sigmas, key, **options) -> (x, nan_step)`; the noise of step i is drawn
from `fold_in(key, i)`, so two solvers given the same key see the same first normal draw per step.
A step to σ = 0 adds no noise.
"""

import math

import jax
import jax.numpy as jnp

from diffjax.solvers import stepping

_call = stepping.call_denoiser


def _normal(key, x):
  return jax.random.normal(key, x.shape, x.dtype)


def _ancestral_sigmas(sigma, sigma_next, eta):
  """σ_up = min(σ_next, η σ_next √(σ² - σ_next²)/σ), σ_down = √(σ_next² - σ_up²)
  (DDIM's σ_η divided by α, Song et al. 2021a Eq. 16; k-diffusion `get_ancestral_step`)."""
  sigma_up = jnp.minimum(sigma_next, eta * sigma_next * jnp.sqrt(sigma**2 - sigma_next**2) / sigma)
  sigma_down = jnp.sqrt(jnp.maximum(sigma_next**2 - sigma_up**2, 0.0))
  return sigma_down, sigma_up


def ddim(denoiser, x, sigmas, key=None, eta=0.0):
  """DDIM (Song et al. 2021a, Eq. 12) with stochasticity η: x_next = D + σ_down ε̂ + σ_up z.

  η = 0 is deterministic (= `euler`), η = 1 is DDPM ancestral sampling with β̃. N evaluations.
  """
  if eta != 0.0 and key is None:
    raise ValueError("ddim with eta > 0 needs a key")

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)
    sigma_down, sigma_up = _ancestral_sigmas(sigma, sigma_next, eta)
    x_next = x0 + sigma_down * stepping.eps_from(x, x0, sigma)
    if eta != 0.0:
      x_next = x_next + sigma_up * _normal(key_i, x)
    return x_next, carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def euler_ancestral(denoiser, x, sigmas, key=None, eta=1.0, s_noise=1.0):
  """Euler ancestral (k-diffusion `sample_euler_ancestral`): an Euler step to σ_down, then
  σ_up·s_noise fresh noise. With s_noise = 1 equal to `ddim` with the same η. N evaluations."""

  def step(x, carry, i, sigma, sigma_next, key_i):
    d = stepping.eps_from(x, _call(denoiser, x, sigma), sigma)
    sigma_down, sigma_up = _ancestral_sigmas(sigma, sigma_next, eta)
    return x + (sigma_down - sigma) * d + s_noise * sigma_up * _normal(key_i, x), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def ddpm(denoiser, x, sigmas, key=None, variance="beta_tilde", mean_guidance=None):
  """DDPM ancestral sampling (Ho et al. 2020, Eqs. 6–7, Alg. 2) in its own VP frame.

  On the step s → t (σ_t < σ_s): ᾱ = 1/(1 + σ²), β = 1 - ᾱ_s/ᾱ_t, z_s = √ᾱ_s x, and
    z_t = √ᾱ_t β/(1 - ᾱ_s) x̂0 + √(1 - β)(1 - ᾱ_t)/(1 - ᾱ_s) z_s + √v ξ,
  v = β̃ = (1 - ᾱ_t)/(1 - ᾱ_s) β ("beta_tilde") or β ("beta"); no noise on the final step.
  Returns x = z_t/√ᾱ_t. N evaluations.

  `mean_guidance`: g(x [B, ...], σ [B]) -> s ∇ₓ log p(y | x) in the σ-frame (e.g.
  `guidance.classifier_grad`), added to the step's mean as ADM's `condition_mean` does
  (Dhariwal & Nichol 2021, Alg. 1): μ_z += v ∇_{z_s} log p = v g/√ᾱ_s. It needs the gradient at
  x_s (one backward pass through the classifier per step); None: unguided.
  """
  if variance not in ("beta_tilde", "beta"):
    raise ValueError(f"variance must be 'beta_tilde' or 'beta', got {variance!r}")

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)
    abar_s, abar_t = 1.0 / (1.0 + sigma**2), 1.0 / (1.0 + sigma_next**2)
    beta = 1.0 - abar_s / abar_t  # Ho et al.: β_t = 1 - ᾱ_t/ᾱ_{t-1}, here s is t and t is t-1
    z = jnp.sqrt(abar_s) * x
    mean = (
        jnp.sqrt(abar_t) * beta / (1.0 - abar_s) * x0
        + jnp.sqrt(1.0 - beta) * (1.0 - abar_t) / (1.0 - abar_s) * z
    )
    var = (1.0 - abar_t) / (1.0 - abar_s) * beta if variance == "beta_tilde" else beta
    var = jnp.where(sigma_next == 0, 0.0, var)
    if mean_guidance is not None:
      sigma_b = jnp.full(x.shape[:1], sigma, x.dtype)
      mean = mean + var * mean_guidance(x, sigma_b).astype(x.dtype) / jnp.sqrt(abar_s)
    z_next = mean + jnp.sqrt(var) * _normal(key_i, x)
    return z_next / jnp.sqrt(abar_t), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def euler_maruyama(denoiser, x, sigmas, key=None):
  """Euler–Maruyama on the reverse SDE in τ = σ² (= Song et al. 2021b's reverse-diffusion
  predictor for VE): x + (σ² - σ_next²) ∇log p + √(σ² - σ_next²) z; D(x, σ) on a step to 0.
  N evaluations."""

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)
    dvar = sigma**2 - sigma_next**2
    x_next = x + dvar * (x0 - x) / sigma**2 + jnp.sqrt(dvar) * _normal(key_i, x)
    return jnp.where(sigma_next == 0, x0, x_next), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def edm_stochastic(
    denoiser, x, sigmas, key=None, S_churn=0.0, S_tmin=0.0, S_tmax=float("inf"), S_noise=1.0
):
  """EDM Algorithm 2 (Karras et al. 2022): churn to σ̂ = σ(1 + γ), then a Heun step σ̂ → σ_next.

  γ = min(S_churn/N, √2 - 1) for S_tmin ≤ σ ≤ S_tmax, else 0; x̂ = x + √(σ̂² - σ²)·S_noise·z.
  ImageNet-64 setting: S_churn=40, S_tmin=0.05, S_tmax=50, S_noise=1.003. 2N - 1 evaluations on a
  grid ending in 0.
  """
  num_steps = sigmas.shape[0] - 1
  gamma_max = min(S_churn / num_steps, math.sqrt(2.0) - 1.0)

  def step(x, carry, i, sigma, sigma_next, key_i):
    gamma = jnp.where((sigma >= S_tmin) & (sigma <= S_tmax), gamma_max, 0.0)
    sigma_hat = sigma * (1.0 + gamma)
    # √(σ̂² - σ²) = σ √(γ(2 + γ)): never the root of a rounding-negative difference.
    x_hat = x + sigma * jnp.sqrt(gamma * (2.0 + gamma)) * S_noise * _normal(key_i, x)
    d = stepping.eps_from(x_hat, _call(denoiser, x_hat, sigma_hat), sigma_hat)
    x_euler = x_hat + (sigma_next - sigma_hat) * d

    def correct():
      d_next = stepping.eps_from(x_euler, _call(denoiser, x_euler, sigma_next), sigma_next)
      return x_hat + (sigma_next - sigma_hat) * 0.5 * (d + d_next)

    return stepping.if_final(sigma_next, lambda: x_euler, correct), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def pc(denoiser, x, sigmas, key=None, snr=0.16, n_corrector=1):
  """Predictor–corrector (Song et al. 2021b, Alg. 2–4 for VE): at each σ, `n_corrector` Langevin
  steps with ε = 2 (snr·‖z‖/‖∇log p‖)² (norms averaged over the batch, as in score_sde), then the
  reverse-diffusion predictor σ → σ_next (= `euler_maruyama`). (1 + n_corrector)·N evaluations.
  """

  def step(x, carry, i, sigma, sigma_next, key_i):
    keys = jax.random.split(key_i, n_corrector + 1)
    for j in range(n_corrector):
      score = (_call(denoiser, x, sigma) - x) / sigma**2
      z = _normal(keys[j], x)
      flat = lambda a: a.reshape(a.shape[0], -1)
      grad_norm = jnp.mean(jnp.linalg.norm(flat(score), axis=-1))
      noise_norm = jnp.mean(jnp.linalg.norm(flat(z), axis=-1))
      eps = 2.0 * (snr * noise_norm / grad_norm) ** 2
      x = x + eps * score + jnp.sqrt(2.0 * eps) * z
    x0 = _call(denoiser, x, sigma)
    dvar = sigma**2 - sigma_next**2
    x_next = x + dvar * (x0 - x) / sigma**2 + jnp.sqrt(dvar) * _normal(keys[-1], x)
    return jnp.where(sigma_next == 0, x0, x_next), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def _ou_noise(key, x, sigma, h, fractions):
  """Noise of the exact linear SDE part at the stage points ℓ_s + p·h (p in `fractions`),
  all from one Brownian path: N(p_k) = e^{-2(p_k - p_{k-1})h} N(p_{k-1}) + σ_{p_k} √(1 - e^{-2(p_k -
  p_{k-1})h}) z_k, whose variance is σ_p² (1 - e^{-2 p h}) (the exponential-integral variance)."""
  # One stage uses the step key itself, so SEEDS-1 draws the same normal as `ddpm`/`ddim`.
  keys = [key] if len(fractions) == 1 else jax.random.split(key, len(fractions))
  noise, prev, out = jnp.zeros_like(x), 0.0, []
  for k, p in zip(keys, fractions):
    dp = p - prev
    noise = jnp.exp(-2.0 * dp * h) * noise + sigma * jnp.exp(-p * h) * jnp.sqrt(
        -jnp.expm1(-2.0 * dp * h)
    ) * _normal(k, x)
    out.append(noise)
    prev = p
  return out


def _seeds(denoiser, x, sigmas, key, stages):
  """SEEDS (Gonzalez et al. 2023): exponential integrator of dx = 2(D - x)dℓ + √2 σ dW̄ in the
  data-prediction form, with the DPM-Solver stage weights at step size H = 2h ('dpmsolver' type,
  as nfsrules/SEEDS `etd_serk_edm.py` uses them) and the stage noises taken from one Brownian path
  (`_ou_noise`, exact variances). The official code works with EDM's F_θ in a different frame
  and combines the stage noises differently; this is a derivation, not a port."""

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0 = _call(denoiser, x, sigma)

    def regular():
      h = jnp.log(sigma / sigma_next)
      big_h = 2.0 * h
      lin = lambda p: jnp.exp(-p * big_h) * x - jnp.expm1(-p * big_h) * x0
      phi2 = lambda p: jnp.expm1(-p * big_h) / (p * big_h) + 1.0
      if stages == 1:
        (n1,) = _ou_noise(key_i, x, sigma, h, (1.0,))
        return lin(1.0) + n1
      if stages == 2:
        r = 0.5
        n1, n2 = _ou_noise(key_i, x, sigma, h, (r, 1.0))
        x_s1 = lin(r) + n1
        d1 = _call(denoiser, x_s1, sigma * jnp.exp(-r * h))
        # The official code's second-stage weight (nfsrules/SEEDS etd_serk_edm.py): 1/(2r)·φ₁.
        return lin(1.0) - (0.5 / r) * jnp.expm1(-big_h) * (d1 - x0) + n2
      r1, r2 = 1.0 / 3.0, 2.0 / 3.0
      n1, n2, n3 = _ou_noise(key_i, x, sigma, h, (r1, r2, 1.0))
      x_s1 = lin(r1) + n1
      d1 = _call(denoiser, x_s1, sigma * jnp.exp(-r1 * h))
      x_s2 = lin(r2) + (r2 / r1) * phi2(r2) * (d1 - x0) + n2
      d2 = _call(denoiser, x_s2, sigma * jnp.exp(-r2 * h))
      return lin(1.0) + (1.0 / r2) * phi2(1.0) * (d2 - x0) + n3

    return stepping.if_final(sigma_next, lambda: x0, regular), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step


def seeds_1(denoiser, x, sigmas, key=None):
  """SEEDS-1: x_t = (σ_t/σ)² x + (1 - (σ_t/σ)²) D + σ_t √(1 - (σ_t/σ)²) z, the exact solution with
  D frozen (= DDPM with β̃ in the σ-frame). N evaluations."""
  return _seeds(denoiser, x, sigmas, key, 1)


def seeds_2(denoiser, x, sigmas, key=None):
  """SEEDS-2: two stages (r = ½), correction (1/(2r))(1 - e^{-2h})(D_s1 - D_s) (the weight of the
  official code, in data-prediction form).
  2 evaluations a step, 1 on a final step to σ = 0."""
  return _seeds(denoiser, x, sigmas, key, 2)


def seeds_3(denoiser, x, sigmas, key=None):
  """SEEDS-3: three stages (r = ⅓, ⅔), DPM-Solver-3-type coefficients at step 2h.
  3 evaluations a step, 1 on a final step to σ = 0."""
  return _seeds(denoiser, x, sigmas, key, 3)


def sde_dpmpp_2m(denoiser, x, sigmas, key=None, eta=1.0, s_noise=1.0, solver_type="midpoint"):
  """DPM-Solver++(2M) SDE (Lu et al. 2022b; k-diffusion `sample_dpmpp_2m_sde`):
    x_t = (σ_t/σ) e^{-ηh} x + (1 - e^{-(1+η)h}) D + c (D - D_prev)/r + σ_t √(1 - e^{-2ηh}) s_noise z
  with r = h_prev/h and c = ½(1 - e^{-(1+η)h}) ('midpoint') or ((1 - e^{-(1+η)h})/(-(1+η)h) + 1)
  ('heun'). First order on the first step; D(x, σ) on a step to 0. N evaluations."""
  if solver_type not in ("midpoint", "heun"):
    raise ValueError(f"solver_type must be 'midpoint' or 'heun', got {solver_type!r}")
  hist0 = (jnp.zeros_like(x), jnp.ones((), sigmas.dtype))

  def step(x, carry, i, sigma, sigma_next, key_i):
    x0_prev, h_prev = carry
    x0 = _call(denoiser, x, sigma)

    def regular():
      h = jnp.log(sigma / sigma_next)
      eta_h = eta * h
      one_minus = -jnp.expm1(-h - eta_h)
      x_next = (sigma_next / sigma) * jnp.exp(-eta_h) * x + one_minus * x0
      r = h_prev / h
      if solver_type == "heun":
        coef = one_minus / (-h - eta_h) + 1.0
      else:
        coef = 0.5 * one_minus
      x_next = x_next + jnp.where(i > 0, coef / r, 0.0) * (x0 - x0_prev)
      noise = sigma_next * jnp.sqrt(-jnp.expm1(-2.0 * eta_h)) * s_noise * _normal(key_i, x)
      return x_next + noise, h

    x_next, h = stepping.if_final(sigma_next, lambda: (x0, h_prev), regular)
    return x_next, (x0, h)

  x, _, nan_step = stepping.run_steps(step, x, sigmas, hist0, key=key)
  return x, nan_step
