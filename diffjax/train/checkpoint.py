"""Orbax checkpoints in `<workdir>/checkpoints`: periodic, on SIGTERM, keep K, resume (STYLE.md §6).

What a resume can trust:
- A state with NaN or Inf is never saved (`Saver.save` raises, naming the step; the last good
  checkpoint stays), so a diverged run cannot rotate the good checkpoints out.
- Each step directory holds `checksums.json`, the CRC-32 of every saved array's host bytes, written
  atomically once orbax has committed the step; restoring verifies it (a step without one, from an
  older version, restores with a warning).
- A checkpoint whose tree or shapes differ from the state the config builds is refused in one line
  and nothing is moved: that is another run (or other code), not a damaged one.
- Only an unreadable checkpoint (read error, checksum mismatch, NaN or Inf) is skipped with a
  warning naming its step and moved, not deleted, to `<workdir>/checkpoints_unreadable/<step>`, so
  that the older one is used and training can save that step number again.
Orbax writes each step into a temporary directory and renames it when complete, so a run killed
mid-save leaves no half-written step behind.
"""

from __future__ import annotations

import json
import logging as py_logging
import os
import shutil
import signal
import threading
import zlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

UNREADABLE = "checkpoints_unreadable"
CHECKSUMS = "checksums.json"


class CheckpointMismatchError(ValueError):
  """A checkpoint whose tree or shapes differ from the state that the config builds."""


def make_manager(workdir: str, train_cfg) -> ocp.CheckpointManager:
  # The loop decides when to save (every `ckpt_every_steps`, at the end, at preemption); orbax's own
  # interval policy would also save the first step of every run.
  options = ocp.CheckpointManagerOptions(
      save_interval_steps=1,
      max_to_keep=int(train_cfg.keep_checkpoints),
      enable_async_checkpointing=bool(train_cfg.async_checkpoints),
      create=True,
  )
  return ocp.CheckpointManager(checkpoint_dir(workdir), options=options)


def checkpoint_dir(workdir: str, step: int | None = None) -> str:
  """`<workdir>/checkpoints` (absolute), or the directory of one step in it."""
  path = os.path.join(os.path.abspath(workdir), "checkpoints")
  return path if step is None else os.path.join(path, str(step))


def saved_steps(workdir: str) -> list[int]:
  """The committed checkpoint steps in `<workdir>/checkpoints` (no manager, nothing created)."""
  path = checkpoint_dir(workdir)
  return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def abstract_like(init_fn: Callable, shardings):
  """ShapeDtypeStructs (with shardings) of what `init_fn()` returns, without running it."""
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      jax.eval_shape(init_fn),
      shardings,
  )


def _name(path) -> str:
  """`params.Dense_0.kernel` for a key path of the TrainState or of orbax's metadata tree."""
  parts = (getattr(k, "name", getattr(k, "key", getattr(k, "idx", k))) for k in path)
  return ".".join(str(p) for p in parts)


@jax.jit
def _finite_by_part(state) -> dict:
  """{top-level field: all its floating-point entries are finite}, one reduction per field."""
  parts = {}
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    if jnp.issubdtype(x.dtype, jnp.inexact):
      key = _name(path[:1])
      parts[key] = jnp.logical_and(parts.get(key, True), jnp.all(jnp.isfinite(x)))
  return parts


def non_finite_parts(state) -> list[str]:
  """The top-level fields of `state` (params, opt_state, ema_params, ...) holding NaN or Inf."""
  return sorted(k for k, ok in jax.device_get(_finite_by_part(state)).items() if not ok)


def _host_array(x) -> np.ndarray | None:
  """The whole array on this host; None for an array sharded across hosts (not checksummed)."""
  if not isinstance(x, jax.Array):
    return np.asarray(x)
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.is_fully_addressable:
    return np.asarray(jax.device_get(x))
  if x.is_fully_replicated:
    return np.asarray(x.addressable_data(0))
  return None


def checksums(state) -> dict:
  """{array name: CRC-32 (hex) of its host bytes}: catches bit-rot, not tampering."""
  out = {}
  for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
    host = _host_array(x)
    if host is not None:
      out[_name(path)] = f"{zlib.crc32(np.ascontiguousarray(host).reshape(-1).view(np.uint8)):08x}"
  return out


def _write_checksums(step_dir: str, sums: dict) -> None:
  tmp = os.path.join(step_dir, f".{CHECKSUMS}.tmp")
  with open(tmp, "w") as f:
    json.dump({"algorithm": "crc32", "arrays": sums}, f, indent=0, sort_keys=True)
  os.replace(tmp, os.path.join(step_dir, CHECKSUMS))  # atomic: a sidecar is whole or absent


class Saver:
  """`mngr.save` that never saves a non-finite state and adds each step's checksums.

  With async checkpointing the checksums (computed from the state in memory at save time) are
  written once orbax has committed the step: at the next save, which waits for this one anyway, or
  at `finish()`.
  """

  def __init__(self, mngr: ocp.CheckpointManager, workdir: str, async_save: bool):
    self.mngr, self.workdir, self.async_save = mngr, workdir, async_save
    self._pending = None  # (step, checksums) of a save that may still be in flight

  def save(self, step: int, state) -> None:
    """Saves `state` as `step`.

    Raises:
      FloatingPointError: the state has NaN or Inf; nothing is saved.
    """
    bad = non_finite_parts(state)
    if bad:
      self.finish()
      latest = self.mngr.latest_step()
      kept = f"step {latest} is the last checkpoint" if latest is not None else "no checkpoint yet"
      raise FloatingPointError(
          f"training diverged: the state at step {step} has NaN or Inf in {', '.join(bad)} and was "
          f"not saved ({kept} in {self.workdir}/checkpoints); lower optim.lr or set "
          f"optim.grad_clip"
      )
    sums = checksums(state)
    self.finish()
    self.mngr.save(step, args=ocp.args.StandardSave(state), force=True)
    self._pending = (step, sums)
    if not self.async_save:
      self.finish()

  def finish(self) -> None:
    """Waits for the save in flight, then writes its checksums."""
    self.mngr.wait_until_finished()
    if self._pending is None:
      return
    step, sums = self._pending
    self._pending = None
    step_dir = checkpoint_dir(self.workdir, step)
    if jax.process_index() == 0 and os.path.isdir(step_dir):
      _write_checksums(step_dir, sums)


