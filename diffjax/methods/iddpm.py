"""The discrete chain of a variance-preserving GaussianDiffusion (Ho et al. 2020; Nichol & Dhariwal
2021): its VLB in bits/dim, IDDPM's hybrid objective with learned variances, and IDDPM's respaced
ancestral sampler (guided-diffusion `respace.py`: the K kept nodes of the N-step chain, the
respaced β_k = 1 − ᾱ_{t_k}/ᾱ_{t_{k−1}} and β̃_k, the variance exp(f log β_k + (1 − f) log β̃_k)).

The chain has N transitions whose nodes sit at t_i = t_start + (1 − t_start)·i/N, i = 0..N
(`core.likelihood`); a `DiscreteChain` schedule of T steps is that chain with N = T − 1.
`Chain` is the component `GaussianDiffusion` holds; it registers the sampler
`sample.solver="iddpm_ancestral"`.

Config read here:
  method: objective="iddpm_hybrid", objective_kwargs=dict(num_steps=N, lambda_vlb=0.001,
          num_bins=256)
  sample: solver="iddpm_ancestral": num_steps = K respaced steps, grid unused, solver_kwargs
          dict(var_type=..., clip_x0=False, chain_steps=N)
  eval:   bpd_kwargs=dict(num_steps=N, var_type=..., num_strata=16, decoder="discretized",
          clip_x0=False, num_bins=256, t_start=0)
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import likelihood
from diffjax.core import schedules
from diffjax.methods import base

HYBRID_KWARGS = ("num_steps", "lambda_vlb", "num_bins")
ANCESTRAL_KWARGS = ("var_type", "clip_x0", "chain_steps")
BPD_KWARGS = ("num_steps", "var_type", "num_strata", "decoder", "clip_x0", "num_bins", "t_start")


def space_timesteps(num_nodes: int, num_steps: int) -> np.ndarray:
  """IDDPM's "K evenly strided steps" of a chain of `num_nodes` nodes (guided-diffusion
  `respace.space_timesteps(T, "K")`): node round(k (T - 1)/(K - 1)), k = 0..K-1, Python's
  round-half-to-even on the accumulated stride. Increasing int64 [K], first 0, last T - 1."""
  if not 2 <= num_steps <= num_nodes:
    raise ValueError(f"sample.num_steps={num_steps}: the respaced chain takes 2..{num_nodes} of "
                     f"the chain's {num_nodes} nodes")
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


def iddpm_ancestral(raw_fn, z: jax.Array, key: jax.Array, *, t: jax.Array, chain: dict,
                    param, var_type: str = "learned_range", clip_x0: bool = False) -> jax.Array:
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
  xs = (jnp.arange(num), f32(t), f32(chain["alpha"]), f32(chain["sigma"]),
        f32(chain["log_beta"]), f32(chain["log_beta_tilde"]), f32(chain["coef_x0"]),
        f32(chain["coef_z"]))

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


class Chain:
  """The discrete chain of a variance-preserving `GaussianDiffusion` (held as `method.chain`).

  Reads the method's schedule, parameterisation, network (`raw_fn` / `mean_raw_fn`, `learn_sigma`)
  and config; immutable, all functions pure.
  """

  def __init__(self, method):
    self.method = method
    self.config = method.config
    self.objective_kwargs = dict(method.config.method.get("objective_kwargs", {}))
    self._ancestral_jit = jax.jit(self._ancestral, static_argnames=("num", "var_type", "clip_x0"))

  @property
  def schedule(self):
    return self.method.schedule()

  def require_vp(self, what: str) -> None:
    """Raises ValueError naming the schedule kind unless α² + σ² = 1 (the discrete chain's ᾱ)."""
    kind = self.config.schedule.get("kind")
    ok = getattr(self.schedule, "family", None) == "vp"
    if ok:
      with jax.ensure_compile_time_eval():
        a, s = self.schedule.alpha_sigma(jnp.linspace(0.0, 1.0, 17))
        ok = bool(np.allclose(np.square(a) + np.square(s), 1.0, atol=1e-5))
    if not ok:
      raise ValueError(f"{what} needs a variance-preserving schedule (α² + σ² = 1); "
                       f"schedule.kind={kind!r} is not")

  def num_steps(self, num_steps: int | None = None) -> int:
    """N, the transitions of the discrete chain (nodes t_i = i/N, i = 0..N).

    A `DiscreteChain` schedule of T steps fixes N = T - 1 (its nodes are the paper's x_1..x_T);
    otherwise `num_steps`, else `method.objective_kwargs.num_steps`, else 1000.
    """
    if isinstance(self.schedule, schedules.DiscreteChain):
      n = int(self.schedule.num_timesteps) - 1
      if num_steps is not None and int(num_steps) != n:
        raise ValueError(f"num_steps={num_steps}: the {self.config.schedule.kind!r} schedule has "
                         f"num_timesteps={n + 1}, i.e. N = {n} transitions; leave num_steps unset")
      return n
    n = num_steps if num_steps is not None else self.objective_kwargs.get("num_steps", 1000)
    if int(n) < 1:
      raise ValueError(f"num_steps must be >= 1; got {n}")
    return int(n)

  def alphas_cumprod(self, num_steps: int, t_start: float = 0.0) -> np.ndarray:
    """ᾱ_i = α(t_i)² at the N + 1 nodes t_i = t_start + (1 - t_start) i/N, float64 [N + 1] (the
    `DiscreteChain`'s own)."""
    if isinstance(self.schedule, schedules.DiscreteChain):
      return self.schedule.alphas_cumprod()
    with jax.ensure_compile_time_eval():
      lam = np.asarray(self.schedule.logsnr(likelihood.node_t(jnp.arange(num_steps + 1), num_steps,
                                                               t_start)), np.float64)
    abar = 1.0 / (1.0 + np.exp(-lam))
    if not np.all((abar > 0) & (abar < 1)):
      raise ValueError(f"schedule.kind={self.config.schedule.kind!r} has an infinite log-SNR at a "
                       "node of the discrete chain; use a schedule with finite λ(0), λ(1)")
    return abar

  def _var_type(self, where: str, var_type: str | None) -> str:
    learn_sigma = self.method.learn_sigma
    var_type = var_type or ("learned_range" if learn_sigma else "small")
    if var_type == "learned_range" and not learn_sigma:
      raise ValueError(f"{where}var_type='learned_range' needs model.learn_sigma=True; use "
                       "'small' or 'large'")
    return var_type

  # -- training: the hybrid objective -------------------------------------------------------------

  def check_hybrid(self) -> None:
    """Validates `method.objective="iddpm_hybrid"` against the model and schedule."""
    base.check_keys("method.objective_kwargs", self.objective_kwargs, HYBRID_KWARGS)
    if not self.method.learn_sigma:
      raise ValueError("method.objective='iddpm_hybrid' trains a learned variance: it needs "
                       "model.learn_sigma=True")
    self.require_vp("method.objective='iddpm_hybrid'")
    self.num_steps(self.objective_kwargs.get("num_steps"))  # checks it against the schedule

  def hybrid_loss(self, raw_fn, x: jax.Array, rng: jax.Array):
    """L_simple + λ L_vlb per example [B] (Nichol & Dhariwal 2021, eq. 16) and its parts."""
    kw = self.objective_kwargs
    return likelihood.iddpm_hybrid_loss(
        raw_fn, x, rng, schedule=self.schedule, param=self.method.param,
        num_steps=self.num_steps(kw.get("num_steps")),
        lambda_vlb=float(kw.get("lambda_vlb", 0.001)), num_bins=int(kw.get("num_bins", 256)))

  # -- sampling: IDDPM's respaced ancestral sampler ------------------------------------------------

  def ancestral_sample(self, params, rng, num: int, settings: dict, *, label=None, noise=None):
    """`sample.solver="iddpm_ancestral"`: K = settings["num_steps"] kept nodes of the N-step chain
    (`methods.sampling` calls it with the resolved sampler settings)."""
    if noise is not None:
      raise ValueError("sample noise= (fixed initial noise) is not supported by 'iddpm_ancestral'")
    options = dict(settings["solver_kwargs"])
    base.check_keys("sample.solver_kwargs of 'iddpm_ancestral'", options, ANCESTRAL_KWARGS)
    var_type = self._var_type("", options.get("var_type"))
    self.require_vp("solver 'iddpm_ancestral'")
    n = self.num_steps(options.get("chain_steps"))
    kept = space_timesteps(n + 1, int(settings["num_steps"]))
    chain = respaced_chain(self.alphas_cumprod(n)[kept])
    return self._ancestral_jit(params, rng, jnp.asarray(kept / n, jnp.float32),
                               {k: jnp.asarray(v, jnp.float32) for k, v in chain.items()},
                               num=num, var_type=var_type,
                               clip_x0=bool(options.get("clip_x0", False)), label=label)

  def _ancestral(self, params, rng, t, chain, *, num, var_type, clip_x0, label=None):
    method = self.method
    rng_init, rng_solve = jax.random.split(rng)
    z = jax.random.normal(rng_init, (num,) + method.element_shape)
    raw_fn = method.raw_fn(params, label)
    scale = float(self.config.sample.get("guidance_scale", 1.0))
    if label is not None and scale != 1.0:
      cond, uncond = raw_fn, method.raw_fn(params, method.null_label(label))
      c = method.element_shape[-1]

      def raw_fn(z_in, noise_cond):  # guidance on the mean channels, variance of the conditional
        out_c, out_u = cond(z_in, noise_cond), uncond(z_in, noise_cond)
        mean = out_u[..., :c] + scale * (out_c[..., :c] - out_u[..., :c])
        return jnp.concatenate([mean, out_c[..., c:]], axis=-1)

    return iddpm_ancestral(raw_fn, z, rng_solve, t=t, chain=chain, param=method.param,
                           var_type=var_type, clip_x0=clip_x0)

  # -- likelihood ----------------------------------------------------------------------------------

  def bpd(self, params, rng: jax.Array, x: jax.Array) -> dict:
    """Bits/dim of the discrete chain's VLB (Ho et al. 2020, eq. 5; Nichol & Dhariwal 2021, eq. 4).

    N transitions (nodes t_i = t_start + (1 - t_start) i/N), decoder by `eval.bpd_kwargs`:
    num_steps (N; the chain's own for a `DiscreteChain`), t_start (0; DDPM's x_1..x_T on the
    continuous VP: N = T - 1, t_start = 1/T), var_type ("learned_range" with learn_sigma, else
    "small"), num_strata (M = 16: `likelihood.discrete_vlb_stratified`, 2M + 2 network calls per
    image; 0: every term, `discrete_vlb_full`, N + 1 calls), decoder ("discretized": 8-bit data in
    [-1, 1]; "gaussian": continuous data), clip_x0, num_bins. Conditional models are evaluated
    with the null label (the unconditional likelihood). Jittable.

    Args:
      params: network parameters.
      rng: key for the nodes and ε.
      x: [B, ...] test data (in [-1, 1] on the 8-bit grid for the discretised decoder).

    Returns:
      [B] arrays, bits/dim: "bpd" = "prior" + "decoder" + "kl"; with num_strata > 0 also
      "bpd_mc_var", the estimated variance of "bpd" over the estimator's own randomness (the
      Monte-Carlo standard error of a mean over n images is √(mean(bpd_mc_var)/n)).

    Raises:
      ValueError: for a schedule that is not variance preserving (naming its kind), or bad
        eval.bpd_kwargs.
    """
    method = self.method
    kw = dict(self.config.get("eval", {}).get("bpd_kwargs", {}))
    base.check_keys("eval.bpd_kwargs", kw, BPD_KWARGS)
    self.require_vp("bpd")
    var_type = self._var_type("eval.bpd_kwargs.", kw.get("var_type"))
    label = None
    if method.conditional:
      label = jnp.full(x.shape[:1], method.num_classes, jnp.int32)
    if var_type == "learned_range":
      raw_fn = method.raw_fn(params, label)
    else:
      raw_fn = method.mean_raw_fn(params, label)
    num_strata = int(kw.get("num_strata", 16))
    num_steps = self.num_steps(kw.get("num_steps"))
    t_start = float(kw.get("t_start", 0.0))
    if t_start and isinstance(self.schedule, schedules.DiscreteChain):
      raise ValueError("eval.bpd_kwargs.t_start must be 0 for a discrete chain schedule (its node "
                       f"0 is the paper's x_1 already); got {t_start}")
    self.alphas_cumprod(num_steps, t_start)  # raises if λ is infinite at a node
    common = dict(schedule=self.schedule, param=method.param, num_steps=num_steps,
                  var_type=var_type, t_start=t_start, decoder=kw.get("decoder", "discretized"),
                  clip_x0=bool(kw.get("clip_x0", False)), num_bins=int(kw.get("num_bins", 256)))
    if num_strata > 0:
      _, aux = likelihood.discrete_vlb_stratified(raw_fn, x, rng, num_strata=num_strata, **common)
    else:
      _, aux = likelihood.discrete_vlb_full(raw_fn, x, rng, **common)
    per_dim = 1.0 / (math.prod(x.shape[1:]) * math.log(2.0))
    out = {"bpd": aux["nats"] * per_dim, "prior": aux["prior"] * per_dim,
           "decoder": aux["decoder"] * per_dim, "kl": aux["kl"] * per_dim}
    if "nats_mc_var" in aux:
      out["bpd_mc_var"] = aux["nats_mc_var"] * per_dim**2
    return out
