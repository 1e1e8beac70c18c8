"""GaussianDiffusion: schedule + parameterisation + weighting + t-sampling + network (DESIGN.md).

One class covers DDPM, IDDPM-style ε models, VDM-style ELBO training, EDM, v-prediction, flow matching
and rectified flow: the config picks the four core functions by name, the network by `model.kind`, and
the sampler by `sample.solver` / `sample.grid`. Sampling goes through the σ-frame denoiser adapter, so
every solver in `diffjax.solvers` works with every trained model.

Config sections read here:
  schedule: dict(kind=..., **schedule kwargs)                        -> core.schedules.make
  method:   dict(kind="gaussian", param=..., param_kwargs={}, weighting=..., weighting_kwargs={},
                 t_sampling=..., t_sampling_kwargs={}, conditional=False)
  sample:   dict(solver=..., solver_kwargs={}, grid=..., num_steps=..., grid_kwargs={},
                 guidance_scale=1.0, batch_size=..., num_samples=..., seed=...)
  eval:     dict(num_samples=..., num_plot=..., seed=..., num_projections=...)
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import models
from diffjax import solvers
from diffjax.methods import base
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting
from diffjax.metrics import wasserstein


class GaussianDiffusion:
  """The Method for z_t = α_t·x + σ_t·ε. Immutable after construction; all methods are pure."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    mcfg = config.method
    self.config = config
    self.element_shape = tuple(element_shape)
    self.conditional = bool(mcfg.get("conditional", False))
    if self.conditional and not num_classes:
      raise ValueError("method.conditional=True but the data set has no labels")
    self.num_classes = num_classes if self.conditional else 0
    self.schedule = schedules.make(**config.schedule)
    self.param = parameterization.make(mcfg.param, **mcfg.get("param_kwargs", {}))
    # The schedule is passed to every weighting: the MSE-type ones (ε-MSE, v-MSE, flow) are w = p(λ)
    # of uniform t under it (Kingma & Gao 2023, Table 1), the others ignore it.
    self.weight_fn = weighting.make_weighting(
        mcfg.weighting, schedule=self.schedule, **mcfg.get("weighting_kwargs", {})
    )
    self.t_sampler = weighting.make_t_sampler(mcfg.t_sampling, **mcfg.get("t_sampling_kwargs", {}))
    model_cfg = dict(config.model)
    if self.conditional:
      model_cfg["num_classes"] = self.num_classes
    self.model = models.make(model_cfg)
    self._sample_jit = jax.jit(self._sample, static_argnames=("num", "solver", "solver_kwargs"))

  # -- network -------------------------------------------------------------------------------------

  def raw_fn(self, params, label=None, *, train=False, rng=None):
    """`raw_fn(z_in, noise_cond) -> raw` of the network with fixed params/labels (what core uses)."""
    rngs = {"dropout": rng} if train else {}

    def fn(z_in, noise_cond):
      return self.model.apply({"params": params}, z_in, noise_cond, label, train=train, rngs=rngs)

    return fn

  def _labels(self, batch):
    if not self.conditional:
      return None
    if "label" not in batch:
      raise ValueError("method.conditional=True but the batch has no 'label'")
    return batch["label"]

  def init(self, rng: jax.Array, example_batch: dict):
    x = jnp.asarray(example_batch["x"])
    label = self._labels(example_batch)
    variables = self.model.init(
        {"params": rng, "dropout": rng}, x, jnp.ones(x.shape[:1], jnp.float32), label, train=False
    )
    return variables["params"]

  # -- training ------------------------------------------------------------------------------------

  def loss(self, params, batch: dict, rng: jax.Array):
    """Mean over the batch of ½ w(λ)/p(λ) ‖ε − ε̂‖² (Kingma & Gao 2023, eq. 1 with importance weights)."""
    rng_loss, rng_drop = jax.random.split(rng)
    raw_fn = self.raw_fn(params, self._labels(batch), train=True, rng=rng_drop)
    per_example, aux = losses.weighted_loss(
        raw_fn,
        batch["x"],
        rng_loss,
        schedule=self.schedule,
        param=self.param,
        weight_fn=self.weight_fn,
        t_sampler=self.t_sampler,
    )
    metrics = {"eps_mse": jnp.mean(aux["eps_mse"])} if "eps_mse" in aux else {}
    return jnp.mean(per_example), metrics

  # -- sampling ------------------------------------------------------------------------------------

  def denoiser(self, params, label=None, guidance_scale: float = 1.0):
    """σ-frame denoiser D(x, σ) of the trained network; classifier-free guided when scale ≠ 1."""
    cond = solvers.adapters.from_raw(self.raw_fn(params, label), self.schedule, self.param)
    if label is None or guidance_scale == 1.0:
      return cond
    null = jnp.full_like(label, self.num_classes)  # the null label of classifier-free guidance
    uncond = solvers.adapters.from_raw(self.raw_fn(params, null), self.schedule, self.param)
    return solvers.guidance.cfg(cond, uncond, guidance_scale)

  def sigmas(self, num_steps: int, grid: str, grid_kwargs: dict | None = None):
    """The σ grid `solvers.grid(grid, num_steps, **grid_kwargs)` (default: the config's kwargs)."""
    kwargs = dict(self.config.sample.get("grid_kwargs", {}) if grid_kwargs is None else grid_kwargs)
    grid_fn = solvers.GRIDS.get(grid)  # unknown names: solvers.grid raises, naming them
    if grid_fn is not None and "schedule" in inspect.signature(grid_fn).parameters:
      kwargs.setdefault("schedule", self.schedule)  # grids in t or λ are the model's own schedule's
    return solvers.grid(grid, num_steps, **kwargs)

  def _sample(self, params, rng, sigmas, *, num, solver, solver_kwargs=(), label=None):
    rng_init, rng_solve = jax.random.split(rng)
    x_init = sigmas[0] * jax.random.normal(rng_init, (num,) + self.element_shape)
    den = self.denoiser(params, label, float(self.config.sample.get("guidance_scale", 1.0)))
    return solvers.solve(solver, den, x_init, sigmas, key=rng_solve, **dict(solver_kwargs))

  def sample(self, params, rng: jax.Array, num: int, **overrides):
    """`num` samples `[num, *element_shape]` with the config's solver (overridable per call).

    Overrides: solver, num_steps, grid, grid_kwargs, solver_kwargs, label ([num] int32; default:
    uniformly drawn classes for conditional models). Overriding `solver` (`grid`) drops the
    config's solver_kwargs (grid_kwargs) unless they are overridden too: they belong to its solver.
    """
    scfg = self.config.sample
    label = overrides.pop("label", None)
    if self.conditional and label is None:
      label = jax.random.randint(jax.random.fold_in(rng, 1), (num,), 0, self.num_classes)
    kwargs = dict(solver=scfg.solver, num_steps=int(scfg.num_steps), grid=scfg.grid,
                  grid_kwargs=dict(scfg.get("grid_kwargs", {})),
                  solver_kwargs=dict(scfg.get("solver_kwargs", {})))
    unknown = set(overrides) - set(kwargs)
    if unknown:
      raise ValueError(f"sample overrides {sorted(unknown)}: expected some of {sorted(kwargs)}")
    if "solver" in overrides:
      kwargs["solver_kwargs"] = {}
    if "grid" in overrides:
      kwargs["grid_kwargs"] = {}
    kwargs.update(overrides)
    # The grid is built on the host (NumPy, float64 where enabled), then passed in as data.
    sigmas = jnp.asarray(self.sigmas(int(kwargs["num_steps"]), kwargs["grid"], kwargs["grid_kwargs"]))
    solver_kwargs = tuple(sorted(dict(kwargs["solver_kwargs"]).items()))  # hashable: a static arg
    return self._sample_jit(params, rng, sigmas, num=num, solver=kwargs["solver"],
                            solver_kwargs=solver_kwargs, label=label)

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
