r"""Writes likelihood.md, posthoc_ema.md and memorization.md (and their PNGs) into an output folder
from the stage files of experiments/likelihood/run.py (`<out>/stages/*.json`).

  python3 experiments/likelihood/report.py --out=OUT --commit=abc1234 --wall_seconds=430 \
      --command="experiments/likelihood_gpu.sh ..." [--skipped=name ...]

Stages that did not run (the time budget) are named as such; nothing is filled in for them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import sys

import numpy as np
from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from diffjax.train import posthoc_ema  # pylint: disable=g-import-not-at-top,wrong-import-position

_OUT = flags.DEFINE_string("out", None, "Output folder (holds stages/).", required=True)
_COMMIT = flags.DEFINE_string("commit", "unknown", "diffjax commit.")
_COMMAND = flags.DEFINE_string("command", "", "The command that ran the whole script.")
_WALL = flags.DEFINE_integer("wall_seconds", 0, "Wall time of the whole script.")
_SKIPPED = flags.DEFINE_multi_string("skipped", [], "Stages cut by the time budget (informative).")
_SMOKE = flags.DEFINE_bool("smoke", False, "Mark the reports as a CPU smoke run.")
_REPORTS = flags.DEFINE_list(
    "reports", ["likelihood", "posthoc", "memorization"], "Which reports to write (also: curve)."
)

BPD_STAGES = (("edm", "EDM (Karras 2022)"), ("vpred", "v-prediction (Salimans & Ho 2022)"))
BPD_STAGES += (("flow", "flow matching (Lipman 2023)"),)


def _load(out: str) -> dict:
  """Stage results in the order they finished."""
  stages = {}
  for path in sorted(glob.glob(os.path.join(out, "stages", "*.json")), key=os.path.getmtime):
    with open(path) as f:
      stage = json.load(f)
    stages[stage["name"]] = stage
  return stages


def _header(title: str, stages: dict) -> list[str]:
  devices = sorted({f"{s['device']} ×{s['num_devices']}" for s in stages.values()}) or ["none ran"]
  lines = [f"# {title}", ""]
  if _SMOKE.value:
    lines += [
        "**CPU smoke run (SMOKE=1): tiny settings, numbers say nothing about the method.**",
        "",
    ]
  lines += [
      f"- Commit: `{_COMMIT.value}`; device: {', '.join(devices)}; this script runs two processes"
      " at a time (each with `XLA_PYTHON_CLIENT_MEM_FRACTION` of "
      f"{os.environ.get('XLA_PYTHON_CLIENT_MEM_FRACTION', 'the default')}), so its stage times "
      "are those of a shared GPU.",
      f"- Whole script: `{_COMMAND.value}`, {_WALL.value} s wall, compilation included.",
  ]
  return lines


def _commands(stages: list[dict]) -> list[str]:
  lines = ["", "## Commands (one stage each, in this order)", "", "```"]
  lines += [f"python3 {s['argv']}   # {s['seconds']:.0f} s" for s in stages]
  return lines + ["```"]


EXPECTED = ("train_edm", "bpd_edm", "posthoc_edm", "mem_60k", "train_vpred", "bpd_vpred")
EXPECTED += ("train_flow", "bpd_flow", "train_mem_1k", "mem_1k")


def _skipped(names) -> list[str]:
  """The expected stages with these name prefixes that left no result (cut or never started)."""
  done = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(_OUT.value, "stages", "*.json"))}
  missing = [n for n in EXPECTED if n not in done and any(n.startswith(p) for p in names)]
  if not missing:
    return []
  return ["", "**Did not fit in the time budget (not run or cut off):** " + ", ".join(missing)]


def _copy(src: str | None, out: str, name: str) -> str | None:
  if not src or not os.path.isfile(src):
    return None
  shutil.copy(src, os.path.join(out, name))
  return name


def likelihood(out: str, stages: dict) -> None:
  lines = _header("PF-ODE likelihood on Fashion-MNIST (issue 16)", stages)
  lines += [
      "",
      "## Protocol",
      "- Models: the EDM, v-prediction and flow-matching Fashion-MNIST twins (same U-Net and data "
      "as experiments/results/fashion_mnist.md) trained **briefly** (steps below, not the table's "
      "6000), EMA parameters (EDM's ramped half-life of 50k images for all three: "
      "`--ema_halflife_images`). Their bits/dim are those of these short runs.",
      "- `diffjax/solvers/likelihood.py`: log p at σ_min by the PF-ODE dx/dσ = (x − D(x, σ))/σ "
      "from σ_min to σ_max, integrated in log σ with fixed RK4 steps (one program on every device); "
      "divergence by Hutchinson with one Rademacher probe per image, fixed along the path; prior "
      "N(0, (σ_max² + 0.25) I); σ range = the schedule's within [0.002, 80].",
      "- bits/dim = −log p(x + u)/(D ln 2) + log₂ 127.5 over D = 32·32 (the padded images), with "
      "uniform dequantisation u ~ U(−1/255, 1/255)^D of the k/127.5 − 1 grid: an upper bound, in "
      "expectation, on the discrete model's bits/dim. ± is the standard error over test images "
      "(dequantisation and probe noise included).",
      "",
      "## Results",
      "",
      "| model | config | train steps | PF-ODE bits/dim ↓ | prior term (bits/dim) | test images "
      "| RK4 steps (NFE = 4×) | fewer RK4 steps: bits/dim | eval s | train s |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]
  ran = []
  for key, label in BPD_STAGES:
    train, bpd = stages.get(f"train_{key}"), stages.get(f"bpd_{key}")
    if not bpd:
      continue
    ran += [s for s in (train, bpd) if s]
    m, kw = bpd["metrics"], bpd["metrics"].get("pfode_kwargs", {})
    train_s = f"{train['seconds']:.0f}" if train else "?"
    coarse = [(k, v) for k, v in m.get("by_steps", {}).items() if int(k) != kw.get("num_steps")]
    coarse_s = ", ".join(f"{k}: {v['pfode_bpd']:.3f}" for k, v in coarse) or "—"
    lines.append(
        f"| {label} | `{bpd['config']}` | {bpd['steps'][-1] if bpd['steps'] else '?'} | "
        f"{m['pfode_bpd']:.3f} ± {m['pfode_bpd_stderr']:.3f} | {m['pfode_prior_bpd']:.4f} | "
        f"{m.get('num_examples', '')} | {kw.get('num_steps', '')} | {coarse_s} | "
        f"{bpd['seconds']:.0f} | {train_s} |"
    )
  lines += _skipped(["train_edm", "bpd_", "train_vpred", "train_flow"])
  lines += _commands(ran)
  _write(out, "likelihood.md", lines)


def _plot(series: dict, path: str, xlabel: str, ylabel: str, xlog: bool = False) -> bool:
  """One line per `series` entry {label: (xs, ys)}; False without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  fig, ax = plt.subplots(figsize=(4.5, 3.2), dpi=120)
  for label, (xs, ys) in series.items():
    ax.plot(xs, ys, "o-", label=label)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  if xlog:
    ax.set_xscale("log")
  if len(series) > 1:
    ax.legend()
  fig.savefig(path, bbox_inches="tight")
  plt.close(fig)
  return True


