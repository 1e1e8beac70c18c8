"""What the GPU scripts' report writers (fewstep_report.py, corruptions_report.py) read from their
runs: a workdir's latest evaluation and a training log's median steps/s."""

from __future__ import annotations

import glob
import json
import os
import re

_STEP = re.compile(r"step (\d+)/(\d+) \|.*?([0-9.]+) steps/s")


def latest_metrics(workdir: str) -> tuple[int, dict]:
  """(step, metrics) of `<workdir>/eval/metrics_<step>.json` with the largest step; (-1, {})."""
  files = sorted(glob.glob(os.path.join(workdir, "eval", "metrics_*.json")))
  if not files:
    return -1, {}
  step = int(os.path.basename(files[-1])[len("metrics_") : -len(".json")])
  with open(files[-1]) as f:
    return step, json.load(f)


def median_speed(log: str) -> str:
  """The median of the progress lines' steps/s in `log`, formatted, or "?"."""
  if not os.path.exists(log):
    return "?"
  with open(log) as f:
    rates = [float(m.group(3)) for m in _STEP.finditer(f.read())]
  return f"{sorted(rates)[len(rates) // 2]:.1f}" if rates else "?"
