"""A workdir holds one run: one training at a time (a lock), and only the config that made it.

`<workdir>/lock` holds the pid and host of the training that uses the workdir; a second training is
refused in one line, and a lock whose process is gone (killed, host rebooted) is taken over with a
warning. `<workdir>/config.json` is the config of the run's checkpoints: resuming with a config
that differs in a key that changes what the state means (model, method, schedule, optimiser, data,
seed) is refused, naming the keys, before anything is built or moved. Keys that only say how long,
how often or where a run trains, logs, saves, samples or evaluates may change (`_MAY_CHANGE`).
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import socket

from absl import logging

LOCK = "lock"
CONFIG = "config.json"

# Keys a resumed run may change: they never change what the saved TrainState means.
_MAY_CHANGE = (
    "train.num_steps",
    "train.log_every_steps",
    "train.ckpt_every_steps",
    "train.keep_checkpoints",
    "train.sample_every_steps",
    "train.eval_every_steps",
    "train.async_checkpoints",
    "train.profile_steps",
    "train.profile_from_step",
    "train.allow_new_config",
    "train.steps_per_jit",
    "model.fused_norm",  # how, not what, the step computes
    "eval.*",
    "sample.*",
    "runtime.*",
    "mesh.*",  # what is measured and drawn; the machine
    "init_from",  # only read when the workdir has no checkpoint
    "data.path",
    "data.*.path",  # where the same data lie
)
_ABSENT = "(absent)"
# Keys added to the configs after runs were started, with the value that reproduces those runs: a
# config.json without the key compares as if it held this value, so such runs stay resumable.
_ADDED_WITH_DEFAULT = {
    "optim.flatten": False,
}


class WorkdirError(ValueError):
  """A workdir that cannot be used as asked (another config, a live lock, not writable)."""


def check_writable(workdir: str) -> None:
  """Creates `workdir` if needed; a one-line WorkdirError when it cannot be written."""
  probe = os.path.join(workdir, f".write_test.{socket.gethostname()}.{os.getpid()}")
  try:
    os.makedirs(workdir, exist_ok=True)
    with open(probe, "w"):
      pass
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f"--workdir={workdir} is not writable: {e.strerror or e}") from e


@contextlib.contextmanager
def lock(workdir: str, enabled: bool = True):
  """Holds `<workdir>/lock` for the duration of the block (released on errors too).

  Args:
    workdir: the run directory (created if needed).
    enabled: False on all processes but 0 of a multi-host run: one lock per run.

  Raises:
    WorkdirError: the workdir is not writable, or another live process holds the lock.
  """
  if not enabled:
    yield
    return
  check_writable(workdir)
  path = os.path.join(workdir, LOCK)
  mine = json.dumps(
      {"pid": os.getpid(), "host": socket.gethostname(), "started": _start_time(os.getpid())}
  )
  _acquire(workdir, path, mine)
  try:
    yield
  finally:
    if _read(path) == mine:
      os.remove(path)


def _acquire(workdir: str, path: str, mine: str) -> None:
  for _ in range(5):  # a few rounds against other processes taking over the same stale lock
    if _create(path, mine):
      return
    held = _read(path)
    if held is None:
      continue  # released in the meantime
    holder = _parse(held)
    if holder is not None and _alive(holder):
      pid, host = holder["pid"], holder["host"]
      check = "" if host == socket.gethostname() else " (not checkable from this host)"
      raise WorkdirError(
          f"--workdir={workdir} is in use by pid {pid} on {host}{check}: one training per "
          f"workdir; if that run is gone, delete {path}"
      )
    # Stale: move it aside atomically, so that of two processes taking it over only one wins.
    grave = f"{path}.stale.{socket.gethostname()}.{os.getpid()}"
    try:
      os.rename(path, grave)
    except FileNotFoundError:
      continue
    if _read(grave) != held:  # a fresh lock taken between our read and rename: give it back
      with contextlib.suppress(FileExistsError):
        os.link(grave, path)
      os.remove(grave)
      continue
    os.remove(grave)
    who = f"pid {holder['pid']} on {holder['host']}" if holder else f"unreadable {held[:80]!r}"
    logging.warning("took over the stale lock of %s in %s (that process is gone)", who, workdir)
  raise WorkdirError(
      f"--workdir={workdir}: could not take the lock {path}; is another run starting?"
  )


def _create(path: str, text: str) -> bool:
  """Writes `text` to `path` iff `path` does not exist, atomically (never a half-written lock)."""
  tmp = f"{path}.tmp.{socket.gethostname()}.{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(text)
  try:
    os.link(tmp, path)  # fails if path exists, also on NFS
    return True
  except FileExistsError:
    return False
  finally:
    os.remove(tmp)


def _read(path: str) -> str | None:
  try:
    with open(path) as f:
      return f.read()
  except FileNotFoundError:
    return None


def _parse(text: str) -> dict | None:
  try:
    holder = json.loads(text)
    return holder if isinstance(holder.get("pid"), int) and holder.get("host") else None
  except (ValueError, AttributeError):
    return None


def _alive(holder: dict) -> bool:
  """Whether the lock holder may still run; a process on another host cannot be checked: yes."""
  if holder["host"] != socket.gethostname():
    return True
  pid = holder["pid"]
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # another user's process
  stat = _stat(pid)
  if stat is None:
    return True  # no /proc: the pid exists, so assume it is the holder
  if stat[0] == "Z":
    return False  # a zombie (exited, not yet reaped) holds nothing
  # After a reboot or pid wrap-around the pid may belong to another process, started later.
  return holder.get("started") is None or holder["started"] == stat[19]


def _stat(pid: int) -> list[str] | None:
  """Fields 3.. of /proc/<pid>/stat (state, ppid, ..., field 22 `starttime` at index 19)."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()
  except (OSError, IndexError):
    return None


