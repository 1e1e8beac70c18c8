"""The training loop: mesh, data, state, step, restore, loop (STYLE.md §8). Also `evaluate` and `sample`.

One `jax.jit` train step over a mesh of all devices: the batch is split along `data`, parameters and
optimiser state are replicated. Batches are a pure function of (seed, step, process), and step `s`
draws its randomness from `fold_in(state.rng, s)`, so a run resumed from a checkpoint at step `s`
replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging

from diffjax import data
from diffjax import methods
from diffjax.metrics import fd_fmnist
from diffjax.train import checkpoint
from diffjax.train import progress
from diffjax.train import sharding
from diffjax.train import state as state_lib


class Experiment:
  """What train, eval and sample share: mesh, data source, method, optimiser, state shardings."""

  def __init__(self, config: ml_collections.ConfigDict, devices=None):
    self.config = config
    self.mesh = sharding.make_mesh(config.mesh.shape, config.mesh.axes, devices)
    sharding.check_batch_divides(config.data.batch_size, self.mesh)
    self.dataset = data.make(
        config.data,
        seed=config.seed,
        split="train",
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    self.method = methods.make(config, self.dataset)
    # Stateful Methods: `init_state()` returns a non-empty pytree, `loss_with_state` advances it.
    self.stateful = bool(getattr(self.method, "init_state", lambda: None)())
    self.tx = state_lib.make_optimizer(config.optim)
    self.example_batch = self.dataset.batch(0)
    self.state_sharding = jax.tree.map(
        lambda _: sharding.replicated(self.mesh), jax.eval_shape(self.init_state)
    )

  def init_state(self) -> state_lib.TrainState:
    rng_init, rng_train = jax.random.split(jax.random.PRNGKey(self.config.seed))
    params = self.method.init(rng_init, self.example_batch)
    method_state = self.method.init_state() if self.stateful else None
    return state_lib.init_state(params, self.tx, rng_train, method_state)

  def train_step(self, state: state_lib.TrainState, batch: dict):
    rng = jax.random.fold_in(state.rng, state.step)
    if self.stateful:  # the Method's own state (not trained) advances with every step
      grad_fn = jax.value_and_grad(self.method.loss_with_state, has_aux=True)
      (loss, (metrics, method_state)), grads = grad_fn(state.params, state.method_state, batch, rng)
    else:
      grad_fn = jax.value_and_grad(self.method.loss, has_aux=True)
      (loss, metrics), grads = grad_fn(state.params, batch, rng)
      method_state = state.method_state
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    decay = state_lib.ema_decay(self.config.optim.ema, state.step, self.config.data.batch_size)
    metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        ema_params=state_lib.ema_update(state.ema_params, params, decay),
        method_state=method_state,
    )
    return new_state, metrics

  def jit_train_step(self):
    return jax.jit(
        self.train_step,
        in_shardings=(self.state_sharding, sharding.batch_sharding(self.mesh)),
        out_shardings=(self.state_sharding, sharding.replicated(self.mesh)),
        donate_argnums=0,
    )

  def global_batch(self, step: int) -> dict:
    return sharding.to_global(self.dataset.batch(step), self.mesh)

  def restore_or_init(self, mngr: ocp.CheckpointManager, workdir: str) -> state_lib.TrainState:
    """Resume order: (1) a checkpoint in the workdir, (2) `config.init_from`, (3) fresh init."""
    abstract = checkpoint.abstract_like(self.init_state, self.state_sharding)
    step, state = checkpoint.restore_latest(mngr, workdir, abstract)
    if state is not None:
      logging.info("resumed from %s at step %d", workdir, step)
      return state
    state = jax.jit(self.init_state, out_shardings=self.state_sharding)()
    if self.config.init_from:
      # Another run's directory: read it, never move anything in it.
      step, loaded = checkpoint.restore_dir(self.config.init_from, abstract, move_unreadable=False)
      if loaded is None:
        raise ValueError(f"init_from={self.config.init_from!r}: no restorable checkpoint there")
      logging.info("initialised parameters from %s (step %d)", self.config.init_from, step)
      state = state.replace(params=loaded.params, ema_params=loaded.ema_params)
    return state

  def reference_data(self, num: int, split: str | None = None) -> dict:
    """`num` held-out examples (a fresh draw for infinite sources) as host NumPy arrays, from
    `split` or `eval.split` (default "test"; ImageNet's labelled held-out split is "validation")."""
    split = split or self.config.eval.get("split", "test")
    ds = data.make(self.config.data, seed=self.config.seed + 1, split=split)
    batches, n, i = [], 0, 0
    while n < num:
      batches.append(ds.batch(i))
      n, i = n + len(batches[-1]["x"]), i + 1
    return {k: np.concatenate([b[k] for b in batches])[:num] for k in batches[0]}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None):
  """Trains `config.train.num_steps` steps in `workdir`, resuming from its latest checkpoint.

  Returns:
    The final TrainState (also saved in `<workdir>/checkpoints`).
  """
  exp = Experiment(config, devices)
  tcfg = config.train
  is_main = jax.process_index() == 0
  if is_main:
    progress.write_json(os.path.join(workdir, "config.json"), config.to_dict())
  mngr = checkpoint.make_manager(workdir, tcfg)
  state = exp.restore_or_init(mngr, workdir)
  step = first_step = int(jax.device_get(state.step))
  step_fn = exp.jit_train_step()
  prog = progress.Progress(workdir, tcfg.num_steps, step, enabled=is_main)
  logging.info("training from step %d to %d on %d devices (mesh %s)", step, tcfg.num_steps,
               exp.mesh.size, dict(exp.mesh.shape))
  pending = []
  profile = _Profile(tcfg, workdir, first_step)
  with checkpoint.Preemption() as preempt:
    while step < tcfg.num_steps:
      profile.at(step, state)
      batch = exp.global_batch(step)
      # After the first (tracing) call, a step moves nothing between host and device implicitly.
      with jax.transfer_guard("disallow" if step > first_step else "allow"):
        state, metrics = step_fn(state, batch)
      step += 1
      pending.append(metrics)
      stop = preempt.requested or mngr.reached_preemption(step)
      if stop or step == tcfg.num_steps or step % tcfg.ckpt_every_steps == 0:
        mngr.save(step, args=ocp.args.StandardSave(state), force=True)
      if tcfg.log_every_steps and (step % tcfg.log_every_steps == 0 or step == tcfg.num_steps):
        means = jax.device_get(jax.tree.map(lambda *m: jnp.mean(jnp.stack(m)), *pending))
        pending = []
        if not np.isfinite(means["loss"]):
          raise FloatingPointError(f"loss is {means['loss']} at step {step}; see {workdir}/tb")
        prog.log(step, means)
      if tcfg.sample_every_steps and step % tcfg.sample_every_steps == 0:
        _save_sample_picture(exp, state, step, workdir)  # every process samples (SPMD); 0 writes
      if tcfg.eval_every_steps and step % tcfg.eval_every_steps == 0:
        prog.scalars("eval", step, _evaluate_state(exp, state, workdir, step))
      if stop:
        logging.warning("stopping at step %d after a preemption signal", step)
        break
  profile.at(step, state, final=True)
  mngr.wait_until_finished()
  mngr.close()
  prog.close()
  return state


