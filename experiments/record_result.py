r"""Writes experiments/results/<name>.md for a finished run: command, config, commit, hardware, numbers.

  python experiments/record_result.py --name=edm_fashion_mnist --workdir=workdirs/edm_fmnist \
      --command="python -m diffjax.main --config=configs/edm/fashion_mnist.py --workdir=..." \
      --train_log=train.log [--picture=samples/final_00006000.png]

Reads `<workdir>/config.json`, the newest `<workdir>/eval/metrics_*.json`, the progress lines of the
training log (first/last loss, steps/s, wall time) and copies one sample picture next to the report.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import re
import shutil
import subprocess

from absl import app
from absl import flags

import run_report_lib  # experiments/, the script's own folder

_NAME = flags.DEFINE_string("name", None, "Result name (file stem).", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's workdir.", required=True)
_COMMAND = flags.DEFINE_multi_string("command", [], "Command(s) that produced the run.")
_TRAIN_LOG = flags.DEFINE_string("train_log", "", "Captured stdout/stderr of the training run.")
_PICTURE = flags.DEFINE_string("picture", "", "Sample picture to copy (default: newest in eval/).")
_OUT = flags.DEFINE_string(
    "out", os.path.join(os.path.dirname(__file__), "results"), "Output folder."
)
_NOTES = flags.DEFINE_string("notes", "", "Free text appended to the report.")
_COMMIT = flags.DEFINE_string(
    "commit", "", "Commit of the code (default: git rev-parse HEAD here)."
)

_PROGRESS = re.compile(r"step (\d+)/(\d+) \|.*?\| loss ([0-9.eE+-]+) \|.*?([0-9.]+) steps/s")


def _hardware() -> str:
  import jax  # pylint: disable=g-import-not-at-top

  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  return (
      f"{len(devices)} × {', '.join(kinds)} ({jax.default_backend()}), {os.cpu_count()} CPU cores, "
      f"jax {jax.__version__}, {platform.machine()}"
  )


def _commit() -> str:
  try:
    here = os.path.dirname(os.path.abspath(__file__))
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True
    ).stdout
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=here,
        capture_output=True,
        text=True,
    ).stdout
    return sha.strip() + (" (with uncommitted changes)" if dirty.strip() else "")
  except OSError:
    return "unknown"


def main(argv):
  del argv
  workdir = _WORKDIR.value
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  _, metrics = run_report_lib.latest_metrics(workdir)
  lines = ["# " + _NAME.value, "", "## Commands", "", "```"] + _COMMAND.value + ["```", ""]
  lines += [f"- commit: `{_COMMIT.value or _commit()}`", f"- hardware: {_hardware()}"]
  if _TRAIN_LOG.value and os.path.exists(_TRAIN_LOG.value):
    rows = [m.groups() for m in _PROGRESS.finditer(open(_TRAIN_LOG.value).read())]
    if rows:
      rates = [float(r[3]) for r in rows[1:]] or [float(rows[0][3])]
      lines += [
          f"- training: {rows[-1][0]} steps, loss {rows[0][2]} (step {rows[0][0]}) → {rows[-1][2]} "
          f"(step {rows[-1][0]}), median {sorted(rates)[len(rates) // 2]:.2f} steps/s"
      ]
    # A run restarted after a time limit logs KILLED_SECONDS for each cut-off attempt: summed.
    log = open(_TRAIN_LOG.value).read()
    wall = re.findall(r"WALL_SECONDS=([0-9.]+)", log)
    killed = re.findall(r"KILLED_SECONDS=([0-9.]+)", log)
    if wall:
      total = float(wall[-1]) + sum(map(float, killed))
      lines += [
          f"- wall time (all commands above): {total:.0f} s"
          + (f", over {len(killed) + 1} calls" if killed else "")
      ]
  if metrics:
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.6g} |" for k, v in sorted(metrics.items())]
  picture = (
      _PICTURE.value
      or (sorted(glob.glob(os.path.join(workdir, "eval", "samples_*.png"))) or [""])[-1]
  )
  os.makedirs(_OUT.value, exist_ok=True)
  if picture:
    dst = os.path.join(_OUT.value, f"{_NAME.value}.png")
    shutil.copyfile(picture if os.path.exists(picture) else os.path.join(workdir, picture), dst)
    lines += ["", f"![samples]({os.path.basename(dst)})"]
  if _NOTES.value:
    lines += ["", _NOTES.value]
  lines += ["", "## Config", "", "```json", json.dumps(config, indent=1, sort_keys=True), "```", ""]
  path = os.path.join(_OUT.value, f"{_NAME.value}.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  print("wrote", path)


if __name__ == "__main__":
  app.run(main)
