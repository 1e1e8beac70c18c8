r"""One stage of experiments/likelihood_gpu.sh: train, PF-ODE bits/dim, post-hoc EMA reconstruction
with FD-FMNIST, or memorization; writes `<out>/stages/<name>.json` (metrics, settings, seconds).

  python3 experiments/likelihood/run.py --stage=train --name=edm --config=configs/edm/fashion_mnist.py:posthoc_ema \
      --workdir=W/edm --data=DATA --out=OUT --steps=1500 --snapshot_every=100
  python3 experiments/likelihood/run.py --stage=pfode_bpd --name=edm_bpd ... --num_examples=500
  python3 experiments/likelihood/run.py --stage=reconstruct --name=edm_posthoc ... \
      --classifier=DIR --sigma_rels=0.03,0.05,0.1 --fd_num_samples=2000
  python3 experiments/likelihood/run.py --stage=memorization --name=mem_60k ... --num_samples=1000

Each stage is the library call of a CLI mode (`--mode=train`, `--mode=eval`,
`--mode=reconstruct_ema`) on the config with the overrides printed in the stage file; the driver
exists only to set dict-valued config entries (e.g. one FD sampler) that the CLI cannot.
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run_report_lib

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import numpy as np
import run_report_lib

from diffjax import config_lib
from diffjax.data import fashion_mnist
from diffjax.data import idx
from diffjax.train import checkpoint
from diffjax.train import evaluate
from diffjax.train import loop
from diffjax.train import posthoc_snapshots

_STAGE = flags.DEFINE_enum(
    "stage", None, ["train", "pfode_bpd", "reconstruct", "memorization"], "What to run."
)
_NAME = flags.DEFINE_string("name", None, "Stage name (its result file).")
_CONFIG = flags.DEFINE_string("config", None, "Config `path.py[:arg]`.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.")
_DATA = flags.DEFINE_string("data", "", "Fashion-MNIST directory.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_CLASSIFIER = flags.DEFINE_string("classifier", "", "FD-FMNIST classifier directory.")
_STEPS = flags.DEFINE_integer("steps", 1000, "Training steps.")
_SNAPSHOT_EVERY = flags.DEFINE_integer("snapshot_every", 0, "Post-hoc EMA snapshot interval.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 500, "Test images for the PF-ODE bits/dim.")
_ODE_STEPS = flags.DEFINE_list(
    "ode_steps",
    ["16"],
    "RK4 steps of the PF-ODE likelihood; several: one evaluation each, the last"
    " is the reported one (the others show the discretisation error).",
)
_SIGMA_RELS = flags.DEFINE_list("sigma_rels", [], "Target σ_rel of the reconstruction.")
_FD_NUM = flags.DEFINE_integer("fd_num_samples", 2000, "Samples per FD-FMNIST value.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 1000, "Samples for the memorization metrics.")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 0, "Training examples compared (0: all).")
_SUBSET = flags.DEFINE_integer("subset", 0, "Train on the first n training images only (0: all).")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny CPU settings (the config's :smoke).")
_MEM_EVERY = flags.DEFINE_integer(
    "memorization_every",
    0,
    "--stage=train: memorization metrics (--num_samples samples against the --subset or --num_train"
    " training images) every this many steps, collected under metrics['along'] (0: off).",
)
_EMA_HALFLIFE = flags.DEFINE_integer(
    "ema_halflife_images",
    0,
    "Replace the config's EMA by EDM's ramped half-life of this many images (0: keep the config's;"
    " the twins' constant 0.9995 is still 78% the initial network after 500 steps).",
)


def _subset_dir(data: str, n: int) -> str:
  """`<out>/fmnist_first_<n>`: the first n training images (IDX files) and the whole test split."""
  out = os.path.join(_OUT.value, f"fmnist_first_{n}")
  if not os.path.isfile(os.path.join(out, "t10k-labels-idx1-ubyte.gz")):
    os.makedirs(out, exist_ok=True)
    for split, prefix, count in (("train", "train", n), ("test", "t10k", None)):
      images, labels = fashion_mnist.load(data or fashion_mnist.DEFAULT_PATH, split)
      idx.write_idx(os.path.join(out, f"{prefix}-images-idx3-ubyte.gz"), images[:count])
      idx.write_idx(
          os.path.join(out, f"{prefix}-labels-idx1-ubyte.gz"), labels[:count].astype(np.uint8)
      )
  return out


def _config():
  path, _, arg = _CONFIG.value.partition(":")
  arg = ",".join(a for a in (arg, "smoke" if _SMOKE.value else "") if a)
  overrides = {"train.sample_every_steps": 0, "train.eval_every_steps": 0}
  if _DATA.value:
    overrides["data.path"] = _DATA.value
  if _SUBSET.value:
    overrides["data.path"] = _subset_dir(_DATA.value, _SUBSET.value)
  if _EMA_HALFLIFE.value:
    for k, v in config_lib.ema_halflife(_EMA_HALFLIFE.value, 0.05).items():
      overrides[f"optim.ema.{k}"] = v
  config = config_lib.load(path, arg, overrides)
  config.eval.num_samples = 0  # sliced W2 off: each stage turns on only what it measures
  config.eval.fd_classifier_dir = ""
  config.eval.bpd_num_examples = 0
  return config, overrides


def main(argv):
  del argv
  config, overrides = _config()
  stage, t0 = _STAGE.value, time.time()
  workdir = _WORKDIR.value
  if stage == "train":
    overrides.update({"train.num_steps": _STEPS.value, "train.ckpt_every_steps": _STEPS.value})
    config.train.num_steps = config.train.ckpt_every_steps = _STEPS.value
    config.train.log_every_steps = min(100, _STEPS.value)
    if _SNAPSHOT_EVERY.value:
      config.optim.posthoc_ema.snapshot_every_steps = _SNAPSHOT_EVERY.value
      overrides["optim.posthoc_ema.snapshot_every_steps"] = _SNAPSHOT_EVERY.value
    if _MEM_EVERY.value:
      config.train.eval_every_steps = _MEM_EVERY.value
      config.eval.memorization.update(
          num_samples=_NUM_SAMPLES.value,
          num_train=_SUBSET.value or _NUM_TRAIN.value,
          loss_num_examples=min(500, _NUM_SAMPLES.value),
      )
    state = loop.train_and_evaluate(config, workdir)
    metrics = {"step": int(jax.device_get(state.step))}
    if _MEM_EVERY.value:  # the loop's evaluations along training (when memorization begins)
      metrics["along"] = run_report_lib.all_metrics(workdir)
  elif stage == "pfode_bpd":
    config.eval.pfode_bpd_num_examples = _NUM_EXAMPLES.value
    by_steps = {}
    for num in _ODE_STEPS.value:
      config.eval.pfode_kwargs.num_steps = int(num)
      by_steps[num] = evaluate.evaluate(config, workdir)
    metrics = dict(by_steps[_ODE_STEPS.value[-1]], by_steps=by_steps)
    metrics["pfode_kwargs"] = dict(config.eval.pfode_kwargs)
    metrics["num_examples"] = _NUM_EXAMPLES.value
  elif stage == "reconstruct":
    config.optim.posthoc_ema.reconstruct_sigma_rels = tuple(float(s) for s in _SIGMA_RELS.value)
    config.eval.fd_classifier_dir = _CLASSIFIER.value
    config.eval.fd_num_samples = _FD_NUM.value
    config.eval.fd_samplers = {"default": {}}  # EDM's Heun-35 (the config's sampler), once
    metrics = posthoc_snapshots.reconstruct(config, workdir)
    # The standard (half-life) EMA of the same run, for comparison.
    config.optim.posthoc_ema.reconstruct_sigma_rels = ()
    metrics["halflife_ema"] = evaluate.evaluate(config, workdir)
  else:
    config.eval.memorization.update(
        num_samples=_NUM_SAMPLES.value,
        num_train=_NUM_TRAIN.value,
        loss_num_examples=min(500, _NUM_SAMPLES.value),
    )
    metrics = dict(evaluate.evaluate(config, workdir), num_samples=_NUM_SAMPLES.value)
  result = dict(
      stage=stage,
      name=_NAME.value,
      config=_CONFIG.value,
      overrides=overrides,
      workdir=workdir,
      steps=checkpoint.saved_steps(workdir)[-1:],
      seconds=time.time() - t0,
      device=str(jax.devices()[0].device_kind),
      num_devices=jax.device_count(),
      argv=" ".join(sys.argv),
      settings=dict(fd_num_samples=_FD_NUM.value, sigma_rels=_SIGMA_RELS.value, steps=_STEPS.value),
      batch_size=int(config.data.batch_size),
      num_train=_SUBSET.value,
      metrics=metrics,
  )
  os.makedirs(os.path.join(_OUT.value, "stages"), exist_ok=True)
  with open(os.path.join(_OUT.value, "stages", f"{_NAME.value}.json"), "w") as f:
    json.dump(result, f, indent=2, default=float)
  print(f"stage {_NAME.value} done in {result['seconds']:.0f}s")


if __name__ == "__main__":
  flags.mark_flags_as_required(["stage", "name", "config", "workdir", "out"])
  app.run(main)
