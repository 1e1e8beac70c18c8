r"""Writes fewstep_fashion_mnist.md: FD-FMNIST at 1, 2, 4 network calls per few-step run next to
the teacher's Heun-35, from the runs' `eval/metrics_*.json`, logs and sample grids.

  python experiments/fewstep_report.py --out=DIR --commit=SHA --wall_seconds=530 \
      --run=edm=workdirs/fewstep/edm --command="edm=python3 -m diffjax.main ..." --run=cd=... ...

The first --run is the teacher (its `fd_fmnist_heun35`); the others are students with
`fd_fmnist_step{1,2,4}`. Sample grids `eval/fd_samples_<step>_<sampler>.png` are copied to
`<out>/<name>_<sampler>.png`.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

import run_report_lib  # experiments/, the script's own folder

_OUT = flags.DEFINE_string("out", None, "Output folder (holds <name>.log).", required=True)
_RUN = flags.DEFINE_multi_string("run", [], "name=workdir; the first is the teacher.")
_COMMAND = flags.DEFINE_multi_string("command", [], "name=the run's command (without --mode).")
_COMMIT = flags.DEFINE_string("commit", "", "Commit of the code.")
_WALL = flags.DEFINE_integer("wall_seconds", 0, "Wall time of the whole script.")

TITLES = {
    "edm": "EDM teacher (Karras et al. 2022), Heun 18 steps",
    "cd": "CD (Song et al. 2023), L2, N = 18, μ = 0",
    "ct": "CT (Song et al. 2023), L2, s0 = 2, s1 = 150, μ0 = 0.9",
    "ict": "iCT (Song & Dhariwal 2023), pseudo-Huber",
    "ect": "ECT (Geng et al. 2024), from the teacher",
    "ctm": "CTM (Kim et al. 2023), L2, DSM, no GAN, γ = 0",
    "mf": "MeanFlow (Geng et al. 2025), from scratch",
    "sc": "Shortcut model (Frans et al. 2024), from scratch",
    "pd4": "PD (Salimans & Ho 2022) round N = 4, from the teacher",
    "pd2": "PD round N = 2, from N = 4",
    "pd1": "PD round N = 1, from N = 2",
}


def _fmt(x) -> str:
  return "—" if x is None else f"{x:.2f}"


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top

  out = _OUT.value
  runs = [r.split("=", 1) for r in _RUN.value]
  commands = dict(c.split("=", 1) for c in _COMMAND.value)
  (teacher, teacher_dir), students = runs[0], runs[1:]
  t_step, t_metrics = run_report_lib.latest_metrics(teacher_dir)
  t_fd = t_metrics.get("fd_fmnist_heun35")
  devices = jax.devices()
  lines = [
      "# Few-step generation on Fashion-MNIST (issue 13)",
      "",
      f"- commit: `{_COMMIT.value}`",
      f"- device: {len(devices)} × {devices[0].device_kind} ({jax.default_backend()}), "
      f"jax {jax.__version__}; wall time of the whole script {_WALL.value} s "
      "(`experiments/fewstep_gpu.sh`, all runs sharing the GPU)",
      "- FD-FMNIST: Fréchet distance of the FD-FMNIST classifier's features, 10k samples vs the "
      "test set (experiments/fd_fmnist/results.md); sampling from the EMA parameters.",
      "",
      "| method | train steps | steps/s | FD 1 step | FD 2 steps | FD 4 steps | 1-step / teacher |",
      "|---|---|---|---|---|---|---|",
      f"| {TITLES.get(teacher, teacher)}, **35 NFE** | {t_step} | "
      f"{run_report_lib.median_speed(os.path.join(out, teacher + '.log'))} | | | {_fmt(t_fd)} (35 NFE) | 1 |",
  ]
  pictures = []
  extra = []  # FDs of other samplers than step1/2/4 (CTM's step<n>_on_grid)
  for name, workdir in runs:
    step, metrics = run_report_lib.latest_metrics(workdir)
    keep = (lambda sampler: sampler == "heun35") if name == teacher else None
    pictures += run_report_lib.copy_sample_grids(workdir, step, name, out, keep)
    if name == teacher:
      continue
    for key, value in sorted(metrics.items()):
      sampler = key[len("fd_fmnist_") :]
      if key.startswith("fd_fmnist_") and sampler not in (
          "step1",
          "step2",
          "step4",
          "heun35",
          "default",
      ):
        extra.append(f"{TITLES.get(name, name)}, `{sampler}`: FD {_fmt(value)}")
    fds = [metrics.get(f"fd_fmnist_step{n}") for n in (1, 2, 4)]
    ratio = _fmt(fds[0] / t_fd) if fds[0] is not None and t_fd else "—"
    lines.append(
        f"| {TITLES.get(name, name)} | {step} | {run_report_lib.median_speed(os.path.join(out, name + '.log'))} | "
        + " | ".join(_fmt(x) for x in fds)
        + f" | {ratio} |"
    )
  if extra:
    lines += ["", "Other samplers of the same runs: " + "; ".join(extra) + "."]
  lines += [
      "",
      "PD rounds: a student of N steps is sampled with DDIM on its own N uniform-t steps; its FD "
      "at other step counts uses the same sampler with that many steps.",
      "Not in this table: guided PD (its stage 1 needs a class-conditional teacher).",
      "The issue's goal (1 step within 3× of the teacher's 35-NFE FD, 2 steps within 2×) needs "
      "training budgets of hours; these runs have minutes (train steps above).",
  ]
  run_report_lib.write_report(
      os.path.join(out, "fewstep_fashion_mnist.md"), lines, runs, commands, pictures
  )


if __name__ == "__main__":
  app.run(main)
