r"""Writes corruptions.md: FD-FMNIST of IHDM, blurring diffusion and cold diffusion runs from their
`eval/metrics_*.json`, logs and sample grids (experiments/corruptions_gpu.sh calls it).

  python experiments/corruptions_report.py --out=DIR --commit=SHA --wall_seconds=360 \
      --fd_samples=5000 --run=ihdm=workdirs/corruptions/ihdm --command="ihdm=python3 -m ..." ...

Sample grids `eval/fd_samples_<step>_<sampler>.png` are copied to `<out>/<name>_<sampler>.png`.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

import run_report_lib  # experiments/, the script's own folder

_OUT = flags.DEFINE_string("out", None, "Output folder (holds <name>.log).", required=True)
_RUN = flags.DEFINE_multi_string("run", [], "name=workdir.")
_COMMAND = flags.DEFINE_multi_string("command", [], "name=the run's command (without --mode).")
_COMMIT = flags.DEFINE_string("commit", "", "Commit of the code.")
_WALL = flags.DEFINE_integer("wall_seconds", 0, "Wall time of the whole script.")
_FD_SAMPLES = flags.DEFINE_integer("fd_samples", 0, "Samples per FD.")
_SMOKE = flags.DEFINE_integer(
    "smoke", 0, "1: a CPU try-out with tiny networks (numbers mean nothing)."
)

TITLES = {
    "ihdm": "IHDM (Rissanen et al. 2023): K = 100 heat levels, σ = 0.02, δ = 0.025, 100 steps",
    "blurring": "Blurring diffusion (Hoogeboom & Salimans 2023): σ_B,max = 20, 250 ancestral steps (paper: 1000)",
    "cold": "Cold diffusion (Bansal et al. 2023), deblurring, 50 levels",
}
SAMPLERS = {
    "default": "the config's sampler",
    "naive": "Cold Diffusion Alg. 1 (naive)",
}


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top

  out = _OUT.value
  runs = [r.split("=", 1) for r in _RUN.value]
  commands = dict(c.split("=", 1) for c in _COMMAND.value)
  devices = jax.devices()
  lines = [
      "# Other corruptions on Fashion-MNIST: IHDM, blurring diffusion, cold diffusion (issue 16)",
      "",
      f"- commit: `{_COMMIT.value}`",
      f"- device: {len(devices)} × {devices[0].device_kind} ({jax.default_backend()}), "
      f"jax {jax.__version__}; wall time of the whole script {_WALL.value} s "
      "(`experiments/corruptions_gpu.sh`, the three runs sharing the GPU)",
      f"- FD-FMNIST: Fréchet distance of the FD-FMNIST classifier's features, {_FD_SAMPLES.value} "
      "samples vs the test set (experiments/fd_fmnist/results.md; fewer than the table's 10k, "
      "which biases FD up a little); sampling from the EMA parameters.",
  ]
  if _SMOKE.value:
    lines.append("- **SMOKE run** (tiny networks, a few steps on a CPU): the numbers mean nothing.")
  lines += [
      "",
      "| method | sampler | train steps | steps/s | FD-FMNIST |",
      "|---|---|---|---|---|",
  ]
  pictures = []
  for name, workdir in runs:
    step, metrics = run_report_lib.latest_metrics(workdir)
    speed = run_report_lib.median_speed(os.path.join(out, name + ".log"))
    fds = sorted(k for k in metrics if k.startswith("fd_fmnist_"))
    if not fds:
      lines.append(f"| {TITLES.get(name, name)} | — | {step} | {speed} | (no evaluation) |")
    for key in fds:
      sampler = key[len("fd_fmnist_") :]
      lines.append(
          f"| {TITLES.get(name, name)} | {SAMPLERS.get(sampler, sampler)} | {step} | {speed} | "
          f"{metrics[key]:.2f} |"
      )
    pictures += run_report_lib.copy_sample_grids(workdir, step, name, out)
  lines += [
      "",
      "All three use the same small U-Net, batch 256, Adam 2e-4, EMA 0.999, and train side by side "
      "for the same wall time (steps above); they are far from converged (the configs' twin length "
      "is 6000 steps), so the table compares a few minutes of training, not the papers' numbers. "
      "IHDM's prior (a heavily blurred Gaussian image with Fashion-MNIST's per-image mean "
      "statistics) and cold diffusion's (a constant image) are data-free stand-ins for the papers' "
      "blurred training images / GMM (methods/ihdm.py, methods/cold.py).",
  ]
  run_report_lib.write_report(os.path.join(out, "corruptions.md"), lines, runs, commands, pictures)


if __name__ == "__main__":
  app.run(main)
