"""NoisyClassifier: a classifier of noisy images p(y | z_t, t), trained by diffjax for classifier
guidance (Dhariwal & Nichol 2021, §4).

Training: t from the configured t-sampler, z_t = α_t x + σ_t ε under the schedule of the diffusion
model it will guide, cross-entropy of the labels (ADM trains its classifier the same way, on the
diffusion model's noise levels). Sampling code sees only `log_prob_fn(params, label)`, the
σ-frame log p(y | x̃, σ̃) (x̃ = z/α, σ̃ = σ/α; `methods.sampling`'s `classifier=` override). It draws
no samples itself. The schedule must be the guided model's: log p is evaluated at its noise levels.

Config sections read here:
  schedule: as GaussianDiffusion's (`core.schedules.make`).
  method:   dict(kind="noisy_classifier", t_sampling="uniform", t_sampling_kwargs={},
                 noise_cond="logsnr", noise_cond_scale=1.0)   the network sees z/√(α²+σ²) and
                 the noise level as `core.parameterization` defines it.
  model:    dict(kind="noisy_classifier", ch=32, ch_mult=(1, 2, 2), num_res_blocks=1, dropout=0.0,
                 dtype="float32")   (`models.noisy_classifier`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting
from diffjax.methods import base
from diffjax.models import noisy_classifier

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class NoisyClassifier(base.Method):
  """method.kind="noisy_classifier"; needs a labelled data set."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    if not num_classes:
      raise ValueError("method.kind='noisy_classifier' needs a data set with labels")
    self.config = config
    self.element_shape = tuple(element_shape)
    self.conditional = False  # the network takes no label input; labels are its targets
    self.num_classes = int(num_classes)
    mcfg = config.method
    model_cfg = dict(config.model)
    if model_cfg.pop("kind", None) != "noisy_classifier":
      raise ValueError("method.kind='noisy_classifier' needs model.kind='noisy_classifier'")
    if isinstance(model_cfg.get("dtype"), str):
      model_cfg["dtype"] = _DTYPES[model_cfg["dtype"]]
    model_cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in model_cfg.items()}
    self.model = noisy_classifier.NoisyClassifier(num_classes=self.num_classes, **model_cfg)
    self._schedule = schedules.make(**config.schedule)
    self.param = parameterization.make(
        "eps",
        noise_cond=mcfg.get("noise_cond", "logsnr"),
        noise_cond_scale=float(mcfg.get("noise_cond_scale", 1.0)),
        normalize_input=True,
    )
    self.t_sampler = weighting.make_t_sampler(
        mcfg.get("t_sampling", "uniform"), **mcfg.get("t_sampling_kwargs", {})
    )

  def schedule(self, params=None):
    del params
    return self._schedule

  def init(self, rng, example_batch):
    x = jnp.asarray(example_batch["x"])
    return base.init_params(self.model, rng, x, jnp.ones(x.shape[:1], jnp.float32))

  def logits(self, params, z, t, *, train=False, rng=None):
    """Logits [B, K] of z_t [B, ...] at t [B]."""
    alpha, sigma = self._schedule.alpha_sigma(t)
    z_in, noise_cond = self.param.net_inputs(z, t, alpha, sigma)
    rngs = {"dropout": rng} if train else {}
    return self.model.apply({"params": params}, z_in, noise_cond, train=train, rngs=rngs)

  def loss(self, params, batch, rng):
    """Cross-entropy of batch["label"] from z_t, t ~ the t-sampler; metric: accuracy."""
    if "label" not in batch:
      raise ValueError("method.kind='noisy_classifier': the batch has no 'label'")
    rng_t, rng_eps, rng_drop = jax.random.split(rng, 3)
    x = batch["x"]
    t, _ = self.t_sampler(rng_t, x.shape[0], self._schedule)
    alpha, sigma = self._schedule.alpha_sigma(t)
    z = parameterization.bcast(alpha, x) * x + parameterization.bcast(sigma, x) * jax.random.normal(
        rng_eps, x.shape
    )
    logits = self.logits(params, z, t, train=True, rng=rng_drop)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
    return jnp.mean(ce), {"accuracy": acc}

  def log_prob_fn(self, params, label):
    """σ-frame log p(label | x̃, σ̃): fn(x [B, ...], sigma [B]) -> [B] (t = t(λ = -2 log σ̃),
    z = α_t x̃)."""

    def fn(x, sigma):
      t = self._schedule.t_from_logsnr(-2.0 * jnp.log(sigma))
      alpha, _ = self._schedule.alpha_sigma(t)
      logp = jax.nn.log_softmax(self.logits(params, parameterization.bcast(alpha, x) * x, t))
      return jnp.take_along_axis(logp, label[:, None], axis=1)[:, 0]

    return fn

  def denoiser(self, params, label=None):
    raise ValueError("method.kind='noisy_classifier' has no denoiser: it guides another model")

  def sample(self, params, rng, num, **overrides):
    raise ValueError(
        "method.kind='noisy_classifier' draws no samples: pass it as sample(..., "
        "classifier=(method, params)) of the model it guides"
    )
