"""The discrete chain of a variance-preserving GaussianDiffusion (Ho et al. 2020; Nichol & Dhariwal
2021): its VLB in bits/dim, IDDPM's hybrid objective with learned variances, and IDDPM's respaced
ancestral sampler (guided-diffusion `respace.py`: the K kept nodes of the N-step chain, the
respaced β_k = 1 − ᾱ_{t_k}/ᾱ_{t_{k−1}} and β̃_k, the variance exp(f log β_k + (1 − f) log β̃_k);
its pure functions are in respacing.py).

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
from diffjax.methods import respacing

HYBRID_KWARGS = ("num_steps", "lambda_vlb", "num_bins")
ANCESTRAL_KWARGS = ("var_type", "clip_x0", "chain_steps")
BPD_KWARGS = ("num_steps", "var_type", "num_strata", "decoder", "clip_x0", "num_bins", "t_start")


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
      raise ValueError(
          f"{what} needs a variance-preserving schedule (α² + σ² = 1); "
          f"schedule.kind={kind!r} is not"
      )

  def num_steps(self, num_steps: int | None = None) -> int:
    """N, the transitions of the discrete chain (nodes t_i = i/N, i = 0..N).

    A `DiscreteChain` schedule of T steps fixes N = T - 1 (its nodes are the paper's x_1..x_T);
    otherwise `num_steps`, else `method.objective_kwargs.num_steps`, else 1000.
    """
    if isinstance(self.schedule, schedules.DiscreteChain):
      n = int(self.schedule.num_timesteps) - 1
      if num_steps is not None and int(num_steps) != n:
        raise ValueError(
            f"num_steps={num_steps}: the {self.config.schedule.kind!r} schedule has "
            f"num_timesteps={n + 1}, i.e. N = {n} transitions; leave num_steps unset"
        )
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
      lam = np.asarray(
          self.schedule.logsnr(likelihood.node_t(jnp.arange(num_steps + 1), num_steps, t_start)),
          np.float64,
      )
    abar = 1.0 / (1.0 + np.exp(-lam))
    if not np.all((abar > 0) & (abar < 1)):
      raise ValueError(
          f"schedule.kind={self.config.schedule.kind!r} has an infinite log-SNR at a "
          "node of the discrete chain; use a schedule with finite λ(0), λ(1)"
      )
    return abar

  def _var_type(self, where: str, var_type: str | None) -> str:
    learn_sigma = self.method.learn_sigma
    var_type = var_type or ("learned_range" if learn_sigma else "small")
    if var_type == "learned_range" and not learn_sigma:
      raise ValueError(
          f"{where}var_type='learned_range' needs model.learn_sigma=True; use " "'small' or 'large'"
      )
    return var_type

  # -- training: the hybrid objective -------------------------------------------------------------

  def check_hybrid(self) -> None:
    """Validates `method.objective="iddpm_hybrid"` against the model and schedule."""
    base.check_keys("method.objective_kwargs", self.objective_kwargs, HYBRID_KWARGS)
    if not self.method.learn_sigma:
      raise ValueError(
          "method.objective='iddpm_hybrid' trains a learned variance: it needs "
          "model.learn_sigma=True"
      )
    self.require_vp("method.objective='iddpm_hybrid'")
    self.num_steps(self.objective_kwargs.get("num_steps"))  # checks it against the schedule

  def hybrid_loss(self, raw_fn, x: jax.Array, rng: jax.Array):
    """L_simple + λ L_vlb per example [B] (Nichol & Dhariwal 2021, eq. 16) and its parts."""
    kw = self.objective_kwargs
    return likelihood.iddpm_hybrid_loss(
        raw_fn,
        x,
        rng,
        schedule=self.schedule,
        param=self.method.param,
        num_steps=self.num_steps(kw.get("num_steps")),
        lambda_vlb=float(kw.get("lambda_vlb", 0.001)),
        num_bins=int(kw.get("num_bins", 256)),
    )

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
    kept = respacing.space_timesteps(n + 1, int(settings["num_steps"]))
    chain = respacing.respaced_chain(self.alphas_cumprod(n)[kept])
    return self._ancestral_jit(
        params,
        rng,
        jnp.asarray(kept / n, jnp.float32),
        {k: jnp.asarray(v, jnp.float32) for k, v in chain.items()},
        num=num,
        var_type=var_type,
        clip_x0=bool(options.get("clip_x0", False)),
        label=label,
    )

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

    return respacing.iddpm_ancestral(
        raw_fn,
        z,
        rng_solve,
        t=t,
        chain=chain,
        param=method.param,
        var_type=var_type,
        clip_x0=clip_x0,
    )

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
      raise ValueError(
          "eval.bpd_kwargs.t_start must be 0 for a discrete chain schedule (its node "
          f"0 is the paper's x_1 already); got {t_start}"
      )
    self.alphas_cumprod(num_steps, t_start)  # raises if λ is infinite at a node
    common = dict(
        schedule=self.schedule,
        param=method.param,
        num_steps=num_steps,
        var_type=var_type,
        t_start=t_start,
        decoder=kw.get("decoder", "discretized"),
        clip_x0=bool(kw.get("clip_x0", False)),
        num_bins=int(kw.get("num_bins", 256)),
    )
    if num_strata > 0:
      _, aux = likelihood.discrete_vlb_stratified(raw_fn, x, rng, num_strata=num_strata, **common)
    else:
      _, aux = likelihood.discrete_vlb_full(raw_fn, x, rng, **common)
    per_dim = 1.0 / (math.prod(x.shape[1:]) * math.log(2.0))
    out = {
        "bpd": aux["nats"] * per_dim,
        "prior": aux["prior"] * per_dim,
        "decoder": aux["decoder"] * per_dim,
        "kl": aux["kl"] * per_dim,
    }
    if "nats_mc_var" in aux:
      out["bpd_mc_var"] = aux["nats_mc_var"] * per_dim**2
    return out
