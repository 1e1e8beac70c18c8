"""The training loop: mesh, data, state, step, restore, loop (STYLE.md §8).

The Experiment (mesh, data, Method, train step) is in experiment.py, evaluation in evaluate.py,
`--mode=sample` / `--mode=pairs` in inference.py.

One `jax.jit` train step over a mesh of all devices: the batch is split along `data`, parameters and
optimiser state are replicated. Batches are a pure function of (seed, step, process), and step `s`
draws its randomness from `fold_in(state.rng, s)`, so a run resumed from a checkpoint at step `s`
replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from diffjax.train import checkpoint
from diffjax.train import evaluate as evaluate_lib
from diffjax.train import experiment
from diffjax.train import posthoc_ema
from diffjax.train import posthoc_snapshots
from diffjax.train import progress
from diffjax.train import workdir as workdir_lib


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, devices=None):
  """Trains `config.train.num_steps` steps in `workdir`, resuming from its latest checkpoint.

  Before anything is built, the workdir is locked (one training at a time) and its `config.json`
  compared with `config`: a run of another config is refused (workdir.py), and so is a checkpoint
  whose shapes differ from this config's state (checkpoint.py); neither moves anything.

  Returns:
    The final TrainState (also saved in `<workdir>/checkpoints`).
  """
  is_main = jax.process_index() == 0
  with workdir_lib.lock(workdir, enabled=is_main):
    changes = workdir_lib.check_config(workdir, config, bool(checkpoint.saved_steps(workdir)))
    exp = experiment.Experiment(config, devices)
    with checkpoint.make_manager(workdir, config.train) as mngr:
      state = exp.restore_or_init(mngr, workdir)
      if is_main and not changes:  # an accepted run, whose config means what the stored one does
        workdir_lib.write_config(workdir, config, int(jax.device_get(state.step)), [])
      return _train(exp, state, mngr, workdir, changes)


def _train(
    exp: experiment.Experiment, state, mngr: ocp.CheckpointManager, workdir: str, changes: list[str]
):
  """The loop; `changes` (let through by train.allow_new_config) reach config.json with the first
  checkpoint of the new config: until then config.json describes the checkpoints there are."""
  tcfg = exp.config.train
  step = first_step = int(jax.device_get(state.step))
  chunk = _Chunks(exp, tcfg)
  saver = checkpoint.Saver(mngr, workdir, async_save=bool(tcfg.async_checkpoints))
  prog = progress.Progress(workdir, tcfg.num_steps, step, enabled=jax.process_index() == 0)
  logging.info(
      "training from step %d to %d on %d devices (mesh %s)",
      step,
      tcfg.num_steps,
      exp.mesh.size,
      dict(exp.mesh.shape),
  )
  pending = []
  profile = _Profile(tcfg, workdir, first_step)
  snapshots = _Snapshots(exp, workdir)
  try:
    with checkpoint.Preemption() as preempt:
      while step < tcfg.num_steps:
        profile.at(step, state)
        num = chunk.length(step)
        # After its first (tracing) call, a step moves nothing between host and device implicitly.
        batch = chunk.batch(step, num)  # explicit host->device copies, outside the guard
        with jax.transfer_guard("allow" if chunk.is_new(num) else "disallow"):
          state, metrics = chunk.run(state, batch, num)
        step += num
        if step == first_step + num:
          jax.block_until_ready(state)  # the progress line's clock starts after the compile
          prog.first_step_done(step)
        pending.append(metrics)
        stop = preempt.requested or mngr.reached_preemption(step)
        if stop or step == tcfg.num_steps or step % tcfg.ckpt_every_steps == 0:
          saver.save(step, state)  # refuses (raises) a state with NaN or Inf
          if changes and jax.process_index() == 0:
            workdir_lib.write_config(workdir, exp.config, first_step, changes)
          changes = []
        if tcfg.log_every_steps and (step % tcfg.log_every_steps == 0 or step == tcfg.num_steps):
          # Averaged on the host: per-step metrics are scalars ([k] from a scanned chunk).
          host = jax.device_get(pending)
          means = jax.tree.map(lambda *m: np.mean(np.concatenate([np.ravel(v) for v in m])), *host)
          pending = []
          if not np.isfinite(means["loss"]):
            raise FloatingPointError(f"loss is {means['loss']} at step {step}; see {workdir}/tb")
          prog.log(step, means)
        if snapshots.due(step):
          snapshots.save(step, state)
        if tcfg.sample_every_steps and step % tcfg.sample_every_steps == 0:
          _save_sample_picture(exp, state, step, workdir)  # every process samples (SPMD); 0 writes
        if tcfg.eval_every_steps and step % tcfg.eval_every_steps == 0:
          prog.scalars("eval", step, evaluate_lib.evaluate_state(exp, state, workdir, step))
        if stop:
          logging.warning("stopping at step %d after a preemption signal", step)
          break
    profile.at(step, state, final=True)
  finally:
    saver.finish()  # also after an error: the last save in flight completes, with its checksums
    prog.close()
  return state


class _Chunks:
  """Runs the steps of the loop: one `train_step` per call (`train.steps_per_jit` = 1), or up to k
  steps in one jitted scan, ending each chunk at the next step where the loop does something
  (checkpoint, log, sample, eval, profile, the end), so every hook sees the state it would see
  with k = 1. One compilation per distinct chunk length."""

  def __init__(self, exp: experiment.Experiment, tcfg):
    self.exp, self.k = exp, int(tcfg.get("steps_per_jit", 1))
    if self.k < 1:
      raise ValueError(f"train.steps_per_jit must be >= 1, got {self.k}")
    self.every = [
        int(tcfg.get(key, 0))
        for key in ("ckpt_every_steps", "log_every_steps", "sample_every_steps", "eval_every_steps")
    ]
    self.fixed = [int(tcfg.num_steps)]
    # Post-hoc EMA snapshots (posthoc_snapshots.py) are taken between chunks too.
    self.every.append(int(posthoc_ema.options(exp.config.optim)["snapshot_every_steps"]))
    if int(tcfg.get("profile_steps", 0)):
      start = int(tcfg.get("profile_from_step", 100))
      self.fixed += [start, start + int(tcfg.profile_steps)]
    self._fns = {}

  def length(self, step: int) -> int:
    """Steps in the chunk that starts at `step`."""
    if self.k == 1:
      return 1
    ends = [step + self.k] + [s for s in self.fixed if s > step]
    ends += [(step // n + 1) * n for n in self.every if n > 0]
    return min(ends) - step

  def _key(self, num: int):
    """The compiled function a chunk of `num` steps runs: the plain step (None) or a scan of num."""
    return None if self.k == 1 else num

  def is_new(self, num: int) -> bool:
    """Whether a chunk of `num` steps has not run yet (its first call traces and compiles)."""
    return self._key(num) not in self._fns

  def batch(self, step: int, num: int):
    """The global batch of step `step`, or of the `num` steps from `step` on, stacked."""
    return self.exp.global_batch(step) if self.k == 1 else self.exp.global_batches(step, num)

  def run(self, state, batch, num: int):
    key = self._key(num)
    if key not in self._fns:
      self._fns[key] = self.exp.jit_train_step() if key is None else self.exp.jit_train_steps(num)
    return self._fns[key](state, batch)


class _Snapshots:
  """Post-hoc EMA snapshots every `optim.posthoc_ema.snapshot_every_steps` and at the last step;
  a no-op without tracks."""

  def __init__(self, exp: experiment.Experiment, workdir: str):
    opts = posthoc_ema.options(exp.config.optim)
    self.every = int(opts["snapshot_every_steps"]) if exp.posthoc_gammas else 0
    self.last, self.workdir = int(exp.config.train.num_steps), workdir
    self.sigma_rels, self.gammas = tuple(opts["sigma_rels"]), exp.posthoc_gammas

  def due(self, step: int) -> bool:
    return bool(self.every) and (step % self.every == 0 or step == self.last)

  def save(self, step: int, state) -> None:
    posthoc_snapshots.save_snapshot(
        self.workdir, step, state.posthoc_ema, self.sigma_rels, self.gammas
    )


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
      logging.warning(
          "train.profile_from_step=%d lies before the resumed step %d: no profile",
          self.start,
          first_step,
      )
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


def _save_sample_picture(exp: experiment.Experiment, state, step: int, workdir: str) -> None:
  rng = jax.random.fold_in(jax.random.PRNGKey(exp.config.seed + 2), step)
  samples = jax.device_get(exp.method.sample(state.ema_params, rng, exp.config.sample.batch_size))
  if jax.process_index() == 0:
    progress.save_samples(
        samples,
        os.path.join(workdir, "samples", f"step_{step:08d}.png"),
        decode=exp.dataset.info.get("decode"),
    )
