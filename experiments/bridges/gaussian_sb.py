r"""DSBM-IMF on Gaussian → Gaussian transport against the closed-form Schrödinger bridge.

  python experiments/bridges/gaussian_sb.py --dims=5,20,50 --iterations=6 --steps=1000 \
      --out=/tmp/gaussian_sb.json

Trains `configs/dsbm/gaussian.py` (π₀ = N(−0.1·1, I), π₁ = N(0.1·1, I), σ = 1) with the real
jitted train step and, after each IMF iteration, samples the coupling of the network trained in
it (iteration 0 and even: the backward SDE from fresh π₁ points; odd: the forward SDE from fresh
π₀ points) and reports its errors against `core.gaussian_sb` (per-dimension RMS of the mean,
covariance and cross-covariance differences; the SB cross-covariance is (√5 − 1)/2·I).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np
from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from diffjax import config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from diffjax.core import gaussian_sb  # pylint: disable=g-import-not-at-top,wrong-import-position
from diffjax.train import experiment  # pylint: disable=g-import-not-at-top,wrong-import-position

CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "configs",
    "dsbm",
    "gaussian.py",
)


def run(
    dim: int,
    *,
    iterations: int,
    steps: int,
    first: str = "ind",
    sigma: float = 1.0,
    num_eval: int = 10_000,
    sim_steps: int = 20,
    devices=None,
    deadline: float | None = None,
) -> list[dict]:
  """Per-iteration coupling errors of DSBM on the Gaussian problem in `dim` dimensions (stops
  after the iteration during which `deadline`, a `time.perf_counter()` value, passes)."""
  arg = f"dim={dim},sigma={sigma},iterations={iterations},steps={steps},first={first}"
  config = config_lib.load(CONFIG, arg)
  config.method.num_sim_steps = sim_steps
  exp = experiment.Experiment(config, devices)
  method = exp.method
  state = jax.jit(exp.init_state, out_shardings=exp.state_sharding)()
  train_step = exp.jit_train_step()
  mean0, mean1 = -0.1 * np.ones(dim), 0.1 * np.ones(dim)
  rng = np.random.default_rng(1234)
  simulate = jax.jit(method.simulate, static_argnames=("direction", "num_steps"))
  rows, t0 = [], time.perf_counter()
  for k in range(iterations):
    for s in range(k * steps, (k + 1) * steps):
      state, metrics = train_step(state, exp.global_batch(s))
    direction = "forward" if k % 2 == 1 else "backward"
    key = jax.random.PRNGKey(10_000 + k)
    if direction == "forward":
      x0 = (mean0 + rng.standard_normal((num_eval, dim))).astype(np.float32)
      x1 = np.asarray(simulate(state.params, "forward", x0, key, num_steps=sim_steps))
    else:
      x1 = (mean1 + rng.standard_normal((num_eval, dim))).astype(np.float32)
      x0 = np.asarray(simulate(state.params, "backward", x1, key, num_steps=sim_steps))
    err = gaussian_sb.coupling_errors(x0, x1, mean0, np.eye(dim), mean1, np.eye(dim), sigma)
    err.update(dim=dim, iteration=k, direction=direction, seconds=time.perf_counter() - t0)
    err["loss"] = float(jax.device_get(metrics["loss"]))
    logging.info("d=%d iteration %d (%s): %s", dim, k, direction, err)
    rows.append(err)
    if deadline is not None and time.perf_counter() > deadline:
      break
  return rows


_DIMS = flags.DEFINE_list("dims", ["5", "20", "50"], "Dimensions.")
_ITERATIONS = flags.DEFINE_integer("iterations", 6, "IMF iterations.")
_STEPS = flags.DEFINE_integer("steps", 1000, "Optimiser steps per IMF iteration.")
_FIRST = flags.DEFINE_string("first", "ind", "First coupling: ind (DSBM-IMF) or ref (DSBM-IPF).")
_OUT = flags.DEFINE_string("out", "", "JSON file for the rows.")


def main(argv):
  del argv
  rows = []
  for d in _DIMS.value:
    rows += run(int(d), iterations=_ITERATIONS.value, steps=_STEPS.value, first=_FIRST.value)
  if _OUT.value:
    with open(_OUT.value, "w", encoding="utf-8") as f:
      json.dump(rows, f, indent=1)
  for r in rows:
    print(
        f"d={r['dim']:3d} it={r['iteration']} {r['direction']:8s} mean {r['mean0']:.3f}/"
        f"{r['mean1']:.3f} cov {r['cov0']:.3f}/{r['cov1']:.3f} cross {r['cross_cov']:.3f} "
        f"(diag {r['cross_cov_diag_mean']:.3f} vs {(np.sqrt(5) - 1) / 2:.3f})"
    )


if __name__ == "__main__":
  app.run(main)