class _Profile:
  """`train.profile_steps` steps of the loop as it runs (batches, dispatch, checkpoints and all),
  traced with `jax.profiler` into `<workdir>/profile`; a no-op when profile_steps is 0."""

  def __init__(self, tcfg, workdir: str, first_step: int):
    self.num = int(tcfg.get("profile_steps", 0))
    self.start = int(tcfg.get("profile_from_step", 100))
    self.dir = os.path.join(workdir, "profile")
    self.active = False
    if self.num < 0:
      raise ValueError(f"train.profile_steps must be >= 0, got {self.num}")
    if self.num and first_step > self.start:
      logging.warning("train.profile_from_step=%d lies before the resumed step %d: no profile",
                      self.start, first_step)
      self.num = 0

  def at(self, step: int, state, final: bool = False) -> None:
    """Called before each step and once after the last: starts / stops the trace."""
    if not self.num:
      return
    if not self.active and step == self.start and not final:
      jax.block_until_ready(state)  # the trace holds only its own steps
      jax.profiler.start_trace(self.dir)
      self.active = True
    elif self.active and (step == self.start + self.num or final):
      jax.block_until_ready(state)
      jax.profiler.stop_trace()
      self.active, self.num = False, 0
      logging.info("profile of steps %d-%d written to %s", self.start, step - 1, self.dir)


