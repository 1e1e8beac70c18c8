"""GaussianDiffusion: schedule + parameterisation + weighting + t-sampling + network (DESIGN.md).

One class covers DDPM, IDDPM-style ε models, VDM-style ELBO training, EDM, v-prediction, flow matching
and rectified flow: the config picks the four core functions by name, the network by `model.kind`, and
the sampler by `sample.solver` / `sample.grid`. Sampling goes through the σ-frame denoiser adapter, so
every solver in `diffjax.solvers` works with every trained model.

IDDPM (Nichol & Dhariwal 2021) adds three things, all on the discrete chain of N transitions whose
nodes sit at t_i = i/N, i = 0..N (`core.likelihood`; a `DiscreteChain` schedule of T steps is that
chain with N = T - 1): a learned variance (the model's `learn_sigma` doubles the output channels;
every σ-frame denoiser sees only the first C, the mean), the hybrid objective, and the respaced
ancestral sampler `sample.solver="iddpm_ancestral"`. `bpd` is the chain's VLB in bits/dim.

Config sections read here:
  schedule: dict(kind=..., **schedule kwargs)                        -> core.schedules.make
  method:   dict(kind="gaussian", param=..., param_kwargs={}, weighting=..., weighting_kwargs={},
                 t_sampling=..., t_sampling_kwargs={}, conditional=False,
                 objective="weighted" | "iddpm_hybrid",
                 objective_kwargs={} | dict(num_steps=N, lambda_vlb=0.001, num_bins=256),
                 augment={} | dict(p=0.12, xflip=1e8, ...))   EDM's non-leaky augmentation:
                 `data.augment.edm_augment` kwargs; its labels go to the network's augment_dim
                 random_flip=False: left-right flips of training images with probability ½
  sample:   dict(solver=..., solver_kwargs={}, grid=..., num_steps=..., grid_kwargs={},
                 guidance_scale=1.0, batch_size=..., num_samples=..., seed=...)
            solver="iddpm_ancestral": num_steps = K respaced steps, grid unused, solver_kwargs
                 dict(var_type=..., clip_x0=False, chain_steps=N)
  eval:     dict(num_samples=..., num_plot=..., seed=..., num_projections=...,
                 bpd_kwargs=dict(num_steps=N, var_type=..., num_strata=16, decoder="discretized",
                                 clip_x0=False, num_bins=256))
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import models
from diffjax import solvers
from diffjax.methods import base
from diffjax.methods import iddpm
from diffjax.core import likelihood
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting
from diffjax.data import augment as augment_lib
from diffjax.metrics import wasserstein


OBJECTIVES = ("weighted", "iddpm_hybrid")
HYBRID_KWARGS = ("num_steps", "lambda_vlb", "num_bins")
ANCESTRAL_KWARGS = ("var_type", "clip_x0", "chain_steps")
BPD_KWARGS = ("num_steps", "var_type", "num_strata", "decoder", "clip_x0", "num_bins", "t_start")


def _check_keys(where: str, given: dict, allowed: tuple[str, ...]) -> None:
  unknown = sorted(set(given) - set(allowed))
  if unknown:
    raise ValueError(f"{where}: unknown keys {unknown}; expected some of {list(allowed)}")


class GaussianDiffusion:
  """The Method for z_t = α_t·x + σ_t·ε. Immutable after construction; all methods are pure."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    mcfg = config.method
    self.config = config
    self.element_shape = tuple(element_shape)
    self.conditional, self.num_classes = base.conditioning(mcfg, num_classes)
    self.schedule = schedules.make(**config.schedule)
    self.param = parameterization.make(mcfg.param, **mcfg.get("param_kwargs", {}))
    # The schedule is passed to every weighting: the MSE-type ones (ε-MSE, v-MSE, flow) are w = p(λ)
    # of uniform t under it (Kingma & Gao 2023, Table 1), the others ignore it.
    self.weight_fn = weighting.make_weighting(
        mcfg.weighting, schedule=self.schedule, **mcfg.get("weighting_kwargs", {})
    )
    self.t_sampler = weighting.make_t_sampler(mcfg.t_sampling, **mcfg.get("t_sampling_kwargs", {}))
    self.adaptive = isinstance(self.t_sampler, weighting.Adaptive)
    model_cfg = dict(config.model)
    if self.conditional:
      model_cfg["num_classes"] = self.num_classes
    self.model = models.make(model_cfg)
    # IDDPM's learned variance: the network outputs the mean's C channels, then C for v ∈ [-1, 1].
    self.learn_sigma = bool(getattr(self.model, "learn_sigma", False))
    self.objective = mcfg.get("objective", "weighted")
    self.objective_kwargs = dict(mcfg.get("objective_kwargs", {}))
    if self.objective not in OBJECTIVES:
      raise ValueError(f"method.objective={self.objective!r}: expected one of {OBJECTIVES}")
    if self.objective == "iddpm_hybrid":
      _check_keys("method.objective_kwargs", self.objective_kwargs, HYBRID_KWARGS)
      if self.adaptive:
        raise ValueError("method.t_sampling='adaptive' needs method.objective='weighted' (the "
                         "hybrid objective samples chain steps uniformly)")
      if not self.learn_sigma:
        raise ValueError("method.objective='iddpm_hybrid' trains a learned variance: it needs "
                         "model.learn_sigma=True")
      self.require_vp("method.objective='iddpm_hybrid'")
      self.chain_steps(self.objective_kwargs.get("num_steps"))  # checks it against the schedule
    self.random_flip = bool(mcfg.get("random_flip", False))
    if self.random_flip and len(self.element_shape) != 3:
      raise ValueError(f"method.random_flip needs images [H, W, C]; data have {self.element_shape}")
    self.augment = dict(mcfg.get("augment", {}))
    if self.augment and float(self.augment.get("p", 0.0)) > 0.0:
      want = augment_lib.label_dim(**{k: v for k, v in self.augment.items() if k != "p"})
      have = int(getattr(self.model, "augment_dim", 0))
      if have != want:
        raise ValueError(f"method.augment gives {want} augmentation labels but model.augment_dim="
                         f"{have}; set model.augment_dim={want} (a network that takes them)")
    else:
      self.augment = {}
    self._sample_jit = jax.jit(self._sample, static_argnames=("num", "solver", "solver_kwargs"))
    self._ancestral_jit = jax.jit(self._ancestral, static_argnames=("num", "var_type", "clip_x0"))

  # -- the discrete chain --------------------------------------------------------------------------

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

  def chain_steps(self, num_steps: int | None = None) -> int:
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

  def chain_alphas_cumprod(self, num_steps: int, t_start: float = 0.0) -> np.ndarray:
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

  # -- network -------------------------------------------------------------------------------------

  def raw_fn(self, params, label=None, *, train=False, rng=None, augment_labels=None):
    """`raw_fn(z_in, noise_cond) -> raw` of the network with fixed params/labels (what core uses).

    `augment_labels` [B, augment_dim] condition a network trained with augmentation (None: the
    network's zeros, i.e. no augmentation, as at sampling time)."""
    rngs = {"dropout": rng} if train else {}
    extra = {} if augment_labels is None else {"augment_labels": augment_labels}

    def fn(z_in, noise_cond):
      return self.model.apply({"params": params}, z_in, noise_cond, label, train=train, rngs=rngs,
                              **extra)

    return fn

  def mean_raw_fn(self, params, label=None, *, train=False, rng=None, augment_labels=None):
    """`raw_fn` restricted to the mean's channels (all of them unless learn_sigma)."""
    fn = self.raw_fn(params, label, train=train, rng=rng, augment_labels=augment_labels)
    if not self.learn_sigma:
      return fn
    channels = self.element_shape[-1]
    return lambda z_in, noise_cond: fn(z_in, noise_cond)[..., :channels]

  def _labels(self, batch):
    return base.batch_labels(self.conditional, batch)

  def init(self, rng: jax.Array, example_batch: dict):
    x = jnp.asarray(example_batch["x"])
    label = self._labels(example_batch)
    variables = self.model.init(
        {"params": rng, "dropout": rng}, x, jnp.ones(x.shape[:1], jnp.float32), label, train=False
    )
    return variables["params"]

  # -- training ------------------------------------------------------------------------------------

  def loss(self, params, batch: dict, rng: jax.Array, *, t_sampler=None, return_aux=False):
    """Mean over the batch of the configured objective, and scalar metrics.

    "weighted": ½ w(λ)/p(λ) ‖ε − ε̂‖² (Kingma & Gao 2023, eq. 1 with importance weights), with
    ε = batch["eps"] when the batch carries a coupled noise (reflow, minibatch OT), else fresh.
    With learn_sigma the variance channels get no gradient from it.
    "iddpm_hybrid": L_simple + λ L_vlb (Nichol & Dhariwal 2021, eq. 16), as
    `likelihood.iddpm_hybrid_loss`.
    """
    rng_loss, rng_drop = jax.random.split(rng)
    label = self._labels(batch)
    x, aug = batch["x"], None
    if self.random_flip:  # left-right flips with probability ½ (DDPM, Score SDE, rectified flow)
      flip = jax.random.bernoulli(jax.random.fold_in(rng, 3), 0.5, x.shape[:1])
      x = jnp.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x[:, :, ::-1], x)
    if self.augment:  # EDM: augment x, tell the network how (Karras et al. 2022, App. F.2)
      x, aug = augment_lib.edm_augment(jax.random.fold_in(rng, 2), x, **self.augment)
    if self.objective == "iddpm_hybrid":
      if return_aux or t_sampler is not None:
        raise ValueError("method.objective='iddpm_hybrid' samples its own chain steps: it takes "
                         "no t-sampler (and no adaptive noise schedule)")
      if "eps" in batch:
        raise ValueError("batch['eps'] (a coupled noise) is used by method.objective='weighted' "
                         "only; 'iddpm_hybrid' draws its own")
      kw = self.objective_kwargs
      per_example, aux = likelihood.iddpm_hybrid_loss(
          self.raw_fn(params, label, train=True, rng=rng_drop, augment_labels=aug),
          x,
          rng_loss,
          schedule=self.schedule,
          param=self.param,
          num_steps=self.chain_steps(kw.get("num_steps")),
          lambda_vlb=float(kw.get("lambda_vlb", 0.001)),
          num_bins=int(kw.get("num_bins", 256)),
      )
      return jnp.mean(per_example), {"mse": jnp.mean(aux["mse"]), "vb": jnp.mean(aux["vb"])}
    if t_sampler is None and self.adaptive:
      raise ValueError("method.t_sampling='adaptive' keeps state between steps: train it with "
                       "loss_with_state (the training loop does)")
    per_example, aux = losses.weighted_loss(
        self.mean_raw_fn(params, label, train=True, rng=rng_drop, augment_labels=aug),
        x,
        rng_loss,
        schedule=self.schedule,
        param=self.param,
        weight_fn=self.weight_fn,
        t_sampler=t_sampler or self.t_sampler,
        eps=batch.get("eps"),
    )
    metrics = {"eps_mse": jnp.mean(aux["eps_mse"])} if "eps_mse" in aux else {}
    if return_aux:
      return jnp.mean(per_example), metrics, aux
    return jnp.mean(per_example), metrics

  def init_state(self) -> dict:
    """State carried between training steps: the adaptive noise schedule's (Kingma & Gao 2023,
    App. "adaptive noise schedule"; `weighting.Adaptive`), else {} (stateless)."""
    return {"t_sampler": self.t_sampler.init()} if self.adaptive else {}

  def loss_with_state(self, params, method_state: dict, batch: dict, rng: jax.Array):
    """`loss` with λ drawn from the adaptive density p(λ) of `method_state`, and the state updated
    with this batch's loss integrand ½ w(λ)‖ε − ε̂‖² per λ bin. Returns (loss, (metrics, state)).

    The importance weight w/p uses the same p that drew λ, so the loss stays an unbiased estimate
    of the same weighted objective; only its variance changes."""
    sampler_state = jax.lax.stop_gradient(method_state["t_sampler"])

    def t_sampler(key, batch_size, schedule):
      return self.t_sampler.sample(sampler_state, key, batch_size, schedule)

    loss, metrics, aux = self.loss(params, batch, rng, t_sampler=t_sampler, return_aux=True)
    new = self.t_sampler.update(sampler_state, jax.lax.stop_gradient(aux["logsnr"]),
                                jax.lax.stop_gradient(aux["integrand"]), self.schedule)
    return loss, (metrics, {"t_sampler": new})

  # -- sampling ------------------------------------------------------------------------------------

  def denoiser(self, params, label=None, guidance_scale: float = 1.0):
    """σ-frame denoiser D(x, σ) of the trained network; classifier-free guided when scale ≠ 1."""
    cond = solvers.adapters.from_raw(self.mean_raw_fn(params, label), self.schedule, self.param)
    if label is None or guidance_scale == 1.0:
      return cond
    null = jnp.full_like(label, self.num_classes)  # the null label of classifier-free guidance
    uncond = solvers.adapters.from_raw(self.mean_raw_fn(params, null), self.schedule, self.param)
    return solvers.guidance.cfg(cond, uncond, guidance_scale)

  def sigmas(self, num_steps: int, grid: str, grid_kwargs: dict | None = None):
    """The σ grid `solvers.grid(grid, num_steps, **grid_kwargs)` (default: the config's kwargs)."""
    kwargs = dict(self.config.sample.get("grid_kwargs", {}) if grid_kwargs is None else grid_kwargs)
    grid_fn = solvers.GRIDS.get(grid)  # unknown names: solvers.grid raises, naming them
    if grid_fn is not None and "schedule" in inspect.signature(grid_fn).parameters:
      kwargs.setdefault("schedule", self.schedule)  # grids in t or λ are the model's own schedule's
    return solvers.grid(grid, num_steps, **kwargs)

  def _sample(self, params, rng, sigmas, *, num, solver, solver_kwargs=(), label=None, noise=None):
    rng_init, rng_solve = jax.random.split(rng)
    if noise is None:
      noise = jax.random.normal(rng_init, (num,) + self.element_shape)
    x_init = sigmas[0] * noise
    den = self.denoiser(params, label, float(self.config.sample.get("guidance_scale", 1.0)))
    solver_kwargs = dict(solver_kwargs)
    if solver_kwargs.pop("clip_denoised", False):
      # x̂₀ clipped to the data range [-1, 1] before each update, as DDPM's and DDIM's official
      # samplers do (`clip_denoised=True`); a Method-level option, valid for every σ-frame solver.
      den = _clipped(den)
    return solvers.solve(solver, den, x_init, sigmas, key=rng_solve, **solver_kwargs)

  def sample(self, params, rng: jax.Array, num: int, **overrides):
    """`num` samples `[num, *element_shape]` with the config's solver (overridable per call).

    Overrides: solver, num_steps, grid, grid_kwargs, solver_kwargs, label ([num] int32; default:
    uniformly drawn classes for conditional models), noise ([num, *element_shape] standard normal:
    the initial noise, x_init = σ_max·noise, instead of a draw from rng; reflow pairs).
    solver="iddpm_ancestral" is IDDPM's respaced ancestral sampler (`iddpm_ancestral`), handled
    here: num_steps = K kept nodes, no grid.
    Overriding `solver` (`grid`) drops the config's solver_kwargs (grid_kwargs) unless they are
    overridden too: they belong to its solver.
    """
    scfg = self.config.sample
    label = overrides.pop("label", None)
    noise = overrides.pop("noise", None)
    if noise is not None and tuple(noise.shape) != (num,) + self.element_shape:
      raise ValueError(f"sample noise must have shape {(num,) + self.element_shape}, got "
                       f"{tuple(noise.shape)}")
    if self.conditional and label is None:
      label = jax.random.randint(jax.random.fold_in(rng, 1), (num,), 0, self.num_classes)
    kwargs = base.sample_settings(scfg, overrides)
    if kwargs["solver"] == "iddpm_ancestral":
      if noise is not None:
        raise ValueError("sample noise= (fixed initial noise) is not supported by 'iddpm_ancestral'")
      return self._sample_ancestral(params, rng, num, int(kwargs["num_steps"]),
                                    dict(kwargs["solver_kwargs"]), label)
    # The grid is built on the host (NumPy, float64 where enabled), then passed in as data.
    sigmas = jnp.asarray(self.sigmas(int(kwargs["num_steps"]), kwargs["grid"], kwargs["grid_kwargs"]))
    solver_kwargs = tuple(sorted(dict(kwargs["solver_kwargs"]).items()))  # hashable: a static arg
    return self._sample_jit(params, rng, sigmas, num=num, solver=kwargs["solver"],
                            solver_kwargs=solver_kwargs, label=label, noise=noise)

  def _sample_ancestral(self, params, rng, num, num_steps, options, label):
    """`sample` with solver "iddpm_ancestral": K = num_steps kept nodes of the N-step chain."""
    _check_keys("sample.solver_kwargs of 'iddpm_ancestral'", options, ANCESTRAL_KWARGS)
    var_type = options.get("var_type", "learned_range" if self.learn_sigma else "small")
    if var_type == "learned_range" and not self.learn_sigma:
      raise ValueError("var_type='learned_range' needs model.learn_sigma=True; use 'small' or "
                       "'large'")
    self.require_vp("solver 'iddpm_ancestral'")
    n = self.chain_steps(options.get("chain_steps"))
    kept = iddpm.space_timesteps(n + 1, num_steps)
    chain = iddpm.respaced_chain(self.chain_alphas_cumprod(n)[kept])
    return self._ancestral_jit(params, rng, jnp.asarray(kept / n, jnp.float32),
                               {k: jnp.asarray(v, jnp.float32) for k, v in chain.items()},
                               num=num, var_type=var_type,
                               clip_x0=bool(options.get("clip_x0", False)), label=label)

  def _ancestral(self, params, rng, t, chain, *, num, var_type, clip_x0, label=None):
    rng_init, rng_solve = jax.random.split(rng)
    z = jax.random.normal(rng_init, (num,) + self.element_shape)
    raw_fn = self.raw_fn(params, label)
    scale = float(self.config.sample.get("guidance_scale", 1.0))
    if label is not None and scale != 1.0:
      cond, uncond = raw_fn, self.raw_fn(params, jnp.full_like(label, self.num_classes))
      c = self.element_shape[-1]

      def raw_fn(z_in, noise_cond):  # guidance on the mean channels, variance of the conditional
        out_c, out_u = cond(z_in, noise_cond), uncond(z_in, noise_cond)
        mean = out_u[..., :c] + scale * (out_c[..., :c] - out_u[..., :c])
        return jnp.concatenate([mean, out_c[..., c:]], axis=-1)

    return iddpm.iddpm_ancestral(raw_fn, z, rng_solve, t=t, chain=chain, param=self.param,
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
    kw = dict(self.config.get("eval", {}).get("bpd_kwargs", {}))
    _check_keys("eval.bpd_kwargs", kw, BPD_KWARGS)
    self.require_vp("bpd")
    var_type = kw.get("var_type", "learned_range" if self.learn_sigma else "small")
    if var_type == "learned_range" and not self.learn_sigma:
      raise ValueError("eval.bpd_kwargs.var_type='learned_range' needs model.learn_sigma=True")
    label = None
    if self.conditional:
      label = jnp.full(x.shape[:1], self.num_classes, jnp.int32)
    if var_type == "learned_range":
      raw_fn = self.raw_fn(params, label)
    else:
      raw_fn = self.mean_raw_fn(params, label)
    num_strata = int(kw.get("num_strata", 16))
    num_steps = self.chain_steps(kw.get("num_steps"))
    t_start = float(kw.get("t_start", 0.0))
    if t_start and isinstance(self.schedule, schedules.DiscreteChain):
      raise ValueError("eval.bpd_kwargs.t_start must be 0 for a discrete chain schedule (its node "
                       f"0 is the paper's x_1 already); got {t_start}")
    self.chain_alphas_cumprod(num_steps, t_start)  # raises if λ is infinite at a node
    common = dict(schedule=self.schedule, param=self.param, num_steps=num_steps, var_type=var_type,
                  t_start=t_start,
                  decoder=kw.get("decoder", "discretized"), clip_x0=bool(kw.get("clip_x0", False)),
                  num_bins=int(kw.get("num_bins", 256)))
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

  # -- evaluation ----------------------------------------------------------------------------------

  def evaluate(self, params, rng: jax.Array, reference: dict):
    """Sliced Wasserstein-2 of samples to held-out data, with the data-vs-data value as the floor.

    `reference["x"]` holds 2N examples: samples are compared with the first N; the second N against
    the first N gives the value a perfect model would reach with this many samples.
    """
    ref = np.asarray(reference["x"], np.float32)
    n = len(ref) // 2
    rng_sample, rng_proj = jax.random.split(rng)
    samples = base.sample_in_batches(self, params, rng_sample, n, int(self.config.sample.batch_size))
    flat = lambda a: a.reshape(n, -1)  # pylint: disable=unnecessary-lambda-assignment
    num_proj = int(self.config.eval.get("num_projections", 512))
    sw = wasserstein.sliced_wasserstein(flat(samples), flat(ref[:n]), rng_proj, num_proj)
    floor = wasserstein.sliced_wasserstein(flat(ref[n:2 * n]), flat(ref[:n]), rng_proj, num_proj)
    return {"sliced_w2": float(sw), "sliced_w2_data_floor": float(floor)}, samples


def _clipped(den):
  return lambda x, sigma: jnp.clip(den(x, sigma), -1.0, 1.0)
