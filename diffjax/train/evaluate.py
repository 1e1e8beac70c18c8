"""Evaluators of a model's EMA parameters, picked by `config.eval`, and `--mode=eval`.

`EVALUATORS` is a registry (big_vision's `config.evals` in spirit): name -> (enabled, run). Each
evaluator reads only its own keys of `config.eval`, is enabled by them, and returns a dict of
float metrics; Methods and the training loop import no metric. A new evaluator is one function
and one registry entry.

  sliced_w2  eval.num_samples > 0: sliced Wasserstein-2 of that many samples against as many
             held-out examples, and the data-vs-data floor (eval.num_projections, eval.seed);
             the first eval.num_plot samples as `samples_<step>.png`.
  fd_fmnist  eval.fd_classifier_dir set: FD-FMNIST (metrics/fd_fmnist.py) of eval.fd_num_samples
             samples for each eval.fd_samplers entry (name -> sample overrides).
  bpd        eval.bpd_num_examples > 0: test bits/dim (`method.bpd`, only where `has_bpd`).
  pfode_bpd  eval.pfode_bpd_num_examples > 0: test bits/dim by the PF-ODE (eval_likelihood.py).
  memorization  eval.memorization.num_samples > 0: copies and train/held-out loss
             (eval_memorization.py).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from diffjax.methods import sampling
from diffjax.metrics import fd_fmnist
from diffjax.metrics import wasserstein
from diffjax.train import eval_likelihood
from diffjax.train import eval_memorization
from diffjax.train import experiment
from diffjax.train import progress


@dataclasses.dataclass(frozen=True)
class Context:
  """What an evaluator sees: the Experiment, the parameters, the step, and the output directory
  (None on processes other than 0, which compute but write nothing)."""

  exp: experiment.Experiment
  params: Any
  step: int
  out: str | None


def sliced_w2(ctx: Context) -> dict:
  """Sliced W2 of samples to held-out data, with the data-vs-data value as the floor.

  Draws 2N held-out examples (N = eval.num_samples): samples are compared with the first N; the
  second N against the first N gives the value a perfect model reaches with this many samples.
  """
  exp, ecfg = ctx.exp, ctx.exp.config.eval
  n = int(ecfg.num_samples)
  ref = np.asarray(exp.reference_data(2 * n)["x"], np.float32)
  rng_sample, rng_proj = jax.random.split(jax.random.PRNGKey(ecfg.seed))
  samples = sampling.sample_in_batches(
      exp.method, ctx.params, rng_sample, n, int(exp.config.sample.batch_size), desc="eval samples"
  )
  flat = lambda a: a.reshape(n, -1)  # pylint: disable=unnecessary-lambda-assignment
  num_proj = int(ecfg.get("num_projections", 512))
  sw = wasserstein.sliced_wasserstein(flat(samples), flat(ref[:n]), rng_proj, num_proj)
  floor = wasserstein.sliced_wasserstein(flat(ref[n : 2 * n]), flat(ref[:n]), rng_proj, num_proj)
  if ctx.out is not None:
    progress.save_samples(
        samples[: int(ecfg.num_plot)],
        os.path.join(ctx.out, f"samples_{ctx.step:08d}.png"),
        reference=ref if ref.ndim == 2 else None,
    )
  return {"sliced_w2": float(sw), "sliced_w2_data_floor": float(floor)}


def fd_metrics(ctx: Context) -> dict:
  """FD-FMNIST of `eval.fd_num_samples` samples for each `eval.fd_samplers` entry (name -> sample
  overrides), with the sampling time; the first 100 samples of each as a PNG."""
  exp, ecfg = ctx.exp, ctx.exp.config.eval
  evaluator = fd_fmnist.Evaluator.load(ecfg.fd_classifier_dir)
  metrics = {}
  for name, overrides in dict(ecfg.fd_samplers).items():
    rng = jax.random.PRNGKey(ecfg.seed + 1)  # the same initial noise for every sampler
    t0 = time.perf_counter()
    samples = sampling.sample_in_batches(
        exp.method,
        ctx.params,
        rng,
        int(ecfg.fd_num_samples),
        int(exp.config.sample.batch_size),
        desc=f"FD {name}",
        **dict(overrides),
    )
    metrics[f"sample_seconds_{name}"] = time.perf_counter() - t0
    metrics[f"fd_fmnist_{name}"] = evaluator.distance(samples)
    if ctx.out is not None:
      progress.save_samples(
          samples[:100], os.path.join(ctx.out, f"fd_samples_{ctx.step:08d}_{name}.png")
      )
  return metrics


def bpd_metrics(ctx: Context) -> dict:
  """Test-set bits/dim (`method.bpd`) of the first `eval.bpd_num_examples` test examples: the mean
  of each per-example output, and the standard error of the "bpd" mean."""
  exp, ecfg = ctx.exp, ctx.exp.config.eval
  if not exp.method.has_bpd:
    raise ValueError(
        f"eval.bpd_num_examples={ecfg.bpd_num_examples}: method.kind="
        f"{exp.config.method.kind!r} has no bits/dim estimator; set it to 0"
    )
  x = exp.reference_data(int(ecfg.bpd_num_examples))["x"]
  bs = int(ecfg.get("bpd_batch_size", 500))
  bpd_fn = jax.jit(exp.method.bpd)
  rng = jax.random.PRNGKey(ecfg.seed + 2)
  parts = []
  for i in range(-(-len(x) // bs)):
    chunk = x[i * bs : (i + 1) * bs]
    if len(chunk) < bs:  # one batch shape, one compilation
      chunk = np.concatenate([chunk, chunk[:1].repeat(bs - len(chunk), 0)])
    res = jax.device_get(bpd_fn(ctx.params, jax.random.fold_in(rng, i), chunk))
    parts.append({k: np.asarray(v)[: min(bs, len(x) - i * bs)] for k, v in res.items()})
  per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  metrics = {f"test_{k}": float(np.mean(v)) for k, v in per.items()}
  metrics["test_bpd_stderr"] = float(np.std(per["bpd"], ddof=1) / np.sqrt(len(per["bpd"])))
  return metrics


EVALUATORS: dict[
    str, tuple[Callable[[ml_collections.ConfigDict], bool], Callable[[Context], dict]]
] = {
    "sliced_w2": (lambda e: int(e.get("num_samples", 0)) > 0, sliced_w2),
    "fd_fmnist": (lambda e: bool(e.get("fd_classifier_dir", "")), fd_metrics),
    "bpd": (lambda e: int(e.get("bpd_num_examples", 0)) > 0, bpd_metrics),
    "pfode_bpd": (lambda e: int(e.get("pfode_bpd_num_examples", 0)) > 0, eval_likelihood.pfode_bpd),
    "memorization": (eval_memorization.enabled, eval_memorization.memorization_metrics),
}


def evaluate_state(exp: experiment.Experiment, state, workdir: str, step: int) -> dict:
  """Runs every enabled evaluator on `state.ema_params`; writes `<workdir>/eval/metrics_<step>.json`
  (process 0) and returns the metrics (floats)."""
  ecfg = exp.config.eval
  out = os.path.join(workdir, "eval") if jax.process_index() == 0 else None
  ctx = Context(exp=exp, params=state.ema_params, step=step, out=out)
  t0, metrics = time.perf_counter(), {}
  for name, (enabled, run) in EVALUATORS.items():
    if enabled(ecfg):
      metrics.update({k: float(v) for k, v in run(ctx).items()})
      logging.info(
          "evaluator %s done (%.1fs since the start of the evaluation)",
          name,
          time.perf_counter() - t0,
      )
  if out is not None:
    progress.write_json(os.path.join(out, f"metrics_{step:08d}.json"), metrics)
  logging.info(
      "eval at step %d (%.1fs): %s",
      step,
      time.perf_counter() - t0,
      " | ".join(f"{k} {v:.4g}" for k, v in metrics.items()),
  )
  return metrics


def evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  """`--mode=eval`: evaluates the EMA parameters of the latest checkpoint; writes
  `<workdir>/eval/` and the metrics as TensorBoard scalars (`eval/<name>` at the step)."""
  exp, state, step = experiment.restore_for_inference(config, workdir, devices)
  metrics = evaluate_state(exp, state, workdir, step)
  board = progress.Progress(workdir, step, step, enabled=jax.process_index() == 0)
  board.scalars("eval", step, metrics)
  board.close()
  for k, v in metrics.items():
    print(f"{k}: {v:.6g}")
  print(f"wrote {os.path.join(workdir, 'eval')}/metrics_{step:08d}.json")
  return metrics
