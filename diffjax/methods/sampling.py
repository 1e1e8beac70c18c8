"""Sampling for every Method: the one place that reads `config.sample`.

`sample(method, params, rng, num, **overrides)` builds the σ grid from the Method's own schedule,
wraps the Method's σ-frame denoiser with classifier-free guidance and x̂₀ clipping, and runs a
solver of `diffjax.solvers` in one jit; solvers a Method runs itself (a discrete chain's ancestral
sampler) come from its `chain_samplers` dict. `sample_in_batches` draws many samples with a
progress line.

Config section read here:
  sample: dict(solver=..., num_steps=..., grid=..., grid_kwargs={}, solver_kwargs={},
               guidance_scale=1.0, batch_size=..., num_samples=..., seed=...)
          solver_kwargs.clip_denoised=True clips x̂₀ to [-1, 1] before each update, as DDPM's and
          DDIM's official samplers do; valid with every σ-frame solver.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from diffjax import solvers


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
  return out


def sigmas(method, params, num_steps: int, grid: str, grid_kwargs: dict | None = None):
  """The σ grid `solvers.grid(grid, num_steps, schedule=<the model's schedule>, **grid_kwargs)`,
  NumPy on the host (grids in t or λ are the model's own schedule's; VDM's is learned)."""
  kwargs = dict(method.config.sample.get("grid_kwargs", {}) if grid_kwargs is None else grid_kwargs)
  return solvers.grid(grid, int(num_steps), schedule=method.schedule(params), **kwargs)


def guided_denoiser(
    method, params, label=None, guidance_scale: float = 1.0, clip_denoised: bool = False
):
  """The Method's σ-frame denoiser, classifier-free guided (Ho & Salimans 2022, eq. 6, with the
  null class `method.null_label`) when `label` is given and the scale ≠ 1, and with x̂₀ clipped
  to [-1, 1] when `clip_denoised`."""
  den = method.denoiser(params, label)
  if label is not None and guidance_scale != 1.0:
    den = solvers.guidance.cfg(
        den, method.denoiser(params, method.null_label(label)), guidance_scale
    )
  if clip_denoised:
    unclipped = den
    den = lambda x, sigma: jnp.clip(unclipped(x, sigma), -1.0, 1.0)  # pylint: disable=g-long-lambda
  return den


@functools.partial(
    jax.jit,
    static_argnames=("method", "num", "solver", "solver_kwargs", "guidance_scale", "clip_denoised"),
)
def _solve(
    method,
    params,
    rng,
    sigma_grid,
    label,
    noise,
    *,
    num,
    solver,
    solver_kwargs,
    guidance_scale,
    clip_denoised,
):
  rng_init, rng_solve = jax.random.split(rng)
  if noise is None:
    noise = jax.random.normal(rng_init, (num,) + method.element_shape)
  den = guided_denoiser(method, params, label, guidance_scale, clip_denoised)
  return solvers.solve(
      solver, den, sigma_grid[0] * noise, sigma_grid, key=rng_solve, **dict(solver_kwargs)
  )


def sample(method, params, rng: jax.Array, num: int, **overrides) -> jax.Array:
  """`num` samples `[num, *element_shape]` of `method` with the config's sampler.

  Overrides: solver, num_steps, grid, grid_kwargs, solver_kwargs (see `settings`); label ([num]
  int32; default for conditional models: classes drawn uniformly with fold_in(rng, 1)); noise
  ([num, *element_shape] standard normal: the initial noise, x_init = σ_max·noise, instead of a
  draw from rng; reflow pairs).
  """
  label = overrides.pop("label", None)
  noise = overrides.pop("noise", None)
  shape = (num,) + tuple(method.element_shape)
  if noise is not None and tuple(noise.shape) != shape:
    raise ValueError(f"sample noise must have shape {shape}, got {tuple(noise.shape)}")
  if method.conditional and label is None:
    label = jax.random.randint(jax.random.fold_in(rng, 1), (num,), 0, method.num_classes)
  opts = settings(method.config.sample, overrides)
  if opts["solver"] in method.chain_samplers:
    return method.chain_samplers[opts["solver"]](params, rng, num, opts, label=label, noise=noise)
  # The grid is built on the host (NumPy, float64 where enabled), then passed in as data.
  grid = jnp.asarray(sigmas(method, params, opts["num_steps"], opts["grid"], opts["grid_kwargs"]))
  solver_kwargs = dict(opts["solver_kwargs"])
  clip = bool(solver_kwargs.pop("clip_denoised", False))
  return _solve(
      method,
      params,
      rng,
      grid,
      label,
      noise,
      num=num,
      solver=opts["solver"],
      solver_kwargs=tuple(sorted(solver_kwargs.items())),  # hashable: a static arg
      guidance_scale=float(method.config.sample.get("guidance_scale", 1.0)),
      clip_denoised=clip,
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
