"""Deterministic, host-sharded batch streams: the one contract every data source follows.

A batch is a pure function of `(seed, split, step, process_index)`; nothing is iterated, so a
resumed run reproduces the data stream by calling `batch(step)` again (DESIGN.md, "Checkpoints").

* Infinite sources (2-D toys, Gaussian mixtures) draw the GLOBAL batch of a step from a NumPy
  generator seeded with `(seed, split, step)` and keep this host's rows.
* Finite sources (images, text windows) read the global batch of a step as positions
  `step*B ... step*B + B - 1` of an endless stream made of one random permutation of the `N`
  examples per epoch (epoch `e = position // N`, permutation seeded with `(seed, split, e)`), and
  keep this host's rows. Every example appears exactly once per epoch; a batch may straddle two
  epochs; host shards are disjoint and their union (in process order) is the global batch.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import zlib
from typing import Any, Callable, Mapping

import numpy as np

Batch = dict[str, np.ndarray]


def local_batch_size(global_batch_size: Any, process_count: int) -> int:
  """Rows of the global batch that one process reads.

  Args:
    global_batch_size: `data.batch_size`, the global batch size over all processes.
    process_count: number of processes (`jax.process_count()`).

  Returns:
    `global_batch_size // process_count`.

  Raises:
    ValueError: naming `data.batch_size` when it is not a positive multiple of `process_count`.
  """
  if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, (int, np.integer)):
    raise ValueError(f"data.batch_size must be an int, got {global_batch_size!r}")
  if process_count < 1:
    raise ValueError(f"process_count must be >= 1, got {process_count}")
  if global_batch_size < 1 or global_batch_size % process_count:
    raise ValueError(
        f"data.batch_size={global_batch_size} must be a positive multiple of the process count "
        f"{process_count} (each process reads data.batch_size // process_count rows)"
    )
  return int(global_batch_size) // process_count


def stream_id(split: str) -> int:
  """A stable 32-bit id of a split name (crc32, not `hash`), so train and test streams differ."""
  return zlib.crc32(split.encode("utf-8"))


def step_rng(seed: int, split: str, step: int) -> np.random.Generator:
  """The NumPy generator of one step of an infinite source: a pure function of its arguments."""
  return np.random.default_rng([int(seed), stream_id(split), int(step)])


@functools.lru_cache(maxsize=8)
def epoch_permutation(seed: int, split: str, epoch: int, num_examples: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the `num_examples` examples, int64 [N].

  Memoised (a pure function of its arguments); seeded by `(seed, split, epoch)` through
  `np.random.SeedSequence`, so it does not depend on the process count.
  """
  rng = np.random.default_rng([int(seed), stream_id(split), 1, int(epoch)])
  perm = rng.permutation(num_examples)
  perm.flags.writeable = False
  return perm


def global_indices(
    seed: int,
    split: str,
    step: int,
    global_batch_size: int,
    num_examples: int,
    shuffle: bool = True,
) -> np.ndarray:
  """Example indices of the global batch of `step`, int64 [B].

  Position `g = step*B + j` in the stream belongs to epoch `g // N` and is example
  `perm_epoch[g % N]` (or `g % N` without shuffling).
  """
  positions = step * global_batch_size + np.arange(global_batch_size, dtype=np.int64)
  epochs, offsets = np.divmod(positions, num_examples)
  if not shuffle:
    return offsets
  out = np.empty_like(positions)
  for epoch in np.unique(epochs):  # at most ceil(B / N) + 1 epochs per batch
    mask = epochs == epoch
    out[mask] = epoch_permutation(seed, split, int(epoch), num_examples)[offsets[mask]]
  return out


