r"""Discrete diffusion vs. the autoregressive baseline on character-level Shakespeare, equal budget.

  python experiments/discrete_shakespeare.py run --name=mdlm --out=OUT --texts=DIR [--steps=3000]
  python experiments/discrete_shakespeare.py report --out=OUT --texts=DIR

`run` trains one config of RUNS (the `default` size, train.num_steps=--steps) in OUT/<name>,
evaluates the test-split NELBO in bits per character (`bpd` evaluator; the AR model's is exact) and
draws --num_samples samples with 16/64/256/1024 steps (the AR model: one left-to-right pass), saved
as OUT/<name>/samples_<steps>.npz with OUT/<name>/result.json. `report` scores every sample set
with the AR model (its bits per character on the samples: a generative-perplexity proxy) and
their entropy (bits of each sample's character histogram, averaged; the test data's for reference),
then writes OUT/discrete_shakespeare.md. SMOKE=1: tiny networks and 2 steps (a CPU try-out).
"""

from __future__ import annotations

import glob
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from diffjax import config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from diffjax.data import text  # pylint: disable=g-import-not-at-top,wrong-import-position
from diffjax.train import evaluate  # pylint: disable=g-import-not-at-top,wrong-import-position
from diffjax.train import experiment  # pylint: disable=g-import-not-at-top,wrong-import-position
from diffjax.train import loop  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name -> (config file, config arg, label)
RUNS = {
    "ar": ("autoregressive", "", "autoregressive (exact NLL)"),
    "mdlm": ("mdlm", "", "MDLM (absorbing, cached ancestral)"),
    "sedd_absorbing": ("sedd", "graph=absorbing", "SEDD absorbing (Euler)"),
    "sedd_uniform": ("sedd", "graph=uniform", "SEDD uniform (Euler)"),
    "d3pm_absorbing": ("d3pm", "graph=absorbing", "D3PM absorbing (T=1000, hybrid)"),
    "d3pm_uniform": ("d3pm", "graph=uniform", "D3PM uniform (T=1000, hybrid)"),
    "dfm_mask": ("dfm", "source=mask", "DFM mask source (Euler jump)"),
    "dfm_uniform": ("dfm", "source=uniform", "DFM uniform source (Euler jump)"),
}
STEPS = (16, 64, 256, 1024)


def _flags(argv):
  opts = {"steps": "3000", "num_samples": "256", "out": "", "texts": "", "name": ""}
  for a in argv:
    key, _, value = a.lstrip("-").partition("=")
    if key not in opts:
      raise ValueError(f"unknown flag --{key}; known: {sorted(opts)}")
    opts[key] = value
  return opts


def _smoke() -> bool:
  return os.environ.get("SMOKE", "0") == "1"


def config_for(name: str, texts: str, steps: int):
  paper, arg, _ = RUNS[name]
  arg = ",".join(filter(None, [arg, "smoke" if _smoke() else ""]))
  overrides = {"data.path": texts, "train.num_steps": 2 if _smoke() else steps}
  if not _smoke():
    overrides["train.steps_per_jit"] = 10
  config = config_lib.load(os.path.join(REPO, "configs", paper, "shakespeare.py"), arg, overrides)
  return config, f"--config=configs/{paper}/shakespeare.py{':' + arg if arg else ''}"