def _start_time(pid: int) -> str | None:
  stat = _stat(pid)
  return stat[19] if stat is not None and len(stat) > 19 else None


def stored_config(workdir: str) -> dict | None:
  """`<workdir>/config.json`, or None when the workdir has none."""
  text = _read(os.path.join(workdir, CONFIG))
  return None if text is None else json.loads(text)


def config_changes(stored: dict, config) -> list[str]:
  """`key old -> new` for each key whose change alters what a saved TrainState means.

  Args:
    stored: a config as `config.json` holds it (JSON of `config.to_dict()`).
    config: the ConfigDict of this run.

  Returns:
    Sorted lines, `(absent)` standing for a key only one side has; keys in `_MAY_CHANGE` are left
    out.
  """
  old, new = _flat(stored), _flat(_as_json(config))
  for key, default in _ADDED_WITH_DEFAULT.items():
    old.setdefault(key, default)
    new.setdefault(key, default)
  lines = []
  for key in sorted(set(old) | set(new)):
    if old.get(key, _ABSENT) != new.get(key, _ABSENT) and not any(
        fnmatch.fnmatchcase(key, pattern) for pattern in _MAY_CHANGE
    ):
      lines.append(f"{key} {_show(old.get(key, _ABSENT))} -> {_show(new.get(key, _ABSENT))}")
  return lines


def check_config(workdir: str, config, resuming: bool) -> list[str]:
  """Refuses to resume a run of another config (unless `train.allow_new_config`); moves nothing.

  Args:
    workdir: the run directory.
    config: this run's ConfigDict.
    resuming: whether the workdir has checkpoints; without any there is nothing to protect.

  Returns:
    The changed keys (`config_changes`) that `train.allow_new_config=True` let through.

  Raises:
    WorkdirError: one line naming the changed keys.
  """
  stored = stored_config(workdir)
  if not resuming or stored is None:
    return []
  changes = config_changes(stored, config)
  if changes and not config.train.get("allow_new_config", False):
    shown = ", ".join(changes[:6]) + (f" (+{len(changes) - 6} more)" if len(changes) > 6 else "")
    raise WorkdirError(
        f"--workdir={workdir} holds a run of another config: {shown}; use another --workdir "
        f"(--config.init_from={workdir} starts from its parameters), or rerun with "
        f"--config.train.allow_new_config=True to resume its checkpoint under this config"
    )
  if changes:
    logging.warning(
        "resuming %s under a changed config (train.allow_new_config): %s",
        workdir,
        ", ".join(changes),
    )
  return changes


def write_config(workdir: str, config, step: int, changes: list[str]) -> None:
  """Writes `<workdir>/config.json` atomically; after an accepted change of config, keeps the
  one it replaces as `config_until_step_<step>.json`."""
  path = os.path.join(workdir, CONFIG)
  if changes and step > 0 and os.path.exists(path):
    kept, n = os.path.join(workdir, f"config_until_step_{step}.json"), 1
    while os.path.exists(kept):
      kept, n = os.path.join(workdir, f"config_until_step_{step}.{n}.json"), n + 1
    os.replace(path, kept)
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(_as_json(config), f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _as_json(config) -> dict:
  """The config as config.json stores it (tuples become lists, other objects strings)."""
  return json.loads(json.dumps(config.to_dict(), sort_keys=True, default=str))


def _flat(tree: dict, prefix: str = "") -> dict:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict) and value:
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _show(value) -> str:
  text = value if value is _ABSENT else json.dumps(value)
  return text if len(text) <= 40 else text[:37] + "..."
