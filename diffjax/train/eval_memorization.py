"""The `memorization` evaluator (metrics/memorization.py), enabled by `eval.memorization.num_samples`.

`eval.memorization` keys (defaults: `config_lib.memorization_defaults`):
  num_samples        samples drawn with the config's sampler and compared with the training set;
  num_train          training examples they are compared with (0: the whole training split);
  threshold          nearest-neighbour ratio below which a sample counts as a copy (1/3);
  loss_num_examples  n training and n held-out examples for the denoising loss per σ;
  loss_sigmas        the σ of that loss (σ-frame);
  num_plot           samples shown next to their nearest training image in `memorization_<step>.png`.
Metrics: `copy_fraction`, `nn_ratio_median`, `nn_dist_mean` of the samples and the same for as many
held-out images (`heldout_*`: what a model that copies nothing gives), and `loss_train_s<σ>`,
`loss_heldout_s<σ>`, `loss_gap_s<σ>` (held-out minus train).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from diffjax import config_lib
from diffjax.methods import sampling
from diffjax.metrics import memorization
from diffjax.train import progress

DEFAULTS = config_lib.memorization_defaults()  # off: num_samples 0


def options(ecfg) -> dict:
  cfg = dict(ecfg.get("memorization", None) or {})
  unknown = sorted(set(cfg) - set(DEFAULTS))
  if unknown:
    raise ValueError(
        f"eval.memorization: unknown keys {unknown}; expected some of {sorted(DEFAULTS)}"
    )
  return {**DEFAULTS, **cfg}


def enabled(ecfg) -> bool:
  return int(options(ecfg)["num_samples"]) > 0


def _stats(prefix: str, ratio, dist, threshold) -> dict:
  return {
      f"{prefix}copy_fraction": memorization.copy_fraction(ratio, threshold),
      f"{prefix}nn_ratio_median": float(np.median(ratio)),
      f"{prefix}nn_dist_mean": float(np.mean(dist)),
  }


def memorization_metrics(ctx) -> dict:
  exp, ecfg = ctx.exp, ctx.exp.config.eval
  opts = options(ecfg)
  n = int(opts["num_samples"])
  num_train = int(opts["num_train"]) or int(exp.dataset.num_examples or 0)
  if num_train < 2:
    raise ValueError(
        "eval.memorization.num_train must be >= 2 (0 means the whole training split, which "
        "this data source does not have: it is infinite)"
    )
  train = exp.reference_data(num_train, split="train")["x"]  # one epoch: every example once
  heldout = exp.reference_data(n)["x"]
  rng = jax.random.PRNGKey(ecfg.seed + 4)
  samples = sampling.sample_in_batches(
      exp.method, ctx.params, rng, n, int(exp.config.sample.batch_size), desc="memorization"
  )
  thr = float(opts["threshold"])
  ratio, dist = memorization.nn_ratio(samples, train)
  metrics = _stats("", ratio, dist, thr)
  metrics.update(_stats("heldout_", *memorization.nn_ratio(heldout, train), thr))
  m = int(opts["loss_num_examples"])
  if m > 0:
    sigmas = tuple(float(s) for s in opts["loss_sigmas"])
    loss = jax.jit(
        lambda p, x: memorization.denoising_loss_per_sigma(
            exp.method.denoiser(p), x, jax.random.fold_in(rng, 1), sigmas
        )
    )
    lt = np.asarray(loss(ctx.params, train[:m]))
    lh = np.asarray(loss(ctx.params, exp.reference_data(m)["x"]))
    for s, a, b in zip(sigmas, lt, lh):
      metrics.update(
          {f"loss_train_s{s:g}": a, f"loss_heldout_s{s:g}": b, f"loss_gap_s{s:g}": b - a}
      )
  k = min(int(opts["num_plot"]), n)
  if ctx.out is not None and k and samples.ndim == 4:
    _, _, idx = memorization.nearest_two(samples[:k], train)
    pairs = np.concatenate([samples[:k], train[idx]])  # top rows samples, bottom their NN₁
    progress.save_samples(pairs, os.path.join(ctx.out, f"memorization_{ctx.step:08d}.png"))
  return {k_: float(v) for k_, v in metrics.items()}
