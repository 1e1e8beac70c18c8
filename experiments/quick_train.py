"""Train a config in-process with the jitted multi-step function, and an exact W2, for experiment
scripts that compare many short runs (experiments/bridges/run_all.py, experiments/fewstep_toy.py).

No checkpoints, no evaluation loop: `diffjax.main` is the runner for real runs.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import data
from diffjax.core import couplings
from diffjax.train import experiment


def train(config, num_steps, deadline=float("inf"), chunk=10, min_steps=0):
  """Trains `config` with the jitted step (chunks of `chunk` steps) until num_steps or deadline,
  but at least min_steps; returns (experiment, state, steps trained, seconds of training).

  The deadline moves by the set-up time (experiment, data, initial state, compile): otherwise a
  section pays it from its share (GPU runs: 10 of I-CFM's 1000 steps when only the state was
  built first; 0 transfer steps when the data loading was not counted)."""
  t_setup = time.perf_counter()
  exp = experiment.Experiment(config)
  state = jax.jit(exp.init_state, out_shardings=exp.state_sharding)()
  steps_fn = exp.jit_train_steps(chunk).lower(state, exp.global_batches(0, chunk)).compile()
  deadline += time.perf_counter() - t_setup
  t0, step = time.perf_counter(), 0
  while step + chunk <= num_steps and (step < min_steps or time.perf_counter() < deadline):
    state, _ = steps_fn(state, exp.global_batches(step, chunk))
    step += chunk
  jax.block_until_ready(state)
  return exp, state, step, time.perf_counter() - t0


def exact_w2(a, b) -> float:
  """Exact W2 between two equal-size point sets [N, d] (optimal assignment)."""
  cost = couplings.pairwise_sq_dists(jnp.asarray(a), jnp.asarray(b))
  perm = jax.jit(couplings.host_assignment)(cost)
  return float(jnp.sqrt(jnp.mean(cost[jnp.arange(cost.shape[0]), perm])))


def held_out_points(data_config, n: int, seed: int) -> np.ndarray:
  """The first n points [n, ...] of the data's `test` stream with `seed` (batches 0, 1, ...): the
  reference set a W2 is measured against (toy data: fresh draws, independent of training)."""
  source = data.make(data_config, seed=seed, split="test")
  out, step = [], 0
  while sum(len(o) for o in out) < n:
    out.append(np.asarray(source.batch(step)["x"]))
    step += 1
  return np.concatenate(out)[:n]
