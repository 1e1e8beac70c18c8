r"""VDM (Kingma et al. 2021, arXiv:2107.00630) as a Method: a learned noise schedule in the one
parameter tree, the continuous-time (or T-step) ELBO in bits/dim as the loss, test-set bits/dim.

Loss (eq. 11, 17; bits/dim = nats / (D ln 2)), one t and one ε per example, antithetic t:
  -log p(x) ≤ L_prior + L_recon + L_diffusion,   L_diffusion = ½ E_t[-λ'(t) ‖ε - ε̂(z_t; λ_t)‖²]
(T-step: ½ T E_i[expm1(λ_s - λ_t) ‖ε - ε̂‖²], s = t - 1/T, eq. 13). VDM writes γ = -λ.

Schedule (`method.learned_schedule`): `core.learned.LearnedLogSNR` (VDM's monotone network with
learnable end points, §5 / App. H), params under params["schedule"]; or a fixed schedule from
`config.schedule` (VDM's fixed linear γ is `linear_logsnr`), then params has no "schedule" entry.

Gradients (§5.2, App. I.2): the network and the schedule's end points λ_max, λ_min get the ELBO
gradient; the schedule's shape network gets the gradient of the *squared* diffusion loss,
mean_i L̃_i² (L̃ in bits/dim), which minimises the variance of the estimator (its mean does not
depend on the shape between the end points, eq. 17). As the paper describes, it costs one
backward pass through the network: the per-example cotangent arriving at the schedule's outputs
(α_t, σ_t, λ'(t)) is multiplied by 2 L̃_i before it enters the shape parameters. The released
google-research/vdm code does not contain this step (its schedules get the plain ELBO gradient),
so `method.variance_minimization=False` reproduces the released code.

Network input: VDM feeds the variance-preserving z_t and γ_t normalised to [0, 1] by the config's
γ range, ×1000 in its sinusoidal embedding. Here the parameterisation is `eps` with
`noise_cond="logsnr"` and `noise_cond_scale = -1000 / (γ_max - γ_min)` (the configs' choice): the
same sinusoid frequencies as VDM; VDM's offset γ_min only shifts each sinusoid's phase, a fixed
rotation of each (sin, cos) pair that the first dense layer absorbs. Conditioning on λ rather than
t keeps the network valid while the schedule moves, and lets every σ-frame solver use the model.

Config sections read here:
  schedule: dict(kind=..., **kwargs)            only when method.learned_schedule=False
  method:   dict(kind="vdm", learned_schedule=True, variance_minimization=True,
                 schedule_kwargs=dict(init_logsnr_max=13.3, init_logsnr_min=-5.0,
                                      num_features=1024, nonlinear=True),
                 param="eps", param_kwargs={}, num_steps=0 (0: continuous time), decoder="vdm",
                 data_grid="ddpm", num_bins=256, low_discrepancy=True, conditional=False)
  sample:   read by `methods.sampling` (grids in t or λ use the learned schedule)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import solvers
from diffjax.core import learned
from diffjax.core import likelihood
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting
from diffjax.methods import base

ENDPOINTS = ("logsnr_max", "logsnr_min")  # LearnedLogSNR's end-point parameters: ELBO gradient


def _split_endpoints(tree: dict, ends: dict, shape: dict) -> dict:
  """The schedule-parameter tree with end points from `ends` and everything else from `shape`."""
  return {k: (ends[k] if k in ENDPOINTS else shape[k]) for k in tree}


def _zero_cotangent(x):
  x = jnp.asarray(x)
  if jnp.issubdtype(x.dtype, jnp.inexact):
    return jnp.zeros_like(x)
  return np.zeros(x.shape, jax.dtypes.float0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def variance_routed_loss(sched_fn, diff_fn, bpd_scale, model_params, sched_params, data):
  """Per-example diffusion loss [B] (nats) `diff_fn(model_params, sched_fn(sched_params, data),
  data)` whose gradient is VDM's (App. I.2): ELBO gradient for `model_params` and the schedule's
  end points, gradient of mean_i (bpd_scale·L_i)² for the other schedule parameters, when the
  output's cotangent is that of mean_i(bpd_scale·L_i) (the loss in bits/dim).

  Args:
    sched_fn: (sched_params, data) -> pytree of [B] schedule values at each example's t.
    diff_fn: (model_params, schedule values, data) -> L [B], nats.
    bpd_scale: 1/(D ln 2), nats -> bits/dim.
    model_params, sched_params: the network's and the schedule's parameters.
    data: pytree of arrays the loss reads (x, ε, t, dropout key, ...); gets zero cotangents.
  """
  return diff_fn(model_params, sched_fn(sched_params, data), data)


def _routed_fwd(sched_fn, diff_fn, bpd_scale, model_params, sched_params, data):
  values, sched_vjp = jax.vjp(lambda p: sched_fn(p, data), sched_params)
  loss, diff_vjp = jax.vjp(lambda m, v: diff_fn(m, v, data), model_params, values)
  return loss, (sched_vjp, diff_vjp, loss, data)


def _routed_bwd(sched_fn, diff_fn, bpd_scale, residuals, cotangent):
  del sched_fn, diff_fn
  sched_vjp, diff_vjp, loss, data = residuals
  g_model, g_values = diff_vjp(cotangent)
  (g_elbo,) = sched_vjp(g_values)
  # d/dL_i of mean_j L̃_j² = 2 L̃_i bpd_scale / B = cotangent_i · 2 L̃_i (cotangent = bpd_scale/B).
  factor = 2.0 * bpd_scale * loss
  (g_var,) = sched_vjp(jax.tree.map(lambda g: g * factor, g_values))
  g_sched = _split_endpoints(g_elbo, g_elbo, g_var)
  return g_model, g_sched, jax.tree.map(_zero_cotangent, data)


variance_routed_loss.defvjp(_routed_fwd, _routed_bwd)


class VDM(base.Method):
  """The Method for VDM. Immutable after construction; all methods are pure."""

  has_bpd = True  # the continuous-time ELBO on the model's own schedule

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    mcfg = config.method
    self.learned_schedule = bool(mcfg.get("learned_schedule", True))
    self.variance_minimization = bool(mcfg.get("variance_minimization", True))
    if self.learned_schedule:
      try:
        self.schedule_module = learned.LearnedLogSNR(**dict(mcfg.get("schedule_kwargs", {})))
      except TypeError as e:
        raise ValueError(f"method.schedule_kwargs: {e}") from e
      self.fixed_schedule = None
    else:
      self.schedule_module = None
      self.fixed_schedule = schedules.make(**config.schedule)
      if getattr(self.fixed_schedule, "family", "vp") != "vp":
        raise ValueError(
            f"schedule.kind={config.schedule.kind!r}: VDM needs a variance-"
            f"preserving schedule (its prior is N(0, I))"
        )
    self.param = parameterization.make(mcfg.get("param", "eps"), **mcfg.get("param_kwargs", {}))
    self.num_steps = int(mcfg.get("num_steps", 0)) or None
    if self.num_steps is not None and self.num_steps < 0:
      raise ValueError(f"method.num_steps must be >= 0 (0: continuous time); got {self.num_steps}")
    self.decoder = str(mcfg.get("decoder", "vdm"))
    if self.decoder not in ("vdm", "gaussian"):
      raise ValueError(f"method.decoder must be 'vdm' or 'gaussian'; got {self.decoder!r}")
    self.data_grid = str(mcfg.get("data_grid", "ddpm"))
    if self.data_grid not in likelihood.GRIDS:
      raise ValueError(
          f"method.data_grid must be one of {likelihood.GRIDS}; " f"got {self.data_grid!r}"
      )
    self.num_bins = int(mcfg.get("num_bins", 256))
    self.low_discrepancy = bool(mcfg.get("low_discrepancy", True))

  # -- parameters ----------------------------------------------------------------------------------

  def schedule(self, params=None):
    """The schedule (diffjax schedule protocol) that `params` define: bound learned or fixed."""
    if self.schedule_module is None:
      return self.fixed_schedule
    return self.schedule_module.bind({"params": params["schedule"]})

  def raw_fn(self, model_params, label=None, *, train=False, rng=None):
    """`raw_fn(z_in, noise_cond) -> raw` of the network with fixed params/labels."""
    return self.network_fn(model_params, label, train=train, rng=rng)

  def init(self, rng: jax.Array, example_batch: dict):
    """{"model": network params, "schedule": LearnedLogSNR params (learned schedules only)}."""
    rng_model, rng_sched = jax.random.split(rng)
    params = {"model": self.init_network(rng_model, example_batch)}
    if self.schedule_module is not None:
      params["schedule"] = self.schedule_module.init(rng_sched, jnp.zeros((1,)))["params"]
    return params

  # -- the ELBO ------------------------------------------------------------------------------------

  def _times(self, u):
    """(t, s) [B] from u ∈ [0, 1): continuous t = u (s None), or t = i/T, s = (i-1)/T."""
    if self.num_steps is None:
      return u, None
    i = jnp.floor(u * self.num_steps) + 1.0
    return i / self.num_steps, (i - 1.0) / self.num_steps

  def _schedule_values(self, schedule, t, s):
    """α_t, σ_t [B] and the diffusion weight c [B]: -λ'(t), or T·expm1(λ_s - λ_t)."""
    alpha, sigma = schedule.alpha_sigma(t)
    if s is None:
      coef = -schedule.dlogsnr_dt(t)
    else:
      coef = self.num_steps * jnp.expm1(schedule.logsnr(s) - schedule.logsnr(t))
    return {"alpha": alpha, "sigma": sigma, "coef": coef}

  def _diffusion_loss(self, model_params, values, data):
    """½ c ‖ε - ε̂‖² per example [B], nats (eq. 17 / 13 in ε form)."""
    x, eps = data["x"], data["eps"]
    alpha, sigma = values["alpha"], values["sigma"]
    z = parameterization.bcast(alpha, x) * x + parameterization.bcast(sigma, x) * eps
    raw_fn = self.raw_fn(
        model_params, data.get("label"), train=data["train"] is not None, rng=data["train"]
    )
    raw = raw_fn(*self.param.net_inputs(z, data["t"], alpha, sigma))
    sq = jnp.square(raw - self.param.raw_target(x, eps, alpha, sigma))
    eps_mse = jnp.square(self.param.eps_scale(alpha, sigma)) * jnp.sum(
        sq.reshape(sq.shape[0], -1), axis=1
    )
    return 0.5 * values["coef"] * eps_mse

  def elbo(
      self,
      params,
      x: jax.Array,
      rng: jax.Array,
      label=None,
      *,
      dropout_rng=None,
      route_gradients: bool = False,
  ) -> tuple[jax.Array, dict]:
    """VDM's ELBO per example in bits/dim [B], and {"prior", "recon", "diffusion"} [B] bits/dim.

    Draws exactly what `likelihood.vdm_elbo` draws from `rng` (same values for the same rng).
    With `route_gradients` (training a learned schedule) the diffusion term carries VDM's
    variance-minimising gradient for the schedule's shape parameters (see module docstring).
    """
    batch = x.shape[0]
    bpd_scale = 1.0 / (math.prod(x.shape[1:]) * math.log(2.0))
    schedule = self.schedule(params)
    rng_t, rng_eps, rng_0 = jax.random.split(rng, 3)
    # Prior and decoder: only the end points α₀, σ₀, α₁, σ₁ enter (plain ELBO gradient).
    a, s = schedule.alpha_sigma(jnp.asarray([0.0, 1.0], jnp.float32))
    ones = jnp.ones((batch,), jnp.float32)
    z0 = a[0] * x + s[0] * jax.random.normal(rng_0, x.shape)
    if self.decoder == "vdm":
      recon = likelihood.vdm_decoder_nll(
          x, z0, a[0] * ones, s[0] * ones, self.num_bins, self.data_grid
      )
    else:
      recon = likelihood.gaussian_decoder_nll(x, z0 / a[0], (s[0] / a[0]) ** 2 * ones)
    prior = likelihood.prior_kl(x, a[1], s[1])

    t, s_prev = self._times(weighting.uniform_u(rng_t, batch, self.low_discrepancy))
    data = {"x": x, "eps": jax.random.normal(rng_eps, x.shape), "t": t, "train": dropout_rng}
    if label is not None:
      data["label"] = label
    if route_gradients and self.schedule_module is not None:
      sched_fn = lambda p, d: self._schedule_values(  # pylint: disable=g-long-lambda
          self.schedule_module.bind({"params": p}), d["t"], d.get("s")
      )
      if s_prev is not None:
        data["s"] = s_prev
      diffusion = variance_routed_loss(
          sched_fn, self._diffusion_loss, bpd_scale, params["model"], params["schedule"], data
      )
    else:
      values = self._schedule_values(schedule, t, s_prev)
      diffusion = self._diffusion_loss(params["model"], values, data)
    terms = {
        "prior": prior * bpd_scale,
        "recon": recon * bpd_scale,
        "diffusion": diffusion * bpd_scale,
    }
    return terms["prior"] + terms["recon"] + terms["diffusion"], terms

  # -- training ------------------------------------------------------------------------------------

  def loss(self, params, batch: dict, rng: jax.Array):
    """Mean ELBO in bits/dim (VDM's training loss) and its terms, schedule end points, variance."""
    rng_loss, rng_drop = jax.random.split(rng)
    bpd, terms = self.elbo(
        params,
        batch["x"],
        rng_loss,
        self.labels(batch),
        dropout_rng=rng_drop,
        route_gradients=self.variance_minimization,
    )
    metrics = {f"bpd_{k}": jnp.mean(v) for k, v in terms.items()}
    metrics["bpd_diffusion_var"] = jnp.var(terms["diffusion"])
    schedule = self.schedule(params)
    metrics["logsnr_max"] = jnp.asarray(schedule.logsnr_max, jnp.float32)
    metrics["logsnr_min"] = jnp.asarray(schedule.logsnr_min, jnp.float32)
    return jnp.mean(bpd), metrics

  def bpd(self, params, rng: jax.Array, x: jax.Array) -> dict:
    """Test-set ELBO of x [B, ...] in [-1, 1], bits/dim per example: {"bpd", "prior", "recon",
    "diffusion"} [B]; continuous time on the model's own schedule, network in eval mode.

    The diffusion term is a one-sample (t, ε) estimate per example (VDM's evaluation); averages
    over many examples are unbiased.
    """
    schedule = self.schedule(params)
    bpd, aux = likelihood.vdm_elbo(
        self.raw_fn(params["model"]),
        x,
        rng,
        schedule=schedule,
        param=self.param,
        num_steps=None,
        decoder=self.decoder,
        num_bins=self.num_bins,
        grid=self.data_grid,
        low_discrepancy=self.low_discrepancy,
    )
    scale = bpd / aux["nats"]
    return {
        "bpd": bpd,
        "prior": aux["prior"] * scale,
        "recon": aux["recon"] * scale,
        "diffusion": aux["diffusion"] * scale,
    }

  # -- sampling ------------------------------------------------------------------------------------

  def denoiser(self, params, label=None):
    """σ-frame denoiser D(x, σ) on the model's (learned) schedule. VDM's own sampler is `ddpm`
    (β̃, = VDM's `sample` step) on the `uniform_t` grid with t_min=0 and T+1 levels."""
    return solvers.adapters.from_raw(
        self.raw_fn(params["model"], label), self.schedule(params), self.param
    )