def run(opts):
  name, out = opts["name"], opts["out"]
  config, cfg_arg = config_for(name, opts["texts"], int(opts["steps"]))
  workdir = os.path.join(out, name)
  t0 = time.perf_counter()
  state = loop.train_and_evaluate(config, workdir)
  train_s = time.perf_counter() - t0
  exp = experiment.Experiment(config)
  step = int(jax.device_get(state.step))
  metrics = evaluate.evaluate_state(exp, state, workdir, step)
  result = dict(
      name=name,
      label=RUNS[name][2],
      command=f"python -m diffjax.main {cfg_arg} --workdir=<out>/{name} "
      f"--config.data.path=<texts> --config.train.num_steps={config.train.num_steps}",
      train_seconds=train_s,
      steps=step,
      test_bpc=metrics["test_bpd"],
      test_bpc_stderr=metrics["test_bpd_stderr"],
      device=str(jax.devices()[0].device_kind),
      samples={},
  )
  num = int(opts["num_samples"]) if not _smoke() else 8
  counts = (None,) if name == "ar" else ((2, 4) if _smoke() else STEPS)
  for n in counts:
    t1 = time.perf_counter()
    over = {} if n is None else {"num_steps": n}
    samples = np.asarray(
        jax.device_get(exp.method.sample(state.ema_params, jax.random.PRNGKey(7), num, **over))
    )
    key = "ar" if n is None else str(n)
    result["samples"][key] = dict(seconds=time.perf_counter() - t1)
    np.savez(os.path.join(workdir, f"samples_{key}.npz"), samples=samples)
  with open(os.path.join(workdir, "result.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result))


def entropy_bits(samples: np.ndarray) -> float:
  """Mean over samples of the entropy (bits) of each sample's character histogram."""
  out = []
  for row in samples:
    p = np.bincount(row, minlength=text.VOCAB_SIZE) / len(row)
    p = p[p > 0]
    out.append(-np.sum(p * np.log2(p)))
  return float(np.mean(out))


def report(opts):
  out = opts["out"]
  results = {}
  for path in sorted(glob.glob(os.path.join(out, "*", "result.json"))):
    with open(path) as f:
      r = json.load(f)
    results[r["name"]] = r
  lines = ["# Discrete diffusion on character-level Shakespeare, equal budget", ""]
  commit = os.environ.get("DIFFJAX_COMMIT", "") or "unknown"
  device = next((r["device"] for r in results.values()), "unknown")
  lines += [
      f"Commit `{commit}`, device {device} (the runs train concurrently on it), "
      f"{'SMOKE (CPU try-out, meaningless numbers)' if _smoke() else 'one GPU'}.",
      f"Script: `experiments/discrete_gpu.sh <fmnist> <classifier> <out>` (texts from "
      f"$SHAKESPEARE_DIR), each run `python experiments/discrete_shakespeare.py run --name=NAME`.",
      "Data: `shakespeare` package, 42 texts concatenated; train = first 90 %, validation = the "
      "last 10 % (the `test` split), 128-character windows. Every model: the same token "
      "Transformer (configs' `default` size: hidden 256, 4 blocks, 4 heads, adaLN, bf16), batch "
      f"128, Adam 1e-3, {next((r['steps'] for r in results.values()), '?')} steps, EMA 0.998; "
      "validation bpc on 2048 windows (one t per window for the diffusion bounds).",
      "",
  ]
  ar = None
  if "ar" in results:
    config, _ = config_for("ar", opts["texts"], int(opts["steps"]))
    ar_exp, ar_state, _ = experiment.restore_for_inference(config, os.path.join(out, "ar"))
    ar_bpd = jax.jit(ar_exp.method.bpd)

    def ar(samples):
      return float(np.mean(jax.device_get(ar_bpd(ar_state.ema_params, None, samples))["bpd"]))

  ref = experiment.Experiment(config_for("mdlm", opts["texts"], 1)[0]).reference_data(256)["x"]
  lines += [
      "## Validation bits per character (NELBO bound; AR: exact)",
      "",
      "| model | val bpc (± s.e.) | train s |",
      "|---|---|---|",
  ]
  for name in RUNS:
    if name in results:
      r = results[name]
      lines.append(
          f"| {r['label']} | {r['test_bpc']:.3f} ± {r['test_bpc_stderr']:.3f} | "
          f"{r['train_seconds']:.0f} |"
      )
    else:
      lines.append(f"| {RUNS[name][2]} | (run failed or timed out) | |")
  ref_ar = f"{ar(ref):.3f}" if ar else "n/a"
  lines += [
      "",
      "## Samples: entropy and generative-perplexity proxy",
      "",
      f"Entropy: bits of each sample's character histogram, averaged (validation data: "
      f"{entropy_bits(ref):.3f}). AR bpc: the AR model's bits per character on the samples "
      f"(validation data: {ref_ar}; lower = more AR-plausible, too low with low entropy = "
      "repetitive). 256 samples per row.",
      "",
      "| model | steps | entropy | AR bpc | sampling s |",
      "|---|---|---|---|---|",
  ]
  excerpts = []
  for name in RUNS:
    if name not in results:
      continue
    for key, info in results[name]["samples"].items():
      samples = np.load(os.path.join(out, name, f"samples_{key}.npz"))["samples"]
      score = f"{ar(samples):.3f}" if ar else "n/a"
      lines.append(
          f"| {results[name]['label']} | {key} | {entropy_bits(samples):.3f} | {score} | "
          f"{info['seconds']:.1f} |"
      )
      excerpts.append((results[name]["label"], key, text.decode(samples[0])))
  lines += ["", "## One sample each", ""]
  for label, key, sample in excerpts:
    lines += [f"**{label}, {key} steps**", "", "```", sample, "```", ""]
  lines += ["## Commands", ""] + [f"    {r['command']}" for r in results.values()]
  path = os.path.join(out, "discrete_shakespeare.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {path}")


if __name__ == "__main__":
  mode, options = sys.argv[1], _flags(sys.argv[2:])
  {"run": run, "report": report}[mode](options)