def _check_step(step: Any) -> int:
  """A Python int >= 0 from an int, NumPy integer or integer scalar jax.Array."""
  try:
    value = operator.index(step)
  except TypeError:
    value = None
  if isinstance(step, bool) or value is None or value < 0:
    raise ValueError(f"step must be a non-negative int, got {step!r}")
  return int(value)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """A deterministic, host-sharded stream of NumPy batches.

  Attributes:
    element_shape: shape of one example `x` (e.g. `(2,)`, `(28, 28, 1)`, `(seq_len,)`).
    num_classes: number of labels (0 when unlabelled; then batches have no "label").
    num_examples: size of the split, or None for infinite sources.
    global_batch_size: `data.batch_size`.
    batch_size: rows per process, `global_batch_size // process_count`.
    seed, split, process_index, process_count: what the stream is a function of.
    info: source-specific extras (e.g. "mixture" for `gmm`, "vocab" for text), also readable as
      attributes (`ds.mixture`).
  """

  element_shape: tuple[int, ...]
  num_classes: int
  num_examples: int | None
  global_batch_size: int
  batch_size: int
  seed: int
  split: str
  process_index: int
  process_count: int
  # Infinite: sample_fn(rng, n) -> Batch with n rows. Finite: read_fn(indices [n]) -> Batch.
  sample_fn: Callable[[np.random.Generator, int], Batch] | None = None
  read_fn: Callable[[np.ndarray], Batch] | None = None
  shuffle: bool = True
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __getattr__(self, name: str) -> Any:
    info = object.__getattribute__(self, "info")
    if name in info:
      return info[name]
    raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

  def _local_rows(self) -> slice:
    start = self.process_index * self.batch_size
    return slice(start, start + self.batch_size)

  def global_batch(self, step: int) -> Batch:
    """All processes' rows of `step` (what the shards union to); for tests and single host."""
    step = _check_step(step)
    if self.sample_fn is not None:
      return self.sample_fn(step_rng(self.seed, self.split, step), self.global_batch_size)
    idx = global_indices(
        self.seed, self.split, step, self.global_batch_size, self.num_examples, self.shuffle
    )
    return self.read_fn(idx)

  def indices(self, step: int) -> np.ndarray:
    """This process's example indices at `step`, int64 [batch_size] (finite sources only)."""
    step = _check_step(step)
    if self.read_fn is None:
      raise ValueError("indices() is only defined for finite data sources")
    idx = global_indices(
        self.seed, self.split, step, self.global_batch_size, self.num_examples, self.shuffle
    )
    return idx[self._local_rows()]

  def batch(self, step: int) -> Batch:
    """This process's batch at `step`.

    Returns:
      {"x": float32 [batch_size, *element_shape] (int32 for text), "label": int32 [batch_size]
      (labelled sources only)}.
    """
    step = _check_step(step)
    if self.sample_fn is not None:  # the global draw is cheap for synthetic data
      return {k: v[self._local_rows()] for k, v in self.global_batch(step).items()}
    return self.read_fn(self.indices(step))


def make_dataset(
    *,
    element_shape,
    num_classes,
    num_examples,
    global_batch_size,
    seed,
    split,
    process_index,
    process_count,
    sample_fn=None,
    read_fn=None,
    shuffle=True,
    info=None,
) -> Dataset:
  """Validates the sharding arguments and builds a `Dataset` (one of sample_fn/read_fn)."""
  if (sample_fn is None) == (read_fn is None):
    raise ValueError("exactly one of sample_fn (infinite) and read_fn (finite) must be given")
  if read_fn is not None and (num_examples is None or num_examples < 1):
    raise ValueError(f"a finite source needs num_examples >= 1, got {num_examples}")
  local = local_batch_size(global_batch_size, process_count)
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  return Dataset(
      element_shape=tuple(int(s) for s in element_shape),
      num_classes=int(num_classes),
      num_examples=None if num_examples is None else int(num_examples),
      global_batch_size=int(global_batch_size),
      batch_size=local,
      seed=int(seed),
      split=str(split),
      process_index=int(process_index),
      process_count=int(process_count),
      sample_fn=sample_fn,
      read_fn=read_fn,
      shuffle=bool(shuffle),
      info=dict(info or {}),
  )
