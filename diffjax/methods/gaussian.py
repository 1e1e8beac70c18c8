"""GaussianDiffusion: schedule + parameterisation + weighting + t-sampling + network (DESIGN.md).

One class covers DDPM, IDDPM-style ε models, VDM-style ELBO training, EDM, v-prediction, flow matching
and rectified flow: the config picks the four core functions by name, the network by `model.kind`, and
the sampler by `sample.solver` / `sample.grid`. Sampling goes through the σ-frame denoiser adapter, so
every solver in `diffjax.solvers` works with every trained model.

IDDPM (Nichol & Dhariwal 2021) adds a learned variance (the model's `learn_sigma` doubles the
output channels; every σ-frame denoiser sees only the first C, the mean), the hybrid objective and
the respaced ancestral sampler `sample.solver="iddpm_ancestral"`: these, and `bpd` (the VLB of the
discrete chain in bits/dim), live in the `iddpm.Chain` component (`self.chain`).

Config sections read here:
  schedule: dict(kind=..., **schedule kwargs)                        -> core.schedules.make
  method:   dict(kind="gaussian", param=..., param_kwargs={}, weighting=..., weighting_kwargs={},
                 t_sampling=..., t_sampling_kwargs={}, conditional=False,
                 objective="weighted" | "iddpm_hybrid",
                 objective_kwargs={} | dict(num_steps=N, lambda_vlb=0.001, num_bins=256),
                 augment={} | dict(p=0.12, xflip=1e8, ...))   EDM's non-leaky augmentation:
                 `data.augment.edm_augment` kwargs; its labels go to the network's augment_dim
                 random_flip=False: left-right flips of training images with probability ½
  sample:   read by `methods.sampling`; eval.bpd_kwargs and the chain's options: `methods.iddpm`
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax import solvers
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting
from diffjax.data import augment as augment_lib
from diffjax.methods import base
from diffjax.methods import iddpm

OBJECTIVES = ("weighted", "iddpm_hybrid")


class GaussianDiffusion(base.Method):
  """The Method for z_t = α_t·x + σ_t·ε. Immutable after construction; all methods are pure."""

  has_bpd = True  # the discrete chain's VLB (variance-preserving schedules; `iddpm.Chain.bpd`)

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    mcfg = config.method
    self._schedule = schedules.make(**config.schedule)
    param_kwargs = dict(mcfg.get("param_kwargs", {}))
    weighting_kwargs = dict(mcfg.get("weighting_kwargs", {}))
    flow_sigma_min = _flow_sigma_min(self._schedule)
    if flow_sigma_min is not None:
      # Flow matching's target (1 − σ_min)ε − x and its loss weight are the path's velocity only
      # with the schedule's σ_min (Lipman et al. 2023, §4.1): one value, the schedule's.
      for where, kwargs, used in (
          ("param_kwargs", param_kwargs, mcfg.param == "flow"),
          ("weighting_kwargs", weighting_kwargs, mcfg.weighting == "flow"),
      ):
        if used and kwargs.setdefault("sigma_min", flow_sigma_min) != flow_sigma_min:
          raise ValueError(
              f"method.{where}.sigma_min={kwargs['sigma_min']} differs from the "
              f"schedule's sigma_min={flow_sigma_min}; leave it unset"
          )
    self.param = parameterization.make(mcfg.param, **param_kwargs)
    # The schedule is passed to every weighting: the MSE-type ones (ε-MSE, v-MSE, flow) are w = p(λ)
    # of uniform t under it (Kingma & Gao 2023, Table 1), the others ignore it.
    self.weight_fn = weighting.make_weighting(
        mcfg.weighting, schedule=self._schedule, **weighting_kwargs
    )
    self.t_sampler = weighting.make_t_sampler(mcfg.t_sampling, **mcfg.get("t_sampling_kwargs", {}))
    self.adaptive = isinstance(self.t_sampler, weighting.Adaptive)
    # IDDPM's learned variance: the network outputs the mean's C channels, then C for v ∈ [-1, 1].
    self.learn_sigma = bool(getattr(self.model, "learn_sigma", False))
    self.chain = iddpm.Chain(self)
    self.chain_samplers = {"iddpm_ancestral": self.chain.ancestral_sample}
    self.objective = mcfg.get("objective", "weighted")
    if self.objective not in OBJECTIVES:
      raise ValueError(f"method.objective={self.objective!r}: expected one of {OBJECTIVES}")
    if self.objective == "iddpm_hybrid":
      if self.adaptive:
        raise ValueError(
            "method.t_sampling='adaptive' needs method.objective='weighted' (the "
            "hybrid objective samples chain steps uniformly)"
        )
      self.chain.check_hybrid()
    self.random_flip = bool(mcfg.get("random_flip", False))
    if self.random_flip and len(self.element_shape) != 3:
      raise ValueError(f"method.random_flip needs images [H, W, C]; data have {self.element_shape}")
    self.augment = dict(mcfg.get("augment", {}))
    if self.augment and float(self.augment.get("p", 0.0)) > 0.0:
      want = augment_lib.label_dim(**{k: v for k, v in self.augment.items() if k != "p"})
      have = int(getattr(self.model, "augment_dim", 0))
      if have != want:
        raise ValueError(
            f"method.augment gives {want} augmentation labels but model.augment_dim="
            f"{have}; set model.augment_dim={want} (a network that takes them)"
        )
    else:
      self.augment = {}

  def schedule(self, params=None):
    """The fixed schedule of `config.schedule` (`params` unused)."""
    del params
    return self._schedule

  # -- network -------------------------------------------------------------------------------------

  def raw_fn(self, params, label=None, *, train=False, rng=None, augment_labels=None):
    """`raw_fn(z_in, noise_cond) -> raw` of the network with fixed params/labels (what core uses).

    `augment_labels` [B, augment_dim] condition a network trained with augmentation (None: the
    network's zeros, i.e. no augmentation, as at sampling time)."""
    extra = {} if augment_labels is None else {"augment_labels": augment_labels}
    return self.network_fn(params, label, train=train, rng=rng, **extra)

  def mean_raw_fn(self, params, label=None, *, train=False, rng=None, augment_labels=None):
    """`raw_fn` restricted to the mean's channels (all of them unless learn_sigma)."""
    fn = self.raw_fn(params, label, train=train, rng=rng, augment_labels=augment_labels)
    if not self.learn_sigma:
      return fn
    channels = self.element_shape[-1]
    return lambda z_in, noise_cond: fn(z_in, noise_cond)[..., :channels]

  def init(self, rng: jax.Array, example_batch: dict):
    return self.init_network(rng, example_batch)

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
    label = self.labels(batch)
    x, aug = batch["x"], None
    if self.random_flip:  # left-right flips with probability ½ (DDPM, Score SDE, rectified flow)
      flip = jax.random.bernoulli(jax.random.fold_in(rng, 3), 0.5, x.shape[:1])
      x = jnp.where(flip.reshape((-1,) + (1,) * (x.ndim - 1)), x[:, :, ::-1], x)
    if self.augment:  # EDM: augment x, tell the network how (Karras et al. 2022, App. F.2)
      x, aug = augment_lib.edm_augment(jax.random.fold_in(rng, 2), x, **self.augment)
    if self.objective == "iddpm_hybrid":
      if return_aux or t_sampler is not None:
        raise ValueError(
            "method.objective='iddpm_hybrid' samples its own chain steps: it takes "
            "no t-sampler (and no adaptive noise schedule)"
        )
      if "eps" in batch:
        raise ValueError(
            "batch['eps'] (a coupled noise) is used by method.objective='weighted' "
            "only; 'iddpm_hybrid' draws its own"
        )
      raw_fn = self.raw_fn(params, label, train=True, rng=rng_drop, augment_labels=aug)
      per_example, aux = self.chain.hybrid_loss(raw_fn, x, rng_loss)
      return jnp.mean(per_example), {"mse": jnp.mean(aux["mse"]), "vb": jnp.mean(aux["vb"])}
    if t_sampler is None and self.adaptive:
      raise ValueError(
          "method.t_sampling='adaptive' keeps state between steps: train it with "
          "loss_with_state (the training loop does)"
      )
    per_example, aux = losses.weighted_loss(
        self.mean_raw_fn(params, label, train=True, rng=rng_drop, augment_labels=aug),
        x,
        rng_loss,
        schedule=self._schedule,
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

  def loss_with_state(self, params, method_state, batch: dict, rng: jax.Array):
    """`loss`; with the adaptive t-sampler, λ is drawn from the density p(λ) of `method_state`,
    and the state is updated with this batch's loss integrand ½ w(λ)‖ε − ε̂‖² per λ bin. Returns
    (loss, (metrics, state)).

    The importance weight w/p uses the same p that drew λ, so the loss stays an unbiased estimate
    of the same weighted objective; only its variance changes."""
    if not self.adaptive:
      return super().loss_with_state(params, method_state, batch, rng)
    sampler_state = jax.lax.stop_gradient(method_state["t_sampler"])

    def t_sampler(key, batch_size, schedule):
      return self.t_sampler.sample(sampler_state, key, batch_size, schedule)

    loss, metrics, aux = self.loss(params, batch, rng, t_sampler=t_sampler, return_aux=True)
    new = self.t_sampler.update(
        sampler_state,
        jax.lax.stop_gradient(aux["logsnr"]),
        jax.lax.stop_gradient(aux["integrand"]),
        self._schedule,
    )
    return loss, (metrics, {"t_sampler": new})

  # -- sampling and likelihood ---------------------------------------------------------------------

  def denoiser(self, params, label=None):
    """σ-frame denoiser D(x, σ) of the trained network (mean channels)."""
    return solvers.adapters.from_raw(self.mean_raw_fn(params, label), self._schedule, self.param)

  def bpd(self, params, rng: jax.Array, x: jax.Array) -> dict:
    """Bits/dim of the discrete chain's VLB: `iddpm.Chain.bpd` (per example, [B] arrays)."""
    return self.chain.bpd(params, rng, x)


def _flow_sigma_min(schedule) -> float | None:
  """σ_min of the flow schedule `schedule` is or wraps (`InputScaled(Flow)`: SD3's shift), else
  None."""
  while schedule is not None:
    if isinstance(schedule, schedules.Flow):
      return float(schedule.sigma_min)
    schedule = getattr(schedule, "base", None)
  return None