def posthoc(out: str, stages: dict) -> None:
  lines = _header("Post-hoc EMA (EDM2) on the EDM Fashion-MNIST twin (issue 16)", stages)
  train, rec = stages.get("train_edm"), stages.get("posthoc_edm")
  lines += [
      "",
      "## Protocol",
      "- One EDM Fashion-MNIST training run (`configs/edm/fashion_mnist.py:posthoc_ema`) tracking "
      "two power-function EMAs, σ_rel = 0.05 (γ = 16.97) and 0.10 (γ = 6.94), with snapshots every "
      f"{train['overrides'].get('optim.posthoc_ema.snapshot_every_steps', '?') if train else '?'} "
      "steps (`diffjax/train/posthoc_ema.py`, `posthoc_snapshots.py`).",
      "- After training, `--mode=reconstruct_ema` fits each target σ_rel's power-function profile "
      "at the last step by least squares over the Gram matrix of all snapshot profiles (discrete "
      "inner products over the steps), combines the snapshots with those coefficients and "
      "evaluates the result.",
      "- FD-FMNIST with the config's sampler (Heun, 35 NFE), **on fewer samples than the table's "
      "10,000** (count below): FD is biased upwards at small sample counts, so compare rows with "
      "each other, not with the table.",
  ]
  if rec:
    metrics = rec["metrics"]
    rows = sorted((float(k), v) for k, v in metrics.items() if k != "halflife_ema")
    lines += [
        "",
        "## Results",
        "",
        f"Training: {train['steps'][-1] if train and train['steps'] else '?'} steps, "
        f"{train['seconds']:.0f} s; reconstruction and evaluation {rec['seconds']:.0f} s; "
        f"FD-FMNIST of {rec.get('settings', {}).get('fd_num_samples', '?')} samples per row, the same initial "
        "noise for every row (paired comparison).",
        "",
        "| EMA | σ_rel | γ | FD-FMNIST ↓ | sampling s |",
        "|---|---|---|---|---|",
    ]

    for s, m in rows:
      lines.append(
          f"| post-hoc | {s:.3f} | {posthoc_ema.sigma_rel_to_gamma(s):.2f} | "
          f"{m.get('fd_fmnist_default', float('nan')):.2f} | "
          f"{m.get('sample_seconds_default', float('nan')):.0f} |"
      )
    h = metrics.get("halflife_ema", {})
    if h:
      lines.append(
          f"| EDM half-life (trained) | — | — | {h.get('fd_fmnist_default', float('nan')):.2f} | "
          f"{h.get('sample_seconds_default', float('nan')):.0f} |"
      )
    if rows and _plot(
        {"": ([r[0] for r in rows], [r[1].get("fd_fmnist_default") for r in rows])},
        os.path.join(out, "posthoc_ema_fd.png"),
        "σ_rel",
        "FD-FMNIST",
        xlog=True,
    ):
      lines += ["", "![FD-FMNIST vs σ_rel](posthoc_ema_fd.png)"]
    if rows:
      best = min(rows, key=lambda r: r[1].get("fd_fmnist_default", np.inf))[0]
      src = glob.glob(
          os.path.join(rec["workdir"], "posthoc_ema", f"sigma_rel_{best:.4f}", "eval", "fd_*.png")
      )
      pic = _copy(sorted(src)[-1] if src else None, out, "posthoc_ema_samples.png")
      if pic:
        lines += ["", f"Samples at the best σ_rel ({best:.3f}):", "", f"![samples]({pic})"]
  lines += _skipped(["train_edm", "posthoc_edm"])
  lines += _commands([s for s in (train, rec) if s])
  _write(out, "posthoc_ema.md", lines)


