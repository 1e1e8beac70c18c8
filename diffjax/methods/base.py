"""The Method protocol: what the training loop, the sampler and the evaluators drive (DESIGN.md).

A Method is an immutable object built from a config; all its functions are pure and jittable.
The training loop only calls `init`, `init_state` and `loss_with_state`; sampling
(`methods/sampling.py`) only calls `schedule`, `denoiser` (where `has_denoiser`) and, for the
solvers a Method runs itself, `chain_samplers`; the evaluators (`train/evaluate.py`) call `sample`
and, where `has_bpd`, `bpd`. Nothing is probed with `hasattr`: a Method declares what it has.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from diffjax import models
from diffjax.methods import sampling


class Method:
  """Base class of the Method families: the protocol with its stateless defaults.

  Subclasses set `config`, `element_shape`, `conditional`, `num_classes` and `model` (see
  `setup_common`) and implement `init`, `loss`, `schedule` and `denoiser`.

  Attributes:
    has_bpd: whether `bpd` estimates test bits/dim (the `bpd` evaluator checks it).
    has_denoiser: whether `denoiser` gives a σ-frame D(x, σ) (False for token Methods: discrete
      diffusion and the autoregressive baseline, which sample with their own chains only).
    chain_samplers: solver names this Method runs itself (samplers of a discrete chain that are
      not σ-frame ODE/SDE solvers, e.g. IDDPM's ancestral sampler with learned variances), name ->
      `fn(params, rng, num, settings, *, label, noise) -> [num, *element_shape]`.
  """

  has_bpd: bool = False
  has_denoiser: bool = True
  chain_samplers: Mapping[str, Callable] = {}

  config: Any
  element_shape: tuple[int, ...]
  conditional: bool
  num_classes: int
  model: Any

  def setup_common(self, config, element_shape: tuple[int, ...], num_classes: int) -> None:
    """The constructor prologue every family shares: config, data shape, labels, network."""
    self.config = config
    self.element_shape = tuple(element_shape)
    self.conditional = bool(config.method.get("conditional", False))
    if self.conditional and not num_classes:
      raise ValueError("method.conditional=True but the data set has no labels")
    self.num_classes = int(num_classes) if self.conditional else 0
    model_cfg = dict(config.model)
    if self.conditional:
      model_cfg["num_classes"] = self.num_classes
    self.model = models.make(model_cfg)

  # -- training ------------------------------------------------------------------------------------

  def init(self, rng: jax.Array, example_batch: dict) -> Any:
    """Parameters for a batch like `example_batch` (`{"x": [B, ...], "label": [B]?}`)."""
    raise NotImplementedError

  def loss(self, params, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
    """Scalar training loss (mean over the batch) and a dict of scalar metrics."""
    raise NotImplementedError

  def init_state(self) -> dict:
    """Non-trained state carried between steps (e.g. an adaptive noise schedule); {}: none."""
    return {}

  def init_state_with_params(self, params) -> dict:
    """`init_state` for Methods whose state starts from the initial parameters (a consistency
    model's target network θ⁻ = θ, a distillation teacher); the default ignores `params`."""
    del params
    return self.init_state()

  def update_state(self, method_state, params):
    """The state after the optimiser step made `params` (the new parameters): e.g. a consistency
    model's target EMA θ⁻ ← μ θ⁻ + (1 − μ) θ (Song et al. 2023, Alg. 2/3). Default: unchanged."""
    del params
    return method_state

  def start_from(self, state, loaded):
    """The fresh train `state` started from `loaded`, the TrainState of the `config.init_from`
    run (restored with that run's own config): by default its params and EMA (fine-tuning,
    reflow); a distillation Method also keeps them as its teacher in `method_state`."""
    return state.replace(params=loaded.params, ema_params=loaded.ema_params)

  def loss_with_state(self, params, method_state, batch: dict, rng: jax.Array):
    """`loss` that also advances `method_state`: (loss, (metrics, new_state)). The training loop
    calls only this; the default is `loss` with the state passed through unchanged."""
    loss, metrics = self.loss(params, batch, rng)
    return loss, (metrics, method_state)

  # -- sampling ------------------------------------------------------------------------------------

  def schedule(self, params=None):
    """The noise schedule (`core.schedules` protocol) of the model `params` define; sampling
    builds its σ grid from it. Fixed schedules ignore `params`."""
    raise NotImplementedError

  def denoiser(self, params, label=None) -> Callable:
    """σ-frame denoiser D(x, σ) -> x̂₀ of the trained network with class labels `label` ([B] int32
    or None); unguided (sampling adds guidance and clipping)."""
    raise NotImplementedError

  def sample(self, params, rng: jax.Array, num: int, **overrides) -> jax.Array:
    """`num` samples `[num, *element_shape]`, sampler from `config.sample` unless overridden
    (`sampling.sample`)."""
    return sampling.sample(self, params, rng, num, **overrides)

  # -- likelihood ----------------------------------------------------------------------------------

  def bpd(self, params, rng: jax.Array, x: jax.Array) -> dict:
    """Per-example bits/dim of x [B, ...]: {"bpd": [B], ...}; only where `has_bpd`."""
    raise NotImplementedError(f"method.kind={self.config.method.kind!r} has no bits/dim estimator")

  # -- shared helpers ------------------------------------------------------------------------------

  def labels(self, batch: dict):
    """The batch's labels for a conditional Method, None for an unconditional one."""
    if not self.conditional:
      return None
    if "label" not in batch:
      raise ValueError("method.conditional=True but the batch has no 'label'")
    return batch["label"]

  def null_label(self, label: jax.Array) -> jax.Array:
    """The null class of classifier-free guidance (index num_classes), shaped like `label`."""
    return jnp.full_like(label, self.num_classes)

  def init_network(self, rng: jax.Array, example_batch: dict) -> Any:
    """The network's parameters for `example_batch` (noise conditioning of ones, eval mode)."""
    x = jnp.asarray(example_batch["x"])
    return init_params(
        self.model, rng, x, jnp.ones(x.shape[:1], jnp.float32), self.labels(example_batch)
    )

  def network_fn(self, params, label=None, *, train: bool = False, rng=None, **extra) -> Callable:
    """`fn(z_in, noise_cond) -> raw` of the network with fixed params, labels and extra inputs
    (e.g. augment_labels); dropout from `rng` when `train`."""
    rngs = {"dropout": rng} if train else {}

    def fn(z_in, noise_cond):
      return self.model.apply(
          {"params": params}, z_in, noise_cond, label, train=train, rngs=rngs, **extra
      )

    return fn


def init_params(module, rng: jax.Array, *args, **kwargs) -> Any:
  """`module.init({"params": rng, "dropout": rng}, *args, train=False, **kwargs)["params"]` as one
  compiled program: called eagerly (tests, the CLI's restore paths), flax's init of a U-Net
  otherwise dispatches thousands of single-op computations (seconds on a CPU). Inside an outer
  `jit`/`eval_shape` it is simply traced."""

  def init(rng, args, kwargs):
    return module.init({"params": rng, "dropout": rng}, *args, train=False, **kwargs)["params"]

  return jax.jit(init)(rng, args, kwargs)


def check_keys(where: str, given: Mapping, allowed: tuple[str, ...]) -> None:
  """ValueError naming `where` and the unknown keys of `given`."""
  unknown = sorted(set(given) - set(allowed))
  if unknown:
    raise ValueError(f"{where}: unknown keys {unknown}; expected some of {list(allowed)}")
