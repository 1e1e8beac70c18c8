r"""Few-step models from scratch on a 2-D toy, on a CPU: a check of issue 13's Methods that needs no
GPU and no teacher, beside the flow-matching model they shortcut.

  python experiments/fewstep_toy.py --steps=4000 --out_dir=/tmp/fewstep_toy      # ~15 min, 2 cores

Each config (`configs/<paper>/toy2d.py` on the checkerboard, its own sampler) trains `--steps`
steps in-process (experiments/quick_train.py) and samples 2000 points from its EMA parameters with
1, 2 and 4 network calls (and many, for the two multi-step models); the score is the exact W2
(optimal assignment) to 2000 held-out points, next to the floor, the W2 between two independent
2000-point draws of the data. Writes fewstep_toy.md, fewstep_toy.json and one scatter per row.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import quick_train
from diffjax import config_lib
from diffjax.train import progress

# pylint: enable=g-import-not-at-top,wrong-import-position

_STEPS = flags.DEFINE_integer("steps", 4000, "Training steps per model.")
_OUT = flags.DEFINE_string("out_dir", "/tmp/fewstep_toy", "Output dir.")
_NUM = flags.DEFINE_integer("num", 2000, "Samples (and held-out points) per W2.")
_COMMIT = flags.DEFINE_string("commit", "", "Commit recorded in the report.")
_ONLY = flags.DEFINE_list("only", [], "Run only the configs whose path starts with one of these.")

# (label, config, network calls to sample with)
RUNS = (
    ("flow matching (Lipman 2023), Euler", "flow_matching/toy2d.py", (1, 2, 4, 100)),
    ("CT (Song 2023), L2, adaptive N(k)", "consistency_models/toy2d.py", (1, 2, 4)),
    ("MeanFlow (Geng 2025)", "meanflow/toy2d.py", (1, 2, 4)),
    ("shortcut (Frans 2024)", "shortcut/toy2d.py", (1, 2, 4, 128)),
)


def main(argv):
  del argv
  out, n = _OUT.value, _NUM.value
  os.makedirs(out, exist_ok=True)
  rows = []
  floor = None
  for label, path, calls in RUNS:
    if _ONLY.value and not any(path.startswith(o) for o in _ONLY.value):
      continue
    config = config_lib.load(os.path.join(REPO, "configs", path), None)
    config.data.name = "checkerboard"
    exp, state, done, secs = quick_train.train(config, _STEPS.value)
    ref = quick_train.held_out_points(config.data, n, seed=5)
    if floor is None:
      floor = quick_train.exact_w2(quick_train.held_out_points(config.data, n, seed=6), ref)
    row = dict(method=label, config=path, steps=done, train_s=round(secs, 1), w2={})
    for k in calls:
      # Flow matching's few-step rows: k equal Euler steps of t down to 0 (its config's 100-step
      # grid ends at t = 10⁻³, which would make "4 steps" move like 3: config_lib.euler_steps).
      few_euler = path.startswith("flow_matching") and k <= 4
      overrides = config_lib.euler_steps(k) if few_euler else dict(num_steps=k)
      x = np.asarray(exp.method.sample(state.ema_params, jax.random.PRNGKey(1), n, **overrides))
      row["w2"][k] = quick_train.exact_w2(x.reshape(n, -1), ref)
      if k == 1:
        name = path.split("/")[0]
        progress.save_samples(x, os.path.join(out, f"{name}_1step.png"), ref)
    rows.append(row)
    print(row, flush=True)
  device = jax.devices()[0]
  lines = [
      "# Few-step models from scratch on the checkerboard toy (issue 13, CPU check)",
      "",
      f"- Commit `{_COMMIT.value or 'unknown'}`; device: {device.device_kind} ({jax.default_backend()}),"
      f" jax {jax.__version__}; command: `python experiments/fewstep_toy.py --steps={_STEPS.value}`.",
      f"- Exact W2 of {n} samples (EMA parameters) to {n} held-out points; floor (two independent"
      f" draws of the data): **{floor:.3f}**.",
      "",
      "| method | config | train steps | W2, 1 call | 2 calls | 4 calls | many calls |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    w = r["w2"]
    many = [k for k in w if k > 4]
    many_s = f"{w[many[0]]:.3f} ({many[0]})" if many else "—"
    lines.append(
        f"| {r['method']} | `{r['config']}` | {r['steps']} | {w[1]:.3f} | {w[2]:.3f} |"
        f" {w[4]:.3f} | {many_s} |"
    )
  lines += [
      "",
      "One-call samples (grey: data): "
      + ", ".join(f"`{r['config'].split('/')[0]}_1step.png`" for r in rows)
      + ".",
  ]
  with open(os.path.join(out, "fewstep_toy.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(out, "fewstep_toy.json"), "w") as f:
    json.dump(dict(rows=rows, floor=floor), f, indent=1, default=float)
  print("wrote", os.path.join(out, "fewstep_toy.md"))


if __name__ == "__main__":
  app.run(main)
