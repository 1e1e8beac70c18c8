"""Two independent streams in one batch, {"x": [B, ...], "y": [B, ...]}: the two ends of a bridge.

DSBM / IMF and bridge-type stochastic interpolants (Shi et al. 2023; Albergo & Vanden-Eijnden 2023)
transport a distribution π₀ (diffjax t = 0, `x`) to another π₁ (t = 1, `y`), neither of them
noise. Each end is any data config (`data.x`, `data.y`), optionally restricted to some classes of a
labelled set (`x_classes`, `y_classes`: e.g. two groups of Fashion-MNIST classes). The `y` stream
is drawn with another seed, so the two ends are independent even when they read the same source.
"""

from __future__ import annotations

from typing import Callable

import dataclasses

import numpy as np

from diffjax.data import base

Y_SEED_OFFSET = 7919  # the y stream's seed is seed + this: independent of the x stream


def restricted(ds: base.Dataset, classes, where: str, shard: dict) -> base.Dataset:
  """`ds` with only the examples whose label is in `classes` (finite labelled sources), read
  into memory once; unlabelled batches (no "label")."""
  if not ds.num_classes or ds.num_examples is None:
    raise ValueError(f"data.{where}_classes needs a finite labelled source for data.{where}")
  every = ds.read_fn(np.arange(ds.num_examples))
  keep = np.isin(every["label"], np.asarray(list(classes), np.int64))
  if not keep.any():
    raise ValueError(f"data.{where}_classes={list(classes)}: no example has these labels")
  x = every["x"][keep]
  return base.make_dataset(
      element_shape=x.shape[1:],
      num_classes=0,
      num_examples=x.shape[0],
      read_fn=lambda indices: {"x": x[indices]},
      **shard,
  )


def make_unpaired(opts: dict, make: Callable, **shard) -> base.Dataset:
  """The `unpaired` source: `make` is `data.make`; opts x, y (data configs), x_classes,
  y_classes."""
  ends = {}
  for where, seed in (("x", shard["seed"]), ("y", shard["seed"] + Y_SEED_OFFSET)):
    cfg = dict(opts[where])
    cfg["batch_size"] = shard["global_batch_size"]
    ds = make(
        cfg,
        seed=seed,
        split=shard["split"],
        process_index=shard["process_index"],
        process_count=shard["process_count"],
    )
    if opts[f"{where}_classes"] is not None:
      ds = restricted(ds, opts[f"{where}_classes"], where, dict(shard, seed=seed))
    ends[where] = ds
  if ends["x"].element_shape != ends["y"].element_shape:
    raise ValueError(
        f"data.x and data.y must have one element shape, got {ends['x'].element_shape} and "
        f"{ends['y'].element_shape}"
    )
  x_ds, y_ds = ends["x"], ends["y"]

  class _Unpaired(base.Dataset):
    """A step's batch is both ends' batches of that step."""

    def global_batch(self, step):
      return {"x": x_ds.global_batch(step)["x"], "y": y_ds.global_batch(step)["x"]}

    def batch(self, step):
      return {"x": x_ds.batch(step)["x"], "y": y_ds.batch(step)["x"]}

  built = base.make_dataset(
      element_shape=x_ds.element_shape,
      num_classes=0,
      num_examples=x_ds.num_examples,
      sample_fn=lambda rng, n: {},  # unused: batch/global_batch are the two streams'
      **shard,
  )
  return _Unpaired(**{f.name: getattr(built, f.name) for f in dataclasses.fields(built)})
