"""What the GPU scripts' report writers (fewstep_report.py, corruptions_report.py, record_result.py,
likelihood/run.py) share: a workdir's evaluations, a training log's median steps/s, the sample
grids, and the report's commands and pictures sections."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil

_STEP = re.compile(r"step (\d+)/(\d+) \|.*?([0-9.]+) steps/s")


def _metric_files(workdir: str) -> list[tuple[int, str]]:
  """(step, path) of each `<workdir>/eval/metrics_<step>.json`, by step."""
  files = glob.glob(os.path.join(workdir, "eval", "metrics_*.json"))
  return sorted((int(os.path.basename(p)[len("metrics_") : -len(".json")]), p) for p in files)


def _read(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def latest_metrics(workdir: str) -> tuple[int, dict]:
  """(step, metrics) of `<workdir>/eval/metrics_<step>.json` with the largest step; (-1, {})."""
  files = _metric_files(workdir)
  if not files:
    return -1, {}
  step, path = files[-1]
  return step, _read(path)


def all_metrics(workdir: str) -> dict[int, dict]:
  """{step: metrics} of every evaluation in `<workdir>/eval/` (the loop's periodic ones)."""
  return {step: _read(path) for step, path in _metric_files(workdir)}


def median_speed(log: str) -> str:
  """The median of the progress lines' steps/s in `log`, formatted, or "?"."""
  if not os.path.exists(log):
    return "?"
  with open(log) as f:
    rates = [float(m.group(3)) for m in _STEP.finditer(f.read())]
  return f"{sorted(rates)[len(rates) // 2]:.1f}" if rates else "?"


def copy_sample_grids(workdir: str, step: int, name: str, out: str, keep=None) -> list:
  """Copies the FD sample grids `<workdir>/eval/fd_samples_<step>_<sampler>.png` to
  `<out>/<name>_<sampler>.png` (only samplers with `keep(sampler)`, if given); returns
  [(name, sampler, file name)]."""
  prefix = f"fd_samples_{step:08d}_"
  pictures = []
  for png in glob.glob(os.path.join(workdir, "eval", prefix + "*.png")):
    sampler = os.path.basename(png)[len(prefix) : -len(".png")]
    if keep is not None and not keep(sampler):
      continue
    dst = f"{name}_{sampler}.png"
    shutil.copy(png, os.path.join(out, dst))
    pictures.append((name, sampler, dst))
  return pictures


def write_report(path: str, lines: list, runs: list, commands: dict, pictures: list) -> None:
  """Writes `lines`, then each run's command and the sample grids, to the markdown file `path`,
  and prints its first lines."""
  lines = list(lines) + [
      "",
      "## Commands",
      "",
      "Each run: the command with `--mode=train` (stopped by SIGTERM at its deadline; the loop "
      "saves and exits), then `--mode=eval`.",
      "",
      "```",
  ]
  lines += [f"{commands.get(name, '?')}" for name, _ in runs]
  lines += ["```", "", "## Sample grids (first 100 FD samples)", ""]
  lines += [f"**{n}, {s}**\n\n![{n} {s}]({p})\n" for n, s, p in sorted(pictures)]
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines[:20]))
