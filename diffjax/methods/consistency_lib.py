r"""Pure pieces of the consistency-model family: boundary preconditioning, discretisation
schedules N(k)/μ(k), noise-level samplers, distances and the teacher's ODE step.

Time runs as in EDM's σ-frame (x_σ = x + σ ε, σ ∈ [σ_min, σ_max]); the papers' t is this σ.

- Song et al. 2023 (CM, arXiv:2303.01469), official code openai/consistency_models
  (`cm/script_util.py` create_ema_and_scales_fn, `cm/karras_diffusion.py`): boundary condition
  f(x, σ_min) = x through c_skip = σ_d²/((σ − σ_min)² + σ_d²), c_out = (σ − σ_min)σ_d/√(σ² + σ_d²);
  the adaptive schedule N(k) = ⌈√(k/K((s1 + 1)² − s0²) + s0²) − 1⌉ (at least 1) + 1 and
  μ(k) = exp(s0 ln μ0 / (N(k) − 1)). The code's "+ 1" comes *after* μ is computed: the paper's
  N(k) counts discretisation points, μ uses the count before the "+ 1" (tests list values).
- Song & Dhariwal 2023 (iCT, arXiv:2310.14189): N(k) = min(s0·2^⌊k/K'⌋, s1) + 1 with
  K' = ⌊K/(log2⌊s1/s0⌋ + 1)⌋; σ_i of the Karras grid drawn with
  p(σ_i) ∝ erf((ln σ_{i+1} − P_mean)/(√2 P_std)) − erf((ln σ_i − P_mean)/(√2 P_std)); weight
  λ(σ_i) = 1/(σ_{i+1} − σ_i); pseudo-Huber d = √(‖·‖² + c²) − c with c = 0.00054·√d.
- Geng et al. 2024 (ECT, arXiv:2406.14548; locuslab/ect `training/loss.py`): t ~ lognormal,
  r = t·(1 − q^{−(stage+1)}·(1 + k·sigmoid(−b t))) clamped at 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def boundary_coefficients(sigma, sigma_data: float, sigma_min: float):
  """(c_skip, c_out, c_in, c_noise) [B] of CM's boundary-condition preconditioning (CM, App. C):
  c_skip(σ_min) = 1 and c_out(σ_min) = 0, so f(x, σ_min) = x for every network. σ_min = 0 gives
  EDM's own preconditioning (ECT's network). c_in, c_noise = ¼ ln σ as EDM's."""
  s = sigma - sigma_min
  denom = jnp.square(sigma) + sigma_data**2
  c_skip = sigma_data**2 / (jnp.square(s) + sigma_data**2)
  c_out = s * sigma_data * jax.lax.rsqrt(denom)
  return c_skip, c_out, jax.lax.rsqrt(denom), 0.25 * jnp.log(sigma)


def karras_level(i, n, sigma_min: float, sigma_max: float, rho: float):
  """σ of index i on an n-point Karras grid from σ_max (i = 0) down to σ_min (i = n − 1),
  (σ_max^{1/ρ} + i/(n − 1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ; i, n may be traced."""
  i = jnp.asarray(i, jnp.float32)
  n = jnp.asarray(n, jnp.float32)
  a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
  return (a + i / (n - 1) * (b - a)) ** rho


def cm_ema_and_scales(
    step, *, total_steps: int, s0: int, s1: int, mu0: float, adaptive_ema=True, progressive=True
):
  """(μ(k), N(k)) as the official `create_ema_and_scales_fn`: `progressive` is its scale_mode
  "progressive" (else "fixed": N = s0, μ = μ0, CD's setting), `adaptive_ema` its target_ema_mode
  "adaptive" (else "fixed" μ0; "adaptive" needs "progressive", as there). N(k) is the number of
  grid points; the adaptive μ uses N(k) − 1. `step` may be traced (int32)."""
  if not progressive:
    if adaptive_ema:
      raise ValueError("method.adaptive_ema=True needs method.progressive=True (official modes)")
    return jnp.float32(mu0), jnp.int32(s0)
  k = jnp.asarray(step, jnp.float32)
  inner = k / total_steps * ((s1 + 1) ** 2 - s0**2) + s0**2
  scales = jnp.maximum(jnp.ceil(jnp.sqrt(inner) - 1).astype(jnp.int32), 1)
  if adaptive_ema:
    mu = jnp.exp(math.log(mu0) * s0 / scales.astype(jnp.float32))
  else:
    mu = jnp.float32(mu0)
  return mu, scales + 1


