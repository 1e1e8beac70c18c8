"""Sampling for every Method: the one place that reads `config.sample`.

`sample(method, params, rng, num, **overrides)` builds the σ grid from the Method's own schedule,
wraps the Method's σ-frame denoiser with guidance, measurement conditioning and x̂₀ clipping
(`methods/conditioning.py`), and runs a solver of `diffjax.solvers` in one jit; solvers a Method
runs itself (a discrete chain's ancestral sampler) come from its `chain_samplers` dict. `sample_in_batches` draws many samples with
a progress line.

Config section read here (every key may also be a `sample` override):
  sample: dict(solver=..., num_steps=..., grid=..., grid_kwargs={}, solver_kwargs={},
               guidance_scale=1.0, batch_size=..., num_samples=..., seed=...)
          solver_kwargs.clip_denoised=True clips x̂₀ to [-1, 1] before each update, as DDPM's and
          DDIM's official samplers do; valid with every σ-frame solver.
          guidance_interval=None | (σ_lo, σ_hi): classifier-free (or auto-) guidance only there
          (Kynkäänniemi et al. 2024); the conditional model elsewhere.
          classifier_scale=1.0, classifier_mode="score" | "mean": classifier guidance when a
          `classifier` is passed (`solvers.guidance`: "score" = ADM's condition_score, a denoiser
          wrapper for every solver; "mean" = condition_mean, the `ddpm` solver's mean shift).
          inverse=dict(kind="replace" | "dps", scale=1.0, likelihood="gaussian" | "norm",
          noise_std=1.0, step="score" | "x0"): how a `measurement` conditions the denoiser
          (`solvers.inverse`).
          start_t=1.0: SDEdit (Meng et al. 2022): with `x_start`, start at t0 = start_t from
          x_start + σ̃(t0)·noise and run the grid's levels below σ̃(t0).
Per-call data (overrides only): label, noise, classifier=(Method, params) (a noisy classifier with
`log_prob_fn`, e.g. `methods.classifier`), guide=(Method, params) (autoguidance: a weaker model of
the same task replaces the null-label model of CFG; Karras et al. 2024), measurement=(operator, y)
(`solvers.inverse` operator pytree, y [num, ...]), x_start [num, *element_shape] (SDEdit input).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from diffjax import solvers
from diffjax.methods import conditioning


def settings(sample_config, overrides: dict) -> dict:
  """The sampler settings of one `sample` call: the config's `sample` section with `overrides`.

  Overriding `solver` (`grid`) drops the config's solver_kwargs (grid_kwargs) unless they are
  overridden too: they belong to the config's solver (grid). Unknown keys raise ValueError.
  """
  out = dict(
      solver=sample_config.solver,
      num_steps=int(sample_config.num_steps),
      grid=sample_config.grid,
      grid_kwargs=dict(sample_config.get("grid_kwargs", {})),
      solver_kwargs=dict(sample_config.get("solver_kwargs", {})),
      guidance_scale=float(sample_config.get("guidance_scale", 1.0)),
      guidance_interval=sample_config.get("guidance_interval", None),
      classifier_scale=float(sample_config.get("classifier_scale", 1.0)),
      classifier_mode=sample_config.get("classifier_mode", "score"),
      inverse=dict(sample_config.get("inverse", {})),
      start_t=float(sample_config.get("start_t", 1.0)),
  )
  unknown = set(overrides) - set(out)
  if unknown:
    raise ValueError(f"sample overrides {sorted(unknown)}: expected some of {sorted(out)}")
  if "solver" in overrides:
    out["solver_kwargs"] = {}
  if "grid" in overrides:
    out["grid_kwargs"] = {}
  out.update(overrides)
  out["num_steps"] = int(out["num_steps"])
  out["grid_kwargs"], out["solver_kwargs"] = dict(out["grid_kwargs"]), dict(out["solver_kwargs"])
  conditioning.check_settings(out)
  return out


def sigmas(method, params, num_steps: int, grid: str, grid_kwargs: dict | None = None):
  """The σ grid `solvers.grid(grid, num_steps, schedule=<the model's schedule>, **grid_kwargs)`,
  NumPy on the host (grids in t or λ are the model's own schedule's; VDM's is learned)."""
  kwargs = dict(method.config.sample.get("grid_kwargs", {}) if grid_kwargs is None else grid_kwargs)
  return solvers.grid(grid, int(num_steps), schedule=method.schedule(params), **kwargs)


def _hashable(opts: dict) -> tuple:
  return tuple(sorted((k, _hashable(v) if isinstance(v, dict) else v) for k, v in opts.items()))


@functools.partial(
    jax.jit,
    static_argnames=(
        "method",
        "num",
        "solver",
        "solver_kwargs",
        "clip_denoised",
        "cond",
        "guide_method",
        "classifier_method",
    ),
)
def _solve(
    method,
    params,
    rng,
    sigma_grid,
    label,
    noise,
    data,
    *,
    num,
    solver,
    solver_kwargs,
    clip_denoised,
    cond,
    guide_method,
    classifier_method,
):
  rng_init, rng_solve = jax.random.split(rng)
  if noise is None:
    noise = jax.random.normal(rng_init, (num,) + method.element_shape)
  den, extra_kwargs = conditioning.conditioned_denoiser(
      method, params, label, data, dict(cond), guide_method, classifier_method, clip_denoised
  )
  solver_kwargs = {**dict(solver_kwargs), **extra_kwargs}
  x_init = sigma_grid[0] * noise
  if "x_start" in data:
    x_init = data["x_start"] + x_init
  return solvers.solve(solver, den, x_init, sigma_grid, key=rng_solve, **solver_kwargs)


def sample(method, params, rng: jax.Array, num: int, **overrides) -> jax.Array:
  """`num` samples `[num, *element_shape]` of `method` with the config's sampler.

  Overrides: the `settings` keys (solver, num_steps, grid, grid_kwargs, solver_kwargs,
  guidance_scale, guidance_interval, classifier_scale, classifier_mode, inverse, start_t) and the
  per-call data of the module docstring: label ([num] int32; default for conditional models or
  with a classifier: classes drawn uniformly with fold_in(rng, 1)); noise ([num, *element_shape]
  standard normal: the initial noise, x_init = σ_max·noise, instead of a draw from rng; reflow
  pairs); classifier, guide, measurement, x_start.
  """
  label = overrides.pop("label", None)
  noise = overrides.pop("noise", None)
  classifier = overrides.pop("classifier", None)
  guide = overrides.pop("guide", None)
  measurement = overrides.pop("measurement", None)
  x_start = overrides.pop("x_start", None)
  shape = (num,) + tuple(method.element_shape)
  for name, value in (("noise", noise), ("x_start", x_start)):
    if value is not None and tuple(value.shape) != shape:
      raise ValueError(f"sample {name} must have shape {shape}, got {tuple(value.shape)}")
  if label is None and (method.conditional or classifier is not None):
    num_classes = method.num_classes if method.conditional else classifier[0].num_classes
    label = jax.random.randint(jax.random.fold_in(rng, 1), (num,), 0, num_classes)
  opts = settings(method.config.sample, overrides)
  extra = (classifier, guide, measurement, x_start)
  if opts["solver"] in method.chain_samplers:
    if any(v is not None for v in extra):
      raise ValueError(
          f"sample.solver={opts['solver']!r} is the Method's own chain sampler: it takes no "
          "classifier, guide, measurement or x_start; use a σ-frame solver"
      )
    return method.chain_samplers[opts["solver"]](params, rng, num, opts, label=label, noise=noise)
  if classifier is not None and opts["classifier_mode"] == "mean" and opts["solver"] != "ddpm":
    raise ValueError(
        f"sample.classifier_mode='mean' (ADM's condition_mean) shifts the ancestral step's mean: "
        f"it needs sample.solver='ddpm', got {opts['solver']!r} (use classifier_mode='score')"
    )
  # The grid is built on the host (NumPy, float64 where enabled), then passed in as data.
  grid = sigmas(method, params, opts["num_steps"], opts["grid"], opts["grid_kwargs"])
  data = {}
  if x_start is not None:
    grid = conditioning.truncated(grid, conditioning.start_sigma(method, params, opts["start_t"]))
    data["x_start"] = x_start
  elif opts["start_t"] != 1.0:
    raise ValueError(f"sample.start_t={opts['start_t']} (SDEdit) needs x_start=")
  if classifier is not None:
    data["classifier_params"] = classifier[1]
  if guide is not None:
    data["guide_params"] = guide[1]
  if measurement is not None:
    data["measurement"] = tuple(measurement)
  # Scales are data (one compilation for a sweep); what changes the program is static.
  data["guidance_scale"] = jnp.float32(opts["guidance_scale"])
  data["classifier_scale"] = jnp.float32(opts["classifier_scale"])
  data["inverse_scale"] = jnp.float32(opts["inverse"]["scale"])
  solver_kwargs = dict(opts["solver_kwargs"])
  clip = bool(solver_kwargs.pop("clip_denoised", False))
  cond = {
      "guided": opts["guidance_scale"] != 1.0,
      "guidance_interval": opts["guidance_interval"],
      "classifier_mode": opts["classifier_mode"],
      "inverse": {k: v for k, v in opts["inverse"].items() if k != "scale"},
  }
  return _solve(
      method,
      params,
      rng,
      jnp.asarray(grid),
      label,
      noise,
      data,
      num=num,
      solver=opts["solver"],
      solver_kwargs=tuple(sorted(solver_kwargs.items())),  # hashable: a static arg
      clip_denoised=clip,
      cond=_hashable(cond),
      guide_method=None if guide is None else guide[0],
      classifier_method=None if classifier is None else classifier[0],
  )


def sample_in_batches(
    method,
    params,
    rng: jax.Array,
    num: int,
    batch_size: int,
    *,
    desc: str = "sampling",
    **overrides,
) -> np.ndarray:
  """`num` samples as one host array, drawn `batch_size` at a time (batch i uses fold_in(rng, i)).

  `overrides` go to every `sample` call. Every call has the same batch size (one compilation); the
  last batch is cut to fit. Logs a progress line (`desc`, batches done, samples/s, ETA) about
  every 10 s and at the end.
  """
  num_batches = -(-int(num) // int(batch_size))
  out, t0, last = [], time.perf_counter(), time.perf_counter()
  for i in range(num_batches):
    out.append(
        jax.device_get(
            method.sample(params, jax.random.fold_in(rng, i), int(batch_size), **overrides)
        )
    )
    now = time.perf_counter()
    if now - last > 10.0 or i + 1 == num_batches:
      last = now
      rate = (i + 1) * batch_size / max(now - t0, 1e-9)
      eta = (num_batches - i - 1) * batch_size / rate
      logging.info(
          "%s: batch %d/%d, %.1f samples/s, ETA %.0fs", desc, i + 1, num_batches, rate, eta
      )
  return np.concatenate(out)[:num]