def memorization(out: str, stages: dict) -> None:
  lines = _header("Memorization on Fashion-MNIST subsets (issue 16)", stages)
  lines += [
      "",
      "## Protocol",
      "- EDM Fashion-MNIST twin trained on the first n training images (n = 60k: the run of "
      "posthoc_ema.md), EMA parameters; samples from the config's Heun-35 sampler.",
      "- Nearest-neighbour ratio r = d₁/d₂ (L2 over the 32×32 pixels, to the n training images), "
      "copy fraction = share with r < 1/3 (Yoon et al. 2023; Gu et al. 2023); held-out test images "
      "give the copy-free baseline. Denoising loss E(D(x + σε, σ) − x)² per pixel on 500 training "
      "and 500 test images, same ε; gap = held-out − train (`diffjax/metrics/memorization.py`).",
      "",
      "## Results",
      "",
      "| n train | steps | samples | copy fraction | median r | mean d₁ | held-out copy fraction "
      "| held-out median r | held-out mean d₁ |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  mems = sorted((s for k, s in stages.items() if k.startswith("mem_")), key=lambda s: s["name"])
  loss_rows = []
  for s in mems:
    m = s["metrics"]
    n = s["name"].split("_", 1)[1]
    lines.append(
        f"| {n} | {s['steps'][-1] if s['steps'] else '?'} | {m.get('num_samples', '')} | "
        f"{m['copy_fraction']:.3f} | {m['nn_ratio_median']:.3f} | {m['nn_dist_mean']:.2f} | "
        f"{m['heldout_copy_fraction']:.3f} | {m['heldout_nn_ratio_median']:.3f} | "
        f"{m['heldout_nn_dist_mean']:.2f} |"
    )
    sig = sorted(float(k[len("loss_gap_s") :]) for k in m if k.startswith("loss_gap_s"))
    loss_rows.append((n, [(x, m[f"loss_train_s{x:g}"], m[f"loss_heldout_s{x:g}"]) for x in sig]))
    pic = glob.glob(os.path.join(s["workdir"], "eval", "memorization_*.png"))
    _copy(sorted(pic)[-1] if pic else None, out, f"memorization_{n}.png")
  if loss_rows:
    lines += ["", "Denoising loss per pixel, train / held-out (gap):", ""]
    sigmas = [x for x, _, _ in loss_rows[0][1]]
    lines += ["| n train | " + " | ".join(f"σ = {x:g}" for x in sigmas) + " |"]
    lines += ["|---|" + "---|" * len(sigmas)]
    for n, vals in loss_rows:
      lines.append(
          f"| {n} | " + " | ".join(f"{a:.4f} / {b:.4f} ({b - a:+.4f})" for _, a, b in vals) + " |"
      )
    for n, _ in loss_rows:
      if os.path.isfile(os.path.join(out, f"memorization_{n}.png")):
        lines += [
            "",
            f"n = {n}: samples (top rows) and their nearest training images (bottom):",
            "",
            f"![pairs n={n}](memorization_{n}.png)",
        ]
  lines += _skipped(["mem_", "train_mem"])
  lines += _commands([s for k, s in stages.items() if k.startswith(("mem_", "train_mem"))])
  lines += [
      "",
      "The n = 5k study and checkpoints along training (when memorization begins) did not fit in "
      "this script's time budget; `eval.memorization` with `train.eval_every_steps` records them "
      "over a longer run.",
  ]
  _write(out, "memorization.md", lines)


def memorization_curve(out: str, stages: dict) -> None:
  """memorization_curve.md: the memorization metrics along training of each `curve_<n>` stage
  (experiments/memorization_gpu.sh; run.py --memorization_every)."""
  lines = _header("Memorization along training on Fashion-MNIST subsets (issue 16)", stages)
  lines += [
      "",
      "## Protocol",
      "- EDM Fashion-MNIST twin trained on the first n training images; every few steps the loop "
      "evaluates its EMA parameters: samples from the config's Heun-35 sampler, their "
      "nearest-neighbour ratio r = d₁/d₂ to the n training images, the copy fraction (r < 1/3), "
      "and the denoising loss on training vs held-out images (gap = held-out − train); held-out "
      "test images give the copy-free ratio (`diffjax/metrics/memorization.py`).",
      "",
      "| n train | step | epochs | copy fraction | median r | held-out median r "
      "| loss gap σ = 0.5 | loss gap σ = 2 |",
      "|---|---|---|---|---|---|---|---|",
  ]
  series_copy, series_ratio = {}, {}
  curves = sorted((s for k, s in stages.items() if k.startswith("curve_")), key=lambda s: s["name"])
  for s in curves:
    n = s["name"].split("_", 1)[1]
    along = {int(k): v for k, v in s["metrics"].get("along", {}).items()}
    batch = s.get("batch_size") or 0
    num = s.get("num_train") or 0
    for step in sorted(along):
      m = along[step]
      epochs = f"{step * batch / num:.3g}" if batch and num else ""
      lines.append(
          f"| {n} | {step} | {epochs} | {m['copy_fraction']:.3f} | {m['nn_ratio_median']:.3f} | "
          f"{m['heldout_nn_ratio_median']:.3f} | {m.get('loss_gap_s0.5', float('nan')):+.4f} | "
          f"{m.get('loss_gap_s2', float('nan')):+.4f} |"
      )
    steps = sorted(along)
    series_copy[f"n = {n}"] = (steps, [along[k]["copy_fraction"] for k in steps])
    series_ratio[f"n = {n}"] = (steps, [along[k]["nn_ratio_median"] for k in steps])
  for name, series, ylabel in (
      ("memorization_copy_fraction.png", series_copy, "copy fraction (r < 1/3)"),
      ("memorization_nn_ratio.png", series_ratio, "median NN ratio r"),
  ):
    if series and _plot(series, os.path.join(out, name), "training step", ylabel):
      lines += ["", f"![{ylabel}]({name})"]
  lines += _commands(curves)
  _write(out, "memorization_curve.md", lines)


def _write(out: str, name: str, lines: list[str]) -> None:
  with open(os.path.join(out, name), "w") as f:
    f.write("\n".join(line for line in lines if line is not None) + "\n")
  print(f"wrote {os.path.join(out, name)}")


def main(argv):
  del argv
  stages = _load(_OUT.value)
  writers = dict(
      likelihood=likelihood, posthoc=posthoc, memorization=memorization, curve=memorization_curve
  )
  for name in _REPORTS.value:
    writers[name](_OUT.value, stages)


if __name__ == "__main__":
  app.run(main)
