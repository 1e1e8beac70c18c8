"""The Experiment: what train, eval and sample share (mesh, data, Method, optimiser, shardings)."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging

from diffjax import data
from diffjax import methods
from diffjax.train import checkpoint
from diffjax.train import posthoc_ema
from diffjax.train import sharding
from diffjax.train import state as state_lib
from diffjax.train import workdir as workdir_lib


class Experiment:
  """What train, eval and sample share: mesh, data source, method, optimiser, state shardings."""

  def __init__(self, config: ml_collections.ConfigDict, devices=None, *, dataset=None):
    """Builds the mesh, data source, Method and optimiser of `config`.

    Args:
      config: the experiment's config.
      devices: the mesh's devices (default: all).
      dataset: a training data source to use instead of `data.make(config.data, ...)` (benchmarks
        on synthetic data): any object with `element_shape`, `num_classes` and `batch(step)`
        returning this process's rows of the global batch as host NumPy arrays,
        `{"x": [B_local, ...], "label": int32 [B_local] (optional)}`. `reference_data` still
        reads `config.data`.
    """
    self.config = config
    self.mesh = sharding.make_mesh(config.mesh.shape, config.mesh.axes, devices)
    sharding.check_batch_divides(config.data.batch_size, self.mesh)
    if dataset is None:
      dataset = data.make(
          config.data,
          seed=config.seed,
          split="train",
          process_index=jax.process_index(),
          process_count=jax.process_count(),
      )
    self.dataset = dataset
    self.method = methods.make(config, self.dataset)
    self.tx = state_lib.make_optimizer(config.optim)
    # Post-hoc EMA tracks (EDM2): their exponents γ from `optim.posthoc_ema.sigma_rels`.
    self.posthoc_gammas = posthoc_ema.gammas_of(config.optim)
    self.example_batch = self.dataset.batch(0)
    self.state_sharding = jax.tree.map(
        lambda _: sharding.replicated(self.mesh), jax.eval_shape(self.init_state)
    )

  def init_state(self) -> state_lib.TrainState:
    return _init_state(
        self.config.seed, self.method, self.tx, self.example_batch, len(self.posthoc_gammas)
    )

  def train_step(self, state: state_lib.TrainState, batch: dict):
    rng = jax.random.fold_in(state.rng, state.step)
    # The Method's own state (not trained; stateless Methods pass it through) advances with the step.
    grad_fn = jax.value_and_grad(self.method.loss_with_state, has_aux=True)
    (loss, (metrics, method_state)), grads = grad_fn(state.params, state.method_state, batch, rng)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    method_state = self.method.update_state(method_state, params)  # e.g. a target network's EMA
    decay = state_lib.ema_decay(self.config.optim.ema, state.step, self.config.data.batch_size)
    metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
    new_state = state.replace(
        step=state.step + 1,
        params=params,
        opt_state=opt_state,
        ema_params=state_lib.ema_update(state.ema_params, params, decay),
        method_state=method_state,
    )
    if self.posthoc_gammas:
      tracks = posthoc_ema.update_tracks(
          state.posthoc_ema, params, state.step + 1, self.posthoc_gammas
      )
      new_state = new_state.replace(posthoc_ema=tracks)
    return new_state, metrics

  def _jit_on_state(self, fn, batch_sharding):
    """`fn(state, batch) -> (state, metrics)` jitted over the mesh, the state donated."""
    return jax.jit(
        fn,
        in_shardings=(self.state_sharding, batch_sharding),
        out_shardings=(self.state_sharding, sharding.replicated(self.mesh)),
        donate_argnums=0,
    )

  def jit_train_step(self):
    return self._jit_on_state(self.train_step, sharding.batch_sharding(self.mesh))

  def jit_train_steps(self, num: int):
    """`num` train steps in one jit: `lax.scan` of `train_step` over batches stacked [num, B, ...]
    (`global_batches`); returns the state and each step's metrics, stacked [num]."""

    def steps(state, batches):
      return jax.lax.scan(self.train_step, state, batches, length=num)

    return self._jit_on_state(steps, sharding.stacked_batch_sharding(self.mesh))

  def global_batch(self, step: int) -> dict:
    return sharding.to_global(self.dataset.batch(step), self.mesh)

  def global_batches(self, step: int, num: int) -> dict:
    """The batches of steps step..step+num-1, stacked along a leading axis [num, B, ...]."""
    local = [self.dataset.batch(step + i) for i in range(num)]
    stacked = jax.tree.map(lambda *b: np.stack(b), *local)
    return sharding.to_global(stacked, self.mesh, stacked=True)

  def restore_or_init(self, mngr: ocp.CheckpointManager, workdir: str) -> state_lib.TrainState:
    """Resume order: (1) a checkpoint in the workdir, (2) `config.init_from`, (3) fresh init.

    Unreadable checkpoints (read errors, checksum mismatches, NaN or Inf) are moved aside with a
    warning and the older one is used (checkpoint.restore_latest).

    Raises:
      checkpoint.CheckpointMismatchError: the newest checkpoint's tree or shapes differ from this
        config's state (another config, or other code); nothing is moved.
    """
    abstract = checkpoint.abstract_like(self.init_state, self.state_sharding)
    step, state = checkpoint.restore_latest(mngr, workdir, abstract)
    if state is not None:
      logging.info("resumed from %s at step %d", workdir, step)
      return state
    state = jax.jit(self.init_state, out_shardings=self.state_sharding)()
    if self.config.init_from:
      # Another run's directory: read it, never move anything in it. Its state is read with its
      # own config's tree (a distillation teacher is another Method and optimiser).
      source = self._init_from_abstract(self.config.init_from) or abstract
      step, loaded = checkpoint.restore_dir(self.config.init_from, source, move_unreadable=False)
      if loaded is None:
        raise ValueError(f"init_from={self.config.init_from!r}: no restorable checkpoint there")
      logging.info("initialised parameters from %s (step %d)", self.config.init_from, step)
      state = self.method.start_from(state, loaded)
    return state

  def _init_from_abstract(self, run_dir: str):
    """The abstract TrainState of the run in `run_dir` as its `config.json` defines it (Method
    and optimiser; data shape and classes are this run's), or None when it has no config.json."""
    stored = workdir_lib.stored_config(run_dir)
    if stored is None:
      return None
    config = ml_collections.ConfigDict(stored)
    method = methods.make(config, self.dataset)
    tx = state_lib.make_optimizer(config.optim)
    tracks = len(posthoc_ema.gammas_of(config.optim))
    init = lambda: _init_state(config.seed, method, tx, self.example_batch, tracks)
    return checkpoint.abstract_like(
        init, jax.tree.map(lambda _: sharding.replicated(self.mesh), jax.eval_shape(init))
    )

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


