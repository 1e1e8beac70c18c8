"""guidance_editing.json (experiments/guidance/run.py) -> guidance_editing.md."""

from __future__ import annotations

import json
import sys


def _f(v, nd=3):
  return f"{v:.{nd}f}" if isinstance(v, (int, float)) else str(v)


def write(json_path: str, md_path: str) -> None:
  with open(json_path) as f:
    d = json.load(f)
  info, rows = d["info"], d["rows"]
  fl = rows.get("floors", {})
  out = [
      "# Guidance, editing and inverse problems on Fashion-MNIST (issue 16)",
      "",
      f"Device: {info['device']}; commit {info['commit'] or '(DIFFJAX_COMMIT unset)'}; "
      f"wall {info['wall_s']:.0f} s (compiles included).",
      "",
      "```",
      "experiments/guidance_gpu.sh <fmnist dir> <fd classifier dir> <out dir>",
      "  = python3 experiments/guidance/run.py --data=... --fd_dir=... --out=...",
      "```",
      f"Models (short-trained, small): class-conditional EDM (`configs/edm/fashion_mnist.py`, "
      f"`method.conditional=True`, label dropout 0.1) {info['main_steps']} steps "
      f"({info['train_main_s']:.0f} s incl. compile); autoguidance guide = its checkpoint at step "
      f"{info['guide_steps']}; noise-conditional classifier (`method.kind=noisy_classifier`, "
      f"EDM schedule) {info['clf_steps']} steps ({info['train_clf_s']:.0f} s).",
      "",
      "FD = FD-FMNIST (experiments/fd_fmnist/results.md protocol) but on fewer samples than its "
      "10k, so compare only with the floors below (train images vs the test statistics at the "
      "same count); acc = the FD classifier's accuracy on the requested label. PSNR on the "
      "28×28 crop, peak-to-peak 2.",
      "",
      "| floor | value |",
      "|---|---|",
  ]
  out += [f"| {k} | {_f(v)} |" for k, v in fl.items()]
  if "inverse" in rows:
    out += [
        "",
        "## Inverse problems (test images, true labels)",
        "",
        "| task | PSNR (dB) | FD | conditioning | sampler |",
        "|---|---|---|---|---|",
    ]
    for k, v in rows["inverse"].items():
      if isinstance(v, dict):
        out.append(
            f"| {k} | {_f(v['psnr'], 2)} | {_f(v['fd'])} | {v['inverse']} | {v['sampler']} |"
        )
      elif not k.endswith("_shown"):
        out.append(f"| {k} (measurement itself) | {_f(v, 2)} | | | |")
    shown = {k[: -len("_shown")]: v for k, v in rows["inverse"].items() if k.endswith("_shown")}
    dps = f" (pictures: {', '.join(shown.values())}, the best ζ by PSNR)" if shown else ""
    out += [
        "",
        f"DPS rows `_s<ζ>` sweep the step ζ{dps}.",
        "",
        "![inpainting](inpainting.png)",
        "",
        "Rows: original, replacement, RePaint U=4, DPS, the masked input.",
        "",
        "![sr and deblur](sr_deblur.png)",
        "",
        "Rows: original, 2× low-res (upsampled), DDNM, DPS, blurred input, DPS deblurred.",
        "",
    ]
  if "sdedit" in rows:
    out += [
        "## SDEdit from 4× downsampled test images (t0 trade-off)",
        "",
        "| t0 | σ̃(t0) | FD (realism) | PSNR to original | PSNR to input (faithfulness) |",
        "|---|---|---|---|---|",
    ]
    for k, v in rows["sdedit"].items():
      if k == "input":
        out.append(f"| input | | {_f(v['fd'])} | {_f(v['psnr_to_original'], 2)} | |")
      else:
        out.append(
            f"| {k} | {_f(v['sigma_start'], 2)} | {_f(v['fd'])} | "
            f"{_f(v['psnr_to_original'], 2)} | {_f(v['psnr_to_input'], 2)} |"
        )
    out += ["", "![sdedit](sdedit.png)", "", "Rows: original, input, t0 = 0.3, 0.5, 0.8.", ""]
  for key, title in (
      ("cfg", "Classifier-free guidance sweep (Heun, EDM grid)"),
      ("cfg_interval", "CFG with guidance interval σ ∈ (0.28, 5.42]"),
      ("autoguidance", "Autoguidance (guide: the early checkpoint)"),
      ("classifier", "Classifier guidance on the unconditional (null-label) model"),
  ):
    if key in rows:
      out += [f"## {title}", "", "| scale | FD | acc |", "|---|---|---|"]
      out += [f"| {k} | {_f(v['fd'])} | {_f(v['acc'])} |" for k, v in rows[key].items()]
      out.append("")
  if "cfg" in rows:
    out += ["![cfg](cfg_sweep.png)", "", "Rows: scale 0, 1, 1.5, 2, 3, 4.", ""]
  if "classifier" in rows:
    out += [
        "![classifier guidance](classifier_guidance.png)",
        "",
        "Rows: condition_score s=1, 3 (Heun), condition_mean s=1, 3 (DDPM).",
        "",
    ]
  if info.get("skipped"):
    out += [f"Stages skipped for time: {', '.join(info['skipped'])}.", ""]
  out += [f"Stage seconds: {rows.get('_times', {})}", ""]
  with open(md_path, "w") as f:
    f.write("\n".join(out))


if __name__ == "__main__":
  write(sys.argv[1], sys.argv[2])