def restore_latest(mngr: ocp.CheckpointManager, workdir: str, abstract, move_unreadable=True):
  """The newest trustworthy checkpoint as `(step, state)`, or `(None, None)` when there is none.

  Unreadable checkpoints (read errors, checksum mismatches, NaN or Inf) are skipped with a warning
  naming the step and, with `move_unreadable`, moved aside (never deleted) so that this run can
  save that step again.

  Raises:
    CheckpointMismatchError: the newest checkpoint has another tree or other shapes than `abstract`;
      nothing is moved.
  """
  for step in sorted(mngr.all_steps(), reverse=True):
    step_dir = checkpoint_dir(workdir, step)
    problem, state = _restore_step(mngr, step, step_dir, abstract, workdir)
    if problem is None:
      return step, state
    logging.warning(
        "checkpoint at step %d is unreadable (%s); using an older one of %s", step, problem, workdir
    )
    if move_unreadable:
      _move_aside(mngr, workdir, step)
  return None, None


def _restore_step(mngr, step: int, step_dir: str, abstract, workdir: str):
  """(None, state), or (why the checkpoint is unreadable, None)."""
  try:
    metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(step_dir) / "default")
    stored = {
        _name(p): tuple(m.shape)
        for p, m in jax.tree_util.tree_flatten_with_path(metadata)[0]
        if hasattr(m, "shape")
    }
  except Exception as e:  # pylint: disable=broad-except  # no readable metadata: a damaged step
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", None
  _check_shapes(stored, abstract, step, workdir)
  try:
    state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
  except Exception as e:  # pylint: disable=broad-except  # the shapes fit: any failure is damage
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", None
  try:
    with open(os.path.join(step_dir, CHECKSUMS)) as f:
      expected = json.load(f)["arrays"]
  except FileNotFoundError:
    logging.warning(
        "checkpoint at step %d in %s has no checksums (written by an older version): "
        "restored unverified",
        step,
        workdir,
    )
    expected = {}
  except (OSError, ValueError, KeyError) as e:
    return f"its {CHECKSUMS} is unreadable: {type(e).__name__}", None
  actual = checksums(state)
  wrong = sorted(k for k in expected if k in actual and actual[k] != expected[k])
  if wrong:
    return f"checksum mismatch in {len(wrong)} arrays: {', '.join(wrong[:3])}", None
  bad = non_finite_parts(state)
  if bad:
    return f"not finite: NaN or Inf in {', '.join(bad)}", None
  return None, state


def _check_shapes(stored: dict, abstract, step: int, workdir: str) -> None:
  want = {_name(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  diffs = [
      f"{k} {stored.get(k, 'absent')} in the checkpoint, {want.get(k, 'absent')} now"
      for k in sorted(set(stored) | set(want))
      if stored.get(k) != want.get(k)
  ]
  if diffs:
    raise CheckpointMismatchError(
        f"the checkpoint at step {step} in {workdir} does not fit this config's state: "
        f"{'; '.join(diffs[:3])}{f' (+{len(diffs) - 3} more)' if len(diffs) > 3 else ''}; "
        f"nothing was moved (it was written by another config or other code)"
    )


def restore_dir(workdir: str, abstract, move_unreadable: bool = True):
  """`restore_latest` from the checkpoints of a run directory that no manager of ours holds."""
  with ocp.CheckpointManager(checkpoint_dir(workdir)) as mngr:
    return restore_latest(mngr, workdir, abstract, move_unreadable)


def _move_aside(mngr: ocp.CheckpointManager, workdir: str, step: int) -> None:
  if jax.process_index() == 0:
    src = checkpoint_dir(workdir, step)
    dst_dir = os.path.join(os.path.abspath(workdir), UNREADABLE)
    os.makedirs(dst_dir, exist_ok=True)
    dst, n = os.path.join(dst_dir, str(step)), 1
    while os.path.exists(dst):
      dst, n = os.path.join(dst_dir, f"{step}.{n}"), n + 1
    if os.path.exists(src):
      shutil.move(src, dst)
      logging.warning("moved unreadable checkpoint %s to %s", src, dst)
  mngr.reload()


class _QuietOrbax(py_logging.Filter):
  """Drops orbax's INFO records (half of a training log) unless --verbosity >= 1 (DEBUG)."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    return (
        record.levelno >= py_logging.WARNING
        or f"{os.sep}orbax{os.sep}" not in record.pathname
        or logging.get_verbosity() >= logging.DEBUG
    )


def quiet_orbax_logging() -> None:
  """Silences orbax's INFO logging (it logs through absl); its warnings and errors stay."""
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _QuietOrbax) for f in absl_logger.filters):
    absl_logger.addFilter(_QuietOrbax())


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
