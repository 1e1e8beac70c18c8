r"""Likelihood bounds: VDM's continuous-time ELBO, the DDPM/IDDPM discrete VLB with a discretised
Gaussian decoder, and IDDPM's hybrid loss with learned variance. Results in nats per example and
bits per dimension (nats / (D ln 2)); x is [B, ...] in [-1, 1] for the discrete decoders.

The discrete chain has N transitions on the grid t_i = i/N, i = 0..N: the decoder reads z at
t_0 = 0, the prior at t_N = 1. A `schedules.DiscreteChain` with T steps puts its nodes x_1..x_T on
exactly that grid with N = T - 1, so the chain is DDPM's: decoder L_0 at x_1, KL terms L_1..L_{T-1},
prior L_T (Ho et al. 2020, eq. 5; Nichol & Dhariwal 2021, eq. 4-5).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy import special

from diffjax.core import parameterization as param_lib
from diffjax.core import weighting as weighting_lib

Array = jax.Array
VAR_TYPES = ("small", "large", "learned_range")
DECODERS = ("discretized", "vdm", "gaussian")


def _sum(v: Array) -> Array:
  return jnp.sum(v.reshape(v.shape[0], -1), axis=1)


def _num_dims(x: Array) -> int:
  return math.prod(x.shape[1:])


def _ends(schedule, ts):
  """(α, σ) at the given times as lists of scalars; jax arrays, so learned (traced) schedules work."""
  a, s = schedule.alpha_sigma(jnp.asarray(ts, jnp.float32))
  return list(a), list(s)


# ------------------------------------------------------------------------------------------------
# Prior and decoders.


def prior_kl(x: Array, alpha1: float | Array, sigma1: float | Array) -> Array:
  """KL(N(α₁x, σ₁²) ‖ N(0, α₁² + σ₁²)) summed over dims [B] (VDM's L_prior; N(0, I) for VP)."""
  p = alpha1**2 + sigma1**2
  return 0.5 * _sum((sigma1**2 + alpha1**2 * jnp.square(x)) / p - 1.0 - jnp.log(sigma1**2 / p))


def gaussian_decoder_nll(x: Array, mean: Array, var: Array) -> Array:
  """-log N(x; mean, var) summed over dims [B]; var broadcasts ([B] or [B, ...])."""
  var = param_lib.bcast(var, x) if jnp.ndim(var) == 1 else var
  return 0.5 * _sum(jnp.log(2.0 * math.pi * var) + jnp.square(x - mean) / var)


GRIDS = ("ddpm", "vdm")


def data_grid(num_bins: int = 256, grid: str = "ddpm") -> Array:
  """The values 8-bit data take in [-1, 1]: "ddpm" k/127.5 - 1 (diffjax.data's scaling, Ho et al.)
  or "vdm" 2(k + ½)/256 - 1 (VDM's `encode`). [num_bins]."""
  k = jnp.arange(num_bins, dtype=jnp.float32)
  if grid == "ddpm":
    return 2.0 * k / (num_bins - 1) - 1.0
  if grid == "vdm":
    return 2.0 * (k + 0.5) / num_bins - 1.0
  raise ValueError(f"grid must be one of {GRIDS}; got {grid!r}.")


def vdm_decoder_nll(
    x: Array, z0: Array, alpha0: Array, sigma0: Array, num_bins: int = 256, grid: str = "ddpm"
) -> Array:
  """VDM's decoder (Kingma et al. 2021, App. C): p(x_k | z₀) ∝ exp(-½((z₀/α₀ - g_k)/σ̃₀)²) over the
  grid values g_k of `data_grid` (the grid must be the one the data live on: with σ̃₀ ≈ 1e-3 a
  1/256 offset costs nats); x is snapped to its nearest grid value. -log p summed [B]."""
  values = data_grid(num_bins, grid)
  lo, step = values[0], values[1] - values[0]
  idx = jnp.clip(jnp.round((x - lo) / step), 0, num_bins - 1).astype(jnp.int32)
  grid = values
  scaled = (z0 / param_lib.bcast(alpha0, z0))[..., None]
  inv = param_lib.bcast(alpha0 / sigma0, z0)[..., None]
  logp = jax.nn.log_softmax(-0.5 * jnp.square((scaled - grid) * inv), axis=-1)
  return -_sum(jnp.take_along_axis(logp, idx[..., None], axis=-1)[..., 0])


def discretized_gaussian_nll(x: Array, mean: Array, log_var: Array, num_bins: int = 256) -> Array:
  r"""DDPM's discretised Gaussian decoder (Ho et al. 2020, eq. 13), -log p summed over dims [B].

  Bins of half-width 1/(num_bins - 1) around data values in [-1, 1]; the outermost bins extend to
  ±∞ (IDDPM's thresholds x < -0.999, x > 0.999). Uses the exact normal CDF (IDDPM uses a tanh
  approximation, which differs by < 1e-3 in the CDF). log_var: [B] or x's shape.
  """
  log_var = param_lib.bcast(log_var, x) if jnp.ndim(log_var) == 1 else log_var
  inv_std = jnp.exp(-0.5 * log_var)
  half = 1.0 / (num_bins - 1)
  upper = inv_std * (x - mean + half)
  lower = inv_std * (x - mean - half)
  # Φ(upper) - Φ(lower) = Φ(b) - Φ(a) with b ≤ 0 where that side has the precision (for lower > 0
  # by symmetry Φ(-lower) - Φ(-upper)); one formula, no jnp.where between two computed branches
  # whose unselected one can be -inf with an infinite derivative (0·∞ = NaN in the gradient).
  pos = lower > 0
  a = jnp.where(pos, -upper, lower)
  b = jnp.where(pos, -lower, upper)
  log_b = special.log_ndtr(b)
  mid = log_b + jnp.log(-jnp.expm1(special.log_ndtr(a) - log_b))
  logp = jnp.where(
      x < -0.999, special.log_ndtr(upper), jnp.where(x > 0.999, special.log_ndtr(-lower), mid)
  )
  return -_sum(logp)


# ------------------------------------------------------------------------------------------------
# VDM continuous / discrete ELBO.


def vdm_elbo(
    raw_fn: Callable[[Array, Array], Array],
    x: Array,
    rng: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    num_steps: int | None = None,
    decoder: str = "vdm",
    num_bins: int = 256,
    grid: str = "ddpm",
    low_discrepancy: bool = True,
) -> tuple[Array, dict]:
  r"""VDM's ELBO (Kingma et al. 2021, eq. 11): -log p(x) ≤ L_prior + L_recon + L_diffusion.

  L_diffusion = ½ E_t[-λ'(t) ‖ε - ε̂‖²] (continuous, eq. 17) or, with num_steps = T,
  ½ T E_i[expm1(λ_s - λ_t) ‖ε - ε̂‖²], s = (i-1)/T, t = i/T (eq. 13 in ε form). One t and one ε
  per example (antithetic t across the batch when low_discrepancy). decoder: "vdm" (softmax over
  the num_bins values of `data_grid(num_bins, grid)`, App. C) or "gaussian" (N(x; z₀/α₀, σ̃₀²),
  for continuous data).

  Returns:
    (bits per dim [B], aux with "prior", "recon", "diffusion", "nats" [B], nats per example).
  """
  if decoder not in ("vdm", "gaussian"):
    raise ValueError(f"decoder must be 'vdm' or 'gaussian'; got {decoder!r}.")
  batch = x.shape[0]
  rng_t, rng_eps, rng_0 = jax.random.split(rng, 3)
  (a0, a1), (s0, s1) = _ends(schedule, [0.0, 1.0])
  ones = jnp.ones((batch,), jnp.float32)
  z0 = a0 * x + s0 * jax.random.normal(rng_0, x.shape)
  if decoder == "vdm":
    recon = vdm_decoder_nll(x, z0, a0 * ones, s0 * ones, num_bins, grid)
  else:
    recon = gaussian_decoder_nll(x, z0 / a0, (s0 / a0) ** 2 * ones)
  prior = prior_kl(x, a1, s1)

  u = weighting_lib.uniform_u(rng_t, batch, low_discrepancy)
  if num_steps is None:
    t = u
  else:
    i = jnp.floor(u * num_steps) + 1.0
    t, s = i / num_steps, (i - 1.0) / num_steps
  alpha, sigma = schedule.alpha_sigma(t)
  eps = jax.random.normal(rng_eps, x.shape)
  z = param_lib.bcast(alpha, x) * x + param_lib.bcast(sigma, x) * eps
  raw = raw_fn(*param.net_inputs(z, t, alpha, sigma))
  eps_mse = jnp.square(param.eps_scale(alpha, sigma)) * _sum(
      jnp.square(raw - param.raw_target(x, eps, alpha, sigma))
  )
  if num_steps is None:
    diffusion = 0.5 * -schedule.dlogsnr_dt(t) * eps_mse
  else:
    diffusion = 0.5 * num_steps * jnp.expm1(schedule.logsnr(s) - schedule.logsnr(t)) * eps_mse
  nats = prior + recon + diffusion
  aux = {"prior": prior, "recon": recon, "diffusion": diffusion, "nats": nats}
  return nats / (_num_dims(x) * math.log(2.0)), aux


# ------------------------------------------------------------------------------------------------
# DDPM / IDDPM discrete VLB.


def _split_output(out: Array, x: Array, var_type: str) -> tuple[Array, Array | None]:
  if var_type == "learned_range":
    if out.shape[:-1] != x.shape[:-1] or out.shape[-1] != 2 * x.shape[-1]:
      raise ValueError(
          f"var_type='learned_range' needs raw_fn to output {x.shape[:-1]} + "
          f"({2 * x.shape[-1]},) (mean and variance channels); got {out.shape}."
      )
    return out[..., : x.shape[-1]], out[..., x.shape[-1] :]
  if out.shape != x.shape:
    raise ValueError(f"raw_fn output shape {out.shape} must equal x's shape {x.shape}.")
  return out, None


def _transition(schedule, s, t):
  """Posterior q(z_s | z_t, x) = N(c_z z_t + c_x x, v_q) and forward variance σ²_{t|s}, all [B]."""
  lam_s, lam_t = schedule.logsnr(s), schedule.logsnr(t)
  (alpha_s, sigma_s), (alpha_t, sigma_t) = schedule.alpha_sigma(s), schedule.alpha_sigma(t)
  frac = -jnp.expm1(lam_t - lam_s)  # 1 - SNR_t/SNR_s = σ²_{t|s}/σ_t²
  c_x = alpha_s * frac
  c_z = (alpha_t / alpha_s) * jnp.square(sigma_s / sigma_t)
  v_q = jnp.square(sigma_s) * frac
  v_fwd = jnp.square(sigma_t) * frac  # "β_t"
  return c_x, c_z, v_q, v_fwd


def vlb_term(
    raw_fn: Callable,
    x: Array,
    eps: Array,
    i: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    num_steps: int,
    var_type: str = "small",
    num_bins: int = 256,
    decoder: str = "discretized",
    clip_x0: bool = False,
    stop_grad_mean: bool = False,
    t_start: float = 0.0,
) -> Array:
  r"""One term of the discrete VLB per example, nats [B], at node i ∈ {0..N} ([B] int).

  Node i sits at t_i = t_start + (1 - t_start) i/N (`node_t`). t_start = 0 puts node 0 at the
  schedule's t = 0; DDPM's chain x_1..x_T on the continuous VP is t_start = 1/T, N = T - 1 (its
  decoder input x_1 at σ ≈ √β_1 = 0.01, not at the VP's t = 0, σ = 0.001).

  i ≥ 1: KL(q(z_{i-1} | z_i, x) ‖ p(z_{i-1} | z_i)) with p's mean the posterior mean at x̂₀ and
  variance by var_type: "small" β̃ = v_q, "large" β = σ²_{t|s}, "learned_range" (IDDPM eq. 15)
  exp(f log β + (1 - f) log β̃) with f = (v + 1)/2 from the extra output channels.
  i = 0: decoder -log p(x | z_0), discretised Gaussian at mean x̂₀ with IDDPM's node-0 variance
  (β = σ₀², β̃ clipped to the first transition's) or, for decoder="gaussian", N(x̂₀, that variance).
  stop_grad_mean stops gradients through the mean (IDDPM's hybrid loss: the VLB trains Σ only).
  """
  if var_type not in VAR_TYPES:
    raise ValueError(f"var_type must be one of {VAR_TYPES}; got {var_type!r}.")
  if decoder not in ("discretized", "gaussian"):
    raise ValueError(f"decoder must be 'discretized' or 'gaussian'; got {decoder!r}.")
  if not 0.0 <= t_start < 1.0:
    raise ValueError(f"t_start must be in [0, 1); got {t_start}.")
  i = jnp.asarray(i, jnp.int32)
  t = node_t(i, num_steps, t_start)
  alpha, sigma = schedule.alpha_sigma(t)
  z = param_lib.bcast(alpha, x) * x + param_lib.bcast(sigma, x) * eps
  out = raw_fn(*param.net_inputs(z, t, alpha, sigma))
  return _vlb_term_from_output(
      out,
      x,
      z,
      i,
      schedule=schedule,
      param=param,
      num_steps=num_steps,
      var_type=var_type,
      num_bins=num_bins,
      decoder=decoder,
      clip_x0=clip_x0,
      stop_grad_mean=stop_grad_mean,
      t_start=t_start,
  )


def node_t(i, num_steps: int, t_start: float = 0.0):
  """Time of node i of the N = num_steps transition chain: t_start + (1 - t_start) i/N."""
  return t_start + (1.0 - t_start) * (jnp.asarray(i).astype(jnp.float32) / num_steps)


def _vlb_term_from_output(
    out,
    x,
    z,
    i,
    *,
    schedule,
    param,
    num_steps,
    var_type,
    num_bins,
    decoder,
    clip_x0,
    stop_grad_mean,
    t_start=0.0,
):
  t = node_t(i, num_steps, t_start)
  s = node_t(jnp.maximum(i - 1, 0), num_steps, t_start)
  alpha, sigma = schedule.alpha_sigma(t)
  mean_raw, var_raw = _split_output(out, x, var_type)
  if stop_grad_mean:
    mean_raw = jax.lax.stop_gradient(mean_raw)
  x0_hat, _ = param.x0_eps(mean_raw, z, alpha, sigma)
  if clip_x0:
    x0_hat = jnp.clip(x0_hat, -1.0, 1.0)

  # Transition i-1 <- i (for i = 0 the first transition 0 <- 1 provides the clipped β̃).
  c_x, c_z, v_q, v_fwd = _transition(schedule, s, t)
  _, _, v_q1, _ = _transition(
      schedule, jnp.full_like(t, t_start), jnp.full_like(t, node_t(1, num_steps, t_start))
  )
  is_dec = i == 0
  # guided-diffusion: at node 0 fixed-small and fixed-large both use the clipped β̃ (that of the
  # first transition); learned-range interpolates it with β = σ₀² (= β_1 = 1 - ᾱ_1 on VP).
  log_small = jnp.log(jnp.where(is_dec, v_q1, v_q))
  if var_type == "small":
    log_var = param_lib.bcast(log_small, x) * jnp.ones_like(x)
  elif var_type == "large":
    log_var = param_lib.bcast(jnp.log(jnp.where(is_dec, v_q1, v_fwd)), x) * jnp.ones_like(x)
  else:
    log_large = jnp.log(jnp.where(is_dec, jnp.square(sigma), v_fwd))
    f = (var_raw + 1.0) / 2.0
    log_var = f * param_lib.bcast(log_large, x) + (1.0 - f) * param_lib.bcast(log_small, x)

  diff = param_lib.bcast(c_x, x) * (x - x0_hat)  # μ_q - μ_p
  # v_q = 0 at node 0, whose row takes the decoder below: keep its unused KL finite.
  log_vq = param_lib.bcast(jnp.log(jnp.where(is_dec, v_q1, v_q)), x)
  kl = 0.5 * _sum(
      log_var - log_vq + jnp.exp(log_vq - log_var) - 1.0 + jnp.square(diff) * jnp.exp(-log_var)
  )
  # The decoder is only used at node 0; elsewhere it sees a benign input (exact mean, β̃_1), so
  # its unused value cannot put NaN into the gradient.
  dec_mask = param_lib.bcast(is_dec, x)
  dec_mean = jnp.where(dec_mask, x0_hat, x)
  dec_log_var = jnp.where(dec_mask, log_var, param_lib.bcast(jnp.log(v_q1), x))
  if decoder == "discretized":
    dec = discretized_gaussian_nll(x, dec_mean, dec_log_var, num_bins)
  else:
    dec = gaussian_decoder_nll(x, dec_mean, jnp.exp(dec_log_var))
  del c_z
  return jnp.where(is_dec, dec, kl)


def discrete_vlb(
    raw_fn: Callable,
    x: Array,
    rng: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    num_steps: int,
    **term_kwargs,
) -> tuple[Array, dict]:
  """L_prior + (N + 1) E_{i~U{0..N}}[vlb_term_i]: an unbiased one-sample estimate of the VLB.

  Returns (bits per dim [B], aux {"prior", "term", "nats"} [B]).
  """
  rng_i, rng_eps = jax.random.split(rng)
  i = jax.random.randint(rng_i, x.shape[:1], 0, num_steps + 1)
  eps = jax.random.normal(rng_eps, x.shape)
  term = vlb_term(
      raw_fn, x, eps, i, schedule=schedule, param=param, num_steps=num_steps, **term_kwargs
  )
  (_, a1), (_, s1) = _ends(schedule, [0.0, 1.0])
  prior = prior_kl(x, a1, s1)
  nats = prior + (num_steps + 1) * term
  return nats / (_num_dims(x) * math.log(2.0)), {"prior": prior, "term": term, "nats": nats}


def discrete_vlb_full(
    raw_fn: Callable,
    x: Array,
    rng: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    num_steps: int,
    **term_kwargs,
) -> tuple[Array, dict]:
  """The whole VLB, every term evaluated (N + 1 network calls in a lax.scan), as for bpd eval.

  Returns (bits per dim [B], aux {"prior", "decoder", "kl" (sum of KL terms), "nats"} [B]).
  """

  def step(acc, i):
    eps = jax.random.normal(jax.random.fold_in(rng, i), x.shape)
    ii = jnp.full(x.shape[:1], i, jnp.int32)
    term = vlb_term(
        raw_fn, x, eps, ii, schedule=schedule, param=param, num_steps=num_steps, **term_kwargs
    )
    return acc + jnp.where(i == 0, 0.0, term), jnp.where(i == 0, term, 0.0)

  kl, dec_terms = jax.lax.scan(step, jnp.zeros(x.shape[:1]), jnp.arange(num_steps + 1))
  decoder = dec_terms[0]
  (_, a1), (_, s1) = _ends(schedule, [0.0, 1.0])
  prior = prior_kl(x, a1, s1)
  nats = prior + decoder + kl
  aux = {"prior": prior, "decoder": decoder, "kl": kl, "nats": nats}
  return nats / (_num_dims(x) * math.log(2.0)), aux


def strata(num_steps: int, num_strata: int) -> tuple[np.ndarray, np.ndarray]:
  """Contiguous strata of the KL nodes 1..N: first node 1 + round(m N/M) and size, [M] int each."""
  if not 1 <= num_strata <= num_steps:
    raise ValueError(f"num_strata must be in [1, num_steps={num_steps}]; got {num_strata}.")
  bounds = np.round(np.arange(num_strata + 1) * num_steps / num_strata).astype(np.int64)
  return bounds[:-1] + 1, np.diff(bounds)


def discrete_vlb_stratified(
    raw_fn: Callable,
    x: Array,
    rng: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    num_steps: int,
    num_strata: int = 16,
    **term_kwargs,
) -> tuple[Array, dict]:
  r"""Unbiased stratified estimate of the whole discrete VLB, with an unbiased estimate of its
  Monte-Carlo variance; 2M + 2 network calls per example instead of `discrete_vlb_full`'s N + 1.

  The KL nodes 1..N are cut into M = num_strata contiguous strata S_m of n_m nodes (`strata`). In
  each, two nodes are drawn uniformly and independently, each with its own ε, and
  Σ_{i ∈ S_m} E[L_i] is estimated by n_m (L_a + L_b)/2 (stratified sampling with two draws per
  stratum; Cochran, Sampling Techniques, 1977, ch. 5); the decoder L_0 is averaged over two ε;
  the prior is exact. With two i.i.d. draws per stratum, n_m² (L_a - L_b)²/4 is an unbiased
  estimate of that stratum's contribution to the variance, so "nats_mc_var" (their sum, plus the
  decoder's) estimates the variance of "nats" over the sampling of nodes and ε, per example.

  Returns:
    (bits per dim [B], aux {"prior", "decoder", "kl", "nats", "nats_mc_var"}: [B] arrays in nats).
  """
  lo, size = strata(int(num_steps), int(num_strata))
  # Slots: two decoder draws (node 0), then two draws per stratum.
  slot_lo = jnp.asarray(np.concatenate([[0, 0], np.repeat(lo, 2)]), jnp.int32)
  slot_size = jnp.asarray(np.concatenate([[1, 1], np.repeat(size, 2)]), jnp.int32)
  batch = x.shape[0]

  def slot(_, inputs):
    j, first, count = inputs
    key = jax.random.fold_in(rng, j)
    rng_i, rng_eps = jax.random.split(key)
    i = first + jax.random.randint(rng_i, (batch,), 0, count)
    eps = jax.random.normal(rng_eps, x.shape)
    return None, vlb_term(
        raw_fn, x, eps, i, schedule=schedule, param=param, num_steps=num_steps, **term_kwargs
    )

  _, terms = jax.lax.scan(slot, None, (jnp.arange(slot_lo.shape[0]), slot_lo, slot_size))
  pairs = terms.reshape(-1, 2, batch)  # [M + 1, 2, B]; row 0 is the decoder
  weights = jnp.asarray(np.concatenate([[1], size]), jnp.float32)[:, None]  # n_m (1 for L_0)
  sums = weights * jnp.mean(pairs, axis=1)  # [M + 1, B]
  mc_var = jnp.sum(jnp.square(weights * (pairs[:, 0] - pairs[:, 1])) / 4.0, axis=0)
  decoder, kl = sums[0], jnp.sum(sums[1:], axis=0)
  (_, a1), (_, s1) = _ends(schedule, [0.0, 1.0])
  prior = prior_kl(x, a1, s1)
  nats = prior + decoder + kl
  aux = {"prior": prior, "decoder": decoder, "kl": kl, "nats": nats, "nats_mc_var": mc_var}
  return nats / (_num_dims(x) * math.log(2.0)), aux


def iddpm_hybrid_loss(
    raw_fn: Callable,
    x: Array,
    rng: Array,
    *,
    schedule: Any,
    param: param_lib.Parameterization,
    num_steps: int,
    lambda_vlb: float = 0.001,
    num_bins: int = 256,
) -> tuple[Array, dict]:
  r"""IDDPM's L_hybrid = L_simple + λ L_vlb (Nichol & Dhariwal 2021, eq. 16), λ = 0.001.

  raw_fn outputs 2C channels: the parameterisation's raw output and v ∈ [-1, 1] for the
  learned-range variance. One node i ~ U{0..N} per example (N = num_steps transitions, T = N + 1
  terms): L_simple = mean_d (raw - target)² (the mean-over-dims MSE of guided-diffusion), and
  L_vlb ≈ T · term_i in bits per dim with the mean's gradient stopped, so the loss is
  mse + λ T vb_i (guided-diffusion's `vb *= num_timesteps / 1000`).

  Returns (loss [B], aux {"mse", "vb" (bits/dim of the sampled term), "i"}).
  """
  batch = x.shape[0]
  rng_i, rng_eps = jax.random.split(rng)
  i = jax.random.randint(rng_i, (batch,), 0, num_steps + 1)
  eps = jax.random.normal(rng_eps, x.shape)
  t = i.astype(jnp.float32) / num_steps
  alpha, sigma = schedule.alpha_sigma(t)
  z = param_lib.bcast(alpha, x) * x + param_lib.bcast(sigma, x) * eps

  out = raw_fn(*param.net_inputs(z, t, alpha, sigma))
  vb_nats = _vlb_term_from_output(
      out,
      x,
      z,
      i,
      schedule=schedule,
      param=param,
      num_steps=num_steps,
      var_type="learned_range",
      num_bins=num_bins,
      decoder="discretized",
      clip_x0=False,
      stop_grad_mean=True,
  )
  mean_raw, _ = _split_output(out, x, "learned_range")
  mse = jnp.mean(
      jnp.square(mean_raw - param.raw_target(x, eps, alpha, sigma)).reshape(batch, -1), axis=1
  )
  vb = vb_nats / (_num_dims(x) * math.log(2.0))
  loss = mse + lambda_vlb * (num_steps + 1) * vb
  return loss, {"mse": mse, "vb": vb, "i": i}
