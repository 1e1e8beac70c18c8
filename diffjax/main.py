r"""diffjax command line: train, evaluate or sample one config in one workdir.

  python -m diffjax.main --config=configs/edm/toy2d.py:smoke --workdir=/tmp/edm_toy --mode=train
  python -m diffjax.main --config=configs/edm/fashion_mnist.py --config.optim.lr=2e-4 --workdir=DIR

Everything but the three flags is a config override (`--config.train.num_steps=1000`). Rerunning
with the same `--workdir` resumes from its latest checkpoint. A problem the user can fix (unknown
or mistyped override, missing config file, data or checkpoint, a workdir that is not writable, in
use, or holds a run of another config, a diverged run) stops with one line `error: ...` on stderr
and exit status 1; `DIFFJAX_TRACEBACK=1` shows the traceback instead. orbax's INFO logging is off
unless `--verbosity=1`.
"""

from __future__ import annotations

import importlib
import os
import re
import sys

import ml_collections
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from diffjax import config_lib

# Each mode's function, imported only once the flags and the config are known to be good: JAX and
# the training stack take seconds to import, so a mistyped override fails in a fraction of that.
MODES = {
    "train": ("diffjax.train.loop", "train_and_evaluate"),
    "eval": ("diffjax.train.evaluate", "evaluate"),
    "sample": ("diffjax.train.inference", "sample"),
    "pairs": ("diffjax.train.inference", "pairs"),
    "reconstruct_ema": ("diffjax.train.posthoc_snapshots", "reconstruct"),
}
# What a user can fix: bad values, missing files, unwritable or busy workdirs, a diverged run.
USER_ERRORS = (ValueError, OSError, FloatingPointError)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, `path.py` or `path.py:arg`.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
_MODE = flags.DEFINE_enum("mode", "train", sorted(MODES), "What to do with the config.")
flags.mark_flags_as_required(["config", "workdir"])


def _fail(message: str, error: BaseException | None = None):
  """Prints `error: <message>` as one line and exits 1 (the traceback with DIFFJAX_TRACEBACK=1)."""
  if error is not None and os.environ.get("DIFFJAX_TRACEBACK"):
    raise error
  print("error: " + " ".join(str(message).split()), file=sys.stderr)
  sys.exit(1)


def _config_arg(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _unknown_override(argv: list[str]) -> str | None:
  """The first `--config.a.b=...` naming a key the config does not have, as a message."""
  spec = _config_arg(argv)
  try:
    config = config_lib.load(*spec.split(":", 1))
  except Exception:  # pylint: disable=broad-except  # then the generic message must do
    return None
  for arg in argv[1:]:
    match = re.match(r"--(?:no)?config\.([^=\s]+)", arg)
    if not match:
      continue
    node, walked = config, []
    for part in match.group(1).split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        where = f"config.{'.'.join(walked)}" if walked else "the config"
        known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        return f"--config.{match.group(1)}: {where} has no key {part!r}" + (
            f" (it has: {', '.join(known)})" if known else ""
        )
      node, walked = node[part], walked + [part]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing; a config file that is missing or fails, an unknown or mistyped override
  (which ml_collections reports as tracebacks) end in one line."""
  spec = _config_arg(argv)
  if spec is not None and not os.path.isfile(spec.split(":", 1)[0]):
    _fail(
        f"--config={spec}: no config file {spec.split(':', 1)[0]!r} (run from the repository "
        f"root, or give its path)"
    )
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if "Error whilst parsing config file" in str(e):  # get_config raised: its own message
      _fail(f"--config={spec}: {lines[-1]}", e)
    _fail(lines[0] if lines else repr(e), e)
  except (AttributeError, KeyError) as e:  # ml_collections: an override of a key that is not there
    _fail(_unknown_override(argv) or f"a --config.* override names an unknown key: {e}", e)


def initialize_distributed(runtime) -> None:
  """`jax.distributed.initialize` with the coordinates `config.runtime` gives; those it leaves
  unset (""/0/-1) come from the launcher (SLURM, Open MPI, TPU pods, ...)."""
  import jax  # pylint: disable=g-import-not-at-top  # (MODES: imported when needed)

  kwargs = {}
  if runtime.get("coordinator_address"):
    kwargs["coordinator_address"] = runtime.coordinator_address
  if runtime.get("num_processes", 0) > 0:
    kwargs["num_processes"] = int(runtime.num_processes)
  if runtime.get("process_id", -1) >= 0:
    if not 0 <= runtime.process_id < runtime.get("num_processes", 0):
      raise ValueError(
          f"runtime.process_id={runtime.process_id} must lie in [0, runtime.num_processes="
          f"{runtime.get('num_processes', 0)})"
      )
    kwargs["process_id"] = int(runtime.process_id)
  if runtime.get("cpu_collectives"):
    jax.config.update("jax_cpu_collectives_implementation", runtime.cpu_collectives)
  jax.distributed.initialize(**kwargs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import jax  # pylint: disable=g-import-not-at-top  # (MODES: imported when needed)

  from diffjax.train import checkpoint  # pylint: disable=g-import-not-at-top

  checkpoint.quiet_orbax_logging()
  config = _CONFIG.value
  module, name = MODES[_MODE.value]
  run = getattr(importlib.import_module(module), name)
  try:
    if config.runtime.distributed:
      initialize_distributed(config.runtime)
    logging.info(
        "jax %s, %d processes, devices: %s", jax.__version__, jax.process_count(), jax.devices()
    )
    run(config, _WORKDIR.value)
  except USER_ERRORS as e:
    _fail(str(e) or repr(e), e)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