def _save_sample_picture(exp: Experiment, state, step: int, workdir: str) -> None:
  rng = jax.random.fold_in(jax.random.PRNGKey(exp.config.seed + 2), step)
  samples = jax.device_get(exp.method.sample(state.ema_params, rng, exp.config.sample.batch_size))
  if jax.process_index() == 0:
    progress.save_samples(samples, os.path.join(workdir, "samples", f"step_{step:08d}.png"))


def _evaluate_state(exp: Experiment, state, workdir: str, step: int) -> dict:
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


def _restore_for_inference(config, workdir: str, devices=None):
  exp = Experiment(config, devices)
  abstract = checkpoint.abstract_like(exp.init_state, exp.state_sharding)
  step, state = checkpoint.restore_dir(workdir, abstract)
  if state is None:
    raise FileNotFoundError(f"--workdir={workdir}: no checkpoint to evaluate; train first (--mode=train)")
  return exp, state, step


def evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None) -> dict:
  """Evaluates the EMA parameters of the latest checkpoint; writes `<workdir>/eval/`."""
  exp, state, step = _restore_for_inference(config, workdir, devices)
  metrics = _evaluate_state(exp, state, workdir, step)
  for k, v in metrics.items():
    print(f"{k}: {v:.6g}")
  print(f"wrote {os.path.join(workdir, 'eval')}/metrics_{step:08d}.json and samples_{step:08d}.png")
  return metrics


def sample(config: ml_collections.ConfigDict, workdir: str, devices=None) -> np.ndarray:
  """Draws `config.sample.num_samples` samples from the latest checkpoint's EMA parameters.

  Writes `<workdir>/samples/final_<step>.npz` and a PNG beside it.
  """
  exp, state, step = _restore_for_inference(config, workdir, devices)
  scfg = config.sample
  samples = methods.sample_in_batches(exp.method, state.ema_params, jax.random.PRNGKey(scfg.seed),
                                      scfg.num_samples, scfg.batch_size)
  if jax.process_index() == 0:
    path = os.path.join(workdir, "samples", f"final_{step:08d}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path + ".npz", samples=samples)
    progress.save_samples(samples[:256], path + ".png")
    print(f"wrote {path}.npz ({samples.shape}) and {path}.png")
  return samples


def pairs(config: ml_collections.ConfigDict, workdir: str, devices=None) -> str:
  """Reflow pairs (Liu et al. 2023, §2.3): `config.sample.num_samples` couples (ε, x) where x is the
  config's sampler run from the initial noise ε, with the latest checkpoint's EMA parameters.

  Writes `<workdir>/reflow/pairs_<step>.npz` with arrays eps and x, [N, ...] each (the `pairs` data
  source reads it), and returns its path. Batch i draws ε from fold_in(fold_in(seed, i), 1).
  """
  exp, state, step = _restore_for_inference(config, workdir, devices)
  scfg = config.sample
  shape = tuple(exp.dataset.element_shape)
  rng = jax.random.PRNGKey(scfg.seed)
  eps, xs = [], []
  for i in range(-(-int(scfg.num_samples) // int(scfg.batch_size))):
    key = jax.random.fold_in(rng, i)
    noise = jax.random.normal(jax.random.fold_in(key, 1), (int(scfg.batch_size),) + shape)
    xs.append(np.asarray(jax.device_get(exp.method.sample(state.ema_params, key, int(scfg.batch_size),
                                                          noise=noise))))
    eps.append(np.asarray(jax.device_get(noise)))
  n = int(scfg.num_samples)
  path = os.path.join(workdir, "reflow", f"pairs_{step:08d}.npz")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, eps=np.concatenate(eps)[:n], x=np.concatenate(xs)[:n])
    print(f"wrote {path} ({n} pairs)")
  return path


MODES = {"train": train_and_evaluate, "eval": evaluate, "sample": sample, "pairs": pairs}
