"""IDDPM's respaced ancestral sampler with learned variances (Nichol & Dhariwal 2021, §3.1 and §4;
guided-diffusion `respace.py`) as pure functions: the K kept nodes of an N-step discrete chain, the
respaced β_k = 1 − ᾱ_{t_k}/ᾱ_{t_{k−1}} and β̃_k, and ancestral sampling with the variance
exp(f log β_k + (1 − f) log β̃_k). `iddpm.Chain` runs them for `sample.solver="iddpm_ancestral"`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import likelihood


def space_timesteps(num_nodes: int, num_steps: int) -> np.ndarray:
  """IDDPM's "K evenly strided steps" of a chain of `num_nodes` nodes (guided-diffusion
  `respace.space_timesteps(T, "K")`): node round(k (T - 1)/(K - 1)), k = 0..K-1, Python's
  round-half-to-even on the accumulated stride. Increasing int64 [K], first 0, last T - 1."""
  if not 2 <= num_steps <= num_nodes:
    raise ValueError(
        f"sample.num_steps={num_steps}: the respaced chain takes 2..{num_nodes} of "
        f"the chain's {num_nodes} nodes"
    )
  stride, cur, steps = (num_nodes - 1) / (num_steps - 1), 0.0, []
  for _ in range(num_steps):
    steps.append(round(cur))
    cur += stride
  return np.asarray(steps, np.int64)


def respaced_chain(alphas_cumprod: np.ndarray) -> dict[str, np.ndarray]:
  """The chain through the kept nodes (Nichol & Dhariwal 2021, §4; guided-diffusion `respace.py`).

  Args:
    alphas_cumprod: ᾱ at the K kept nodes, increasing noise, float64 [K].

  Returns:
    float64 [K] arrays: "alphas_cumprod", "alpha" = √ᾱ_k, "sigma" = √(1 - ᾱ_k) (in float64, so
    that float32 users keep σ's precision where ᾱ → 1); "log_beta" = log β_k,
    β_k = 1 - ᾱ_k/ᾱ_{k-1} (ᾱ_{-1} = 1);
    "log_beta_tilde" = log β̃_k, β̃_k = β_k (1 - ᾱ_{k-1})/(1 - ᾱ_k), clipped to β̃_1 at k = 0
    (guided-diffusion's `posterior_log_variance_clipped`); "coef_x0", "coef_z": the posterior
    mean μ̃_k = coef_x0 x̂₀ + coef_z z_k (Ho et al. 2020, eq. 7).
  """
  abar = np.asarray(alphas_cumprod, np.float64)
  prev = np.concatenate([[1.0], abar[:-1]])
  beta = 1.0 - abar / prev
  beta_tilde = beta * (1.0 - prev) / (1.0 - abar)
  return {
      "alphas_cumprod": abar,
      "alpha": np.sqrt(abar),
      "sigma": np.sqrt(1.0 - abar),
      "log_beta": np.log(beta),
      "log_beta_tilde": np.log(np.concatenate([beta_tilde[1:2], beta_tilde[1:]])),
      "coef_x0": beta * np.sqrt(prev) / (1.0 - abar),
      "coef_z": np.sqrt(1.0 - beta) * (1.0 - prev) / (1.0 - abar),
  }


def iddpm_ancestral(
    raw_fn,
    z: jax.Array,
    key: jax.Array,
    *,
    t: jax.Array,
    chain: dict,
    param,
    var_type: str = "learned_range",
    clip_x0: bool = False,
) -> jax.Array:
  r"""Ancestral sampling down a (respaced) discrete chain with IDDPM's variances (Ho et al. 2020,
  Alg. 2, with Nichol & Dhariwal 2021, eq. 15), as guided-diffusion's `p_sample_loop`.

  At kept node k = K-1..0: x̂₀ from the network at (z, t_k), z ← μ̃_k + √v_k ξ_k with
  v_k = exp(f log β_k + (1 - f) log β̃_k), f = (v + 1)/2 from the extra output channels
  ("learned_range"), β̃_k ("small", = f ≡ 0) or β_k ("large", = f ≡ 1; guided-diffusion's β̃_1
  at k = 0 is never used, no noise being added there). The last step (k = 0: coef_x0 = 1,
  coef_z = 0) returns x̂₀. ξ of scan step j (j = 0 at the noisiest node) is
  `normal(fold_in(key, j))`, as in `solvers.ddpm`.

  Args:
    raw_fn: raw_fn(z_in [B, ...], noise_cond [B]) -> [B, ..., C] or [B, ..., 2C] (mean, then v).
    z: [B, ..., C] start, N(0, I) in guided-diffusion.
    key: PRNG key for the noise.
    t: [K] float, t of the kept nodes (increasing).
    chain: `respaced_chain` of the kept nodes' ᾱ ([K] arrays).
    param: the model's parameterisation.
    var_type: "learned_range", "small" or "large".
    clip_x0: clip x̂₀ to [-1, 1] (guided-diffusion's clip_denoised, for image data).

  Returns:
    [B, ..., C] samples in data space.
  """
  if var_type not in likelihood.VAR_TYPES:
    raise ValueError(f"var_type must be one of {likelihood.VAR_TYPES}; got {var_type!r}")
  channels, batch, num = z.shape[-1], z.shape[0], t.shape[0]
  f32 = lambda a: jnp.asarray(a, jnp.float32)[::-1]  # pylint: disable=unnecessary-lambda-assignment
  xs = (
      jnp.arange(num),
      f32(t),
      f32(chain["alpha"]),
      f32(chain["sigma"]),
      f32(chain["log_beta"]),
      f32(chain["log_beta_tilde"]),
      f32(chain["coef_x0"]),
      f32(chain["coef_z"]),
  )

  def step(z, inputs):
    j, t_k, alpha, sigma, log_beta, log_beta_tilde, coef_x0, coef_z = inputs
    ones = jnp.ones((batch,), jnp.float32)
    alpha, sigma = alpha * ones, sigma * ones
    out = raw_fn(*param.net_inputs(z, t_k * ones, alpha, sigma))
    x0, _ = param.x0_eps(out[..., :channels], z, alpha, sigma)
    if clip_x0:
      x0 = jnp.clip(x0, -1.0, 1.0)
    if var_type == "learned_range":
      frac = (out[..., channels:] + 1.0) / 2.0
      log_var = frac * log_beta + (1.0 - frac) * log_beta_tilde
    else:
      log_var = log_beta_tilde if var_type == "small" else log_beta
    noise = jax.random.normal(jax.random.fold_in(key, j), z.shape, z.dtype)
    scale = jnp.where(j == num - 1, 0.0, jnp.exp(0.5 * log_var))
    return (coef_x0 * x0 + coef_z * z + scale * noise).astype(z.dtype), None

  return jax.lax.scan(step, z, xs)[0]
