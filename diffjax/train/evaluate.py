"""Evaluation of a TrainState's EMA parameters: sliced W2 (the Method's `evaluate`), FD-FMNIST and
test bits/dim; `--mode=eval`."""

from __future__ import annotations

import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from diffjax import methods
from diffjax.metrics import fd_fmnist
from diffjax.train import experiment
from diffjax.train import progress

Experiment = experiment.Experiment


def evaluate_state(exp: Experiment, state, workdir: str, step: int) -> dict:
  ecfg = exp.config.eval
  # Twice eval.num_samples held-out examples: the second half measures the metric's data-vs-data floor.
  reference = exp.reference_data(2 * ecfg.num_samples)
  rng = jax.random.PRNGKey(ecfg.seed)
  t0 = time.perf_counter()
  metrics, samples = exp.method.evaluate(state.ema_params, rng, reference)
  metrics = {k: float(v) for k, v in metrics.items()}
  out = os.path.join(workdir, "eval")
  is_main = jax.process_index() == 0
  if is_main:
    progress.save_samples(np.asarray(samples)[: ecfg.num_plot], os.path.join(out, f"samples_{step:08d}.png"),
                          reference=reference["x"] if reference["x"].ndim == 2 else None)
  if ecfg.get("fd_classifier_dir"):
    metrics.update(_fd_metrics(exp, state.ema_params, out if is_main else None, step))
  if ecfg.get("bpd_num_examples", 0) > 0:
    metrics.update(_bpd_metrics(exp, state.ema_params))
  if is_main:
    progress.write_json(os.path.join(out, f"metrics_{step:08d}.json"), metrics)
  logging.info("eval at step %d (%.1fs): %s", step, time.perf_counter() - t0,
               " | ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
  return metrics


def _fd_metrics(exp: Experiment, params, out: str | None, step: int) -> dict:
  """FD-FMNIST (metrics/fd_fmnist.py) of `eval.fd_num_samples` samples for each `eval.fd_samplers`
  entry (name -> sample overrides), with the sampling time; the first 100 samples of each as a PNG."""
  ecfg = exp.config.eval
  evaluator = fd_fmnist.Evaluator.load(ecfg.fd_classifier_dir)
  metrics = {}
  for name, overrides in dict(ecfg.fd_samplers).items():
    overrides = dict(overrides)
    rng = jax.random.PRNGKey(ecfg.seed + 1)  # the same initial noise for every sampler
    t0 = time.perf_counter()
    samples = methods.sample_in_batches(exp.method, params, rng, int(ecfg.fd_num_samples),
                                        int(exp.config.sample.batch_size), **overrides)
    metrics[f"sample_seconds_{name}"] = time.perf_counter() - t0
    metrics[f"fd_fmnist_{name}"] = evaluator.distance(samples)
    if out is not None:
      progress.save_samples(samples[:100], os.path.join(out, f"fd_samples_{step:08d}_{name}.png"))
  return metrics


def _bpd_metrics(exp: Experiment, params) -> dict:
  """Test-set bits/dim (`method.bpd`) of the first `eval.bpd_num_examples` test examples: the mean
  of each per-example output, and the standard error of the "bpd" mean."""
  ecfg = exp.config.eval
  if not hasattr(exp.method, "bpd"):
    raise ValueError(f"eval.bpd_num_examples={ecfg.bpd_num_examples}: method.kind="
                     f"{exp.config.method.kind!r} has no bits/dim estimator; set it to 0")
  x = exp.reference_data(int(ecfg.bpd_num_examples))["x"]
  bs = int(ecfg.get("bpd_batch_size", 500))
  bpd_fn = jax.jit(exp.method.bpd)
  rng = jax.random.PRNGKey(ecfg.seed + 2)
  parts = []
  for i in range(-(-len(x) // bs)):
    chunk = x[i * bs:(i + 1) * bs]
    padded = np.concatenate([chunk, chunk[:1].repeat(bs - len(chunk), 0)]) if len(chunk) < bs else chunk
    res = jax.device_get(bpd_fn(params, jax.random.fold_in(rng, i), padded))
    parts.append({k: np.asarray(v)[:len(chunk)] for k, v in res.items()})
  per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  metrics = {f"test_{k}": float(np.mean(v)) for k, v in per.items()}
  metrics["test_bpd_stderr"] = float(np.std(per["bpd"], ddof=1) / np.sqrt(len(per["bpd"])))
  return metrics


def evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  """Evaluates the EMA parameters of the latest checkpoint; writes `<workdir>/eval/`."""
  exp, state, step = experiment.restore_for_inference(config, workdir, devices)
  metrics = evaluate_state(exp, state, workdir, step)
  for k, v in metrics.items():
    print(f"{k}: {v:.6g}")
  print(f"wrote {os.path.join(workdir, 'eval')}/metrics_{step:08d}.json and samples_{step:08d}.png")
  return metrics