def ict_num_scales(step, *, total_steps: int, s0: int = 10, s1: int = 1280):
  """iCT's exponential curriculum N(k) = min(s0·2^⌊k/K'⌋, s1) + 1, K' = ⌊K/(log2⌊s1/s0⌋ + 1)⌋
  (Song & Dhariwal 2023, eq. 7); `step` may be traced."""
  k_prime = max(total_steps // (int(math.log2(s1 // s0)) + 1), 1)
  doublings = jnp.asarray(step, jnp.int32) // k_prime
  n = jnp.minimum(s0 * 2 ** jnp.minimum(doublings, 30), s1)
  return (n + 1).astype(jnp.int32)


def ict_index_logits(n, max_n: int, *, sigma_min, sigma_max, rho, p_mean, p_std):
  """Log-probabilities [max_n − 1] of the lower index j of the pair (σ_j, σ_{j+1}), j ascending in
  σ (j = 0 is σ_min), of an n-point grid: iCT's discretised lognormal (eq. 8); entries j ≥ n − 1
  are −inf. n may be traced; max_n is the static largest N."""
  j = jnp.arange(max_n - 1)
  lo = karras_level(n - 1 - j, n, sigma_min, sigma_max, rho)  # σ_j, ascending in j
  hi = karras_level(n - 2 - j, n, sigma_min, sigma_max, rho)  # σ_{j+1}
  cdf = lambda s: jax.scipy.special.erf((jnp.log(s) - p_mean) / (math.sqrt(2.0) * p_std))
  mass = cdf(hi) - cdf(lo)
  return jnp.where(j < n - 1, jnp.log(jnp.maximum(mass, 1e-30)), -jnp.inf)


def ect_r(t, stage, *, q: float, k: float, b: float):
  """ECT's r(t) = max(t·(1 − q^{−(stage+1)}(1 + k·sigmoid(−b t))), 0) ("sigmoid" mapping);
  `stage` = ⌊iteration / double_every⌋ (may be traced)."""
  decay = 1.0 / jnp.power(jnp.float32(q), jnp.asarray(stage, jnp.float32) + 1.0)
  return jnp.maximum(t * (1.0 - decay * (1.0 + k * jax.nn.sigmoid(-b * t))), 0.0)


def sq_norm(a, b):
  """‖a − b‖² per example [B], in float32."""
  d = (a - b).astype(jnp.float32)
  return jnp.sum(jnp.square(d).reshape(d.shape[0], -1), axis=-1)


def distance(a, b, metric: str, huber_c: float = 0.0):
  """Per-example distance [B]: "l2" the official mean over elements of (a − b)² (CM's mean_flat),
  "pseudo_huber" √(‖a − b‖² + c²) − c (iCT eq. 10; ECT with c ≥ 0)."""
  if metric == "l2":
    return sq_norm(a, b) / float(np.prod(a.shape[1:]))
  if metric == "pseudo_huber":
    return jnp.sqrt(sq_norm(a, b) + huber_c**2) - huber_c
  raise ValueError(f"method.metric={metric!r}: expected 'l2' or 'pseudo_huber'")


def huber_c_for(element_shape) -> float:
  """iCT's c = 0.00054·√d for data of d elements (d = 3072 on CIFAR-10: c = 0.03)."""
  return 0.00054 * math.sqrt(float(np.prod(element_shape)))


def bcast(v, like):
  return v.reshape((-1,) + (1,) * (like.ndim - 1)).astype(like.dtype)


def heun_step(denoiser, x, sigma, sigma_next):
  """One Heun step of the PF-ODE dx/dσ = (x − D(x, σ))/σ from σ to σ_next > 0, per example
  (σ [B]); CM's teacher step (official `heun_solver`)."""
  d = (x - denoiser(x, sigma)) / bcast(sigma, x)
  x_euler = x + bcast(sigma_next - sigma, x) * d
  d_next = (x_euler - denoiser(x_euler, sigma_next)) / bcast(sigma_next, x)
  return x + bcast((sigma_next - sigma) / 2, x) * (d + d_next)
