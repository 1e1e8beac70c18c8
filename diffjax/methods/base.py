"""The Method protocol: what the training loop drives (DESIGN.md, "Methods")."""

from __future__ import annotations

from typing import Any, Protocol

import jax
import numpy as np


class Method(Protocol):
  """A generative model family. All functions are pure and jit-compatible (no Python state)."""

  def init(self, rng: jax.Array, example_batch: dict) -> Any:
    """Parameters for a batch like `example_batch` (`{"x": [B, ...], "label": [B]?}`)."""

  def loss(self, params: Any, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
    """Scalar training loss (mean over the batch) and a dict of scalar metrics."""

  def sample(self, params: Any, rng: jax.Array, num: int, **overrides) -> jax.Array:
    """`num` samples `[num, ...]`, solver and steps from the config unless overridden."""

  def evaluate(self, params: Any, rng: jax.Array, reference: dict) -> tuple[dict, np.ndarray]:
    """Metrics (floats) against held-out `reference` data, and the samples they were computed on."""


def sample_in_batches(method: Method, params: Any, rng: jax.Array, num: int, batch_size: int,
                      **overrides):
  """`num` samples as one host array, drawn `batch_size` at a time (batch i uses fold_in(rng, i)).

  `overrides` go to every `method.sample` call (solver, num_steps, grid, ...).

  Every call has the same batch size (one compilation); the last batch is cut to fit.
  """
  out = [jax.device_get(method.sample(params, jax.random.fold_in(rng, i), batch_size, **overrides))
         for i in range(-(-num // batch_size))]
  return np.concatenate(out)[:num]


SAMPLE_OVERRIDES = ("solver", "num_steps", "grid", "grid_kwargs", "solver_kwargs")


def sample_settings(sample_config, overrides: dict) -> dict:
  """The sampler settings of one `sample` call: the config's `sample` section with `overrides`.

  Overriding `solver` (`grid`) drops the config's solver_kwargs (grid_kwargs) unless they are
  overridden too: they belong to the config's solver (grid). Unknown keys raise ValueError.
  """
  settings = dict(solver=sample_config.solver, num_steps=int(sample_config.num_steps),
                  grid=sample_config.grid, grid_kwargs=dict(sample_config.get("grid_kwargs", {})),
                  solver_kwargs=dict(sample_config.get("solver_kwargs", {})))
  unknown = set(overrides) - set(settings)
  if unknown:
    raise ValueError(f"sample overrides {sorted(unknown)}: expected some of {sorted(settings)}")
  if "solver" in overrides:
    settings["solver_kwargs"] = {}
  if "grid" in overrides:
    settings["grid_kwargs"] = {}
  settings.update(overrides)
  return settings


def conditioning(method_config, num_classes: int) -> tuple[bool, int]:
  """(conditional, classes the network sees) from `method.conditional` and the data's classes."""
  conditional = bool(method_config.get("conditional", False))
  if conditional and not num_classes:
    raise ValueError("method.conditional=True but the data set has no labels")
  return conditional, (int(num_classes) if conditional else 0)


def batch_labels(conditional: bool, batch: dict):
  """The batch's labels for a conditional Method, None for an unconditional one."""
  if not conditional:
    return None
  if "label" not in batch:
    raise ValueError("method.conditional=True but the batch has no 'label'")
  return batch["label"]

