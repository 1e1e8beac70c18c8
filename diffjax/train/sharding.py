"""The device mesh and how arrays are laid out on it. Mesh axis names live only here (STYLE.md §4)."""

from __future__ import annotations

import math
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA, MODEL = "data", "model"


def make_mesh(shape: Sequence[int], axes: Sequence[str], devices=None) -> Mesh:
  """A mesh over `devices` (default: all), with one `-1` entry filled from the device count.

  Args:
    shape: mesh shape, e.g. `(-1,)` (all devices on `data`) or `(-1, 2)`.
    axes: axis names, e.g. `("data",)` or `("data", "model")`; must contain `data`.
    devices: devices to use (tests pass `jax.devices()[:1]` to compare with one device).
  """
  devices = list(jax.devices() if devices is None else devices)
  shape, axes = tuple(int(n) for n in shape), tuple(axes)
  if len(shape) != len(axes):
    raise ValueError(f"mesh.shape {shape} and mesh.axes {axes} differ in length")
  if DATA not in axes:
    raise ValueError(f"mesh.axes {axes} must contain {DATA!r}")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh.shape {shape}: at most one -1")
  known = math.prod(n for n in shape if n != -1)
  if len(devices) % known:
    raise ValueError(f"mesh.shape {shape} does not divide the {len(devices)} devices")
  shape = tuple(len(devices) // known if n == -1 else n for n in shape)
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh.shape {shape} needs {math.prod(shape)} devices, have {len(devices)}")
  return Mesh(np.asarray(devices).reshape(shape), axes)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over `data`; other axes whole."""
  return NamedSharding(mesh, P(DATA))


def stacked_batch_sharding(mesh: Mesh) -> NamedSharding:
  """Batches stacked along a leading step axis [k, B, ...]: the batch axis split over `data`."""
  return NamedSharding(mesh, P(None, DATA))


def to_global(local_batch, mesh: Mesh, stacked: bool = False):
  """Host-local NumPy slices -> global jax.Arrays sharded along `data` (works across hosts);
  `stacked`: arrays [k, B_local, ...] of k steps' batches."""
  sharding = stacked_batch_sharding(mesh) if stacked else batch_sharding(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def check_batch_divides(global_batch: int, mesh: Mesh) -> None:
  n = mesh.shape[DATA]
  if global_batch % n:
    raise ValueError(
        f"data.batch_size={global_batch} is not divisible by the {n} devices on the {DATA!r} mesh axis"
    )
