"""Orbax checkpoints in `<workdir>/checkpoints`: periodic, on SIGTERM, keep K, resume (STYLE.md §6).

A checkpoint that cannot be restored (corrupted or partly written files) is skipped with a warning and
moved, not deleted, to `<workdir>/checkpoints_unreadable/<step>`, so that the older one is used and
training can save that step number again. Orbax writes each step into a temporary directory and
renames it when complete, so a run killed mid-save leaves no half-written step behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from typing import Callable

import jax
import orbax.checkpoint as ocp
from absl import logging

UNREADABLE = "checkpoints_unreadable"


def make_manager(workdir: str, train_cfg) -> ocp.CheckpointManager:
  # The loop decides when to save (every `ckpt_every_steps`, at the end, at preemption); orbax's own
  # interval policy would also save the first step of every run.
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=1,
      max_to_keep=int(train_cfg.keep_checkpoints),
      enable_async_checkpointing=bool(train_cfg.async_checkpoints),
      create=True,
  )
  return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def abstract_like(init_fn: Callable, shardings):
  """ShapeDtypeStructs (with shardings) of what `init_fn()` returns, without running it."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), jax.eval_shape(init_fn), shardings
  )


def restore_latest(mngr: ocp.CheckpointManager, workdir: str, abstract, move_unreadable=True):
  """The newest restorable checkpoint as `(step, state)`, or `(None, None)` when there is none.

  Unreadable checkpoints are skipped with a warning and, with `move_unreadable`, moved aside
  (never deleted) so that this run can save that step again.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
      return step, state
    except Exception as e:  # pylint: disable=broad-except  # any failure means: not usable
      logging.warning("checkpoint at step %d is unreadable (%s: %s); using an older one", step,
                      type(e).__name__, str(e).splitlines()[0][:200])
      if move_unreadable:
        _move_aside(mngr, workdir, step)
  return None, None


def restore_dir(workdir: str, abstract, move_unreadable: bool = True):
  """`restore_latest` from the checkpoints of a run directory that no manager of ours holds."""
  with ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints")) as mngr:
    return restore_latest(mngr, workdir, abstract, move_unreadable)


def _move_aside(mngr: ocp.CheckpointManager, workdir: str, step: int) -> None:
  if jax.process_index() == 0:
    src = os.path.join(os.path.abspath(workdir), "checkpoints", str(step))
    dst_dir = os.path.join(os.path.abspath(workdir), UNREADABLE)
    os.makedirs(dst_dir, exist_ok=True)
    dst, n = os.path.join(dst_dir, str(step)), 1
    while os.path.exists(dst):
      dst, n = os.path.join(dst_dir, f"{step}.{n}"), n + 1
    if os.path.exists(src):
      shutil.move(src, dst)
      logging.warning("moved unreadable checkpoint %s to %s", src, dst)
  mngr.reload()


class Preemption:
  """Sets a flag on SIGTERM (and SIGINT) so the loop can save and stop at the next step boundary."""

  def __init__(self):
    self.requested = False
    self._old = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._old[sig] = signal.signal(sig, self._handler)
    return self

  def _handler(self, signum, frame):
    del frame
    logging.warning("received signal %d: saving a checkpoint and stopping", signum)
    self.requested = True

  def __exit__(self, *exc):
    for sig, old in self._old.items():
      signal.signal(sig, old)
    return False