def _init_state(
    seed: int, method, tx, example_batch, num_posthoc_tracks: int = 0
) -> state_lib.TrainState:
  """The fresh TrainState of `method` with optimiser `tx` (parameters from PRNGKey(seed)) and
  `num_posthoc_tracks` post-hoc EMA tracks."""
  rng_init, rng_train = jax.random.split(jax.random.PRNGKey(seed))
  params = method.init(rng_init, example_batch)
  state = state_lib.init_state(
      params, tx, rng_train, method.init_state_with_params(params), num_posthoc_tracks
  )
  # Strong types throughout: a weak-typed leaf (e.g. a parameter initialised from a Python float)
  # becomes strong after one update, so the second step (and every resume, which restores strong
  # arrays) would trace and compile the step again.
  return jax.tree.map(lambda x: x.astype(x.dtype) if getattr(x, "weak_type", False) else x, state)


def restore_for_inference(config, workdir: str, devices=None):
  """(Experiment of `config`, latest checkpoint state in `workdir`, its step).

  Fails before anything is built when the workdir has no checkpoint or cannot be written (eval and
  sample write into it), and warns when `config` differs from the run's `config.json` in keys that
  change what the state means (the sampler and eval settings may differ freely).
  """
  if not checkpoint.saved_steps(workdir):
    raise FileNotFoundError(f"--workdir={workdir} has no checkpoint; train first (--mode=train)")
  workdir_lib.check_writable(workdir)
  stored = workdir_lib.stored_config(workdir)
  changes = workdir_lib.config_changes(stored, config) if stored is not None else []
  if changes:
    logging.warning("%s was trained with another config: %s", workdir, ", ".join(changes))
  exp = Experiment(config, devices)
  abstract = checkpoint.abstract_like(exp.init_state, exp.state_sharding)
  step, state = checkpoint.restore_dir(workdir, abstract)
  if state is None:
    raise FileNotFoundError(
        f"--workdir={workdir} has no readable checkpoint (all were moved to "
        f"{checkpoint.UNREADABLE}/)"
    )
  init_weight = state_lib.ema_init_weight(config.optim.ema, step, int(config.data.batch_size))
  if init_weight > 0.1:
    logging.warning(
        "the EMA parameters used here are still %.0f%% the initial (untrained) network after %d "
        "steps (optim.ema: %s); train longer or use a shorter EMA (optim.ema.decay, or kind "
        "'halflife' with rampup_ratio)",
        100 * init_weight,
        step,
        dict(config.optim.ema),
    )
  return exp, state, step
