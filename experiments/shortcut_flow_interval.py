r"""Shortcut models on the checkerboard with the flow-matching examples at d = 1/M (`min_step`, the
official code) and at d = 0 (`zero`): exact W2 at 1, 2, 4 and 128 calls (experiments/results/
fewstep_toy.md, issue 13).

  python experiments/shortcut_flow_interval.py [STEPS=4000]      # ~3 min on 2 CPU cores
  python experiments/shortcut_flow_interval.py 4000 bootstrap_ema=0.999,0.0

A second argument KEY=V1,V2,... compares values of another `method` field instead (numbers are
parsed as floats), e.g. the bootstrap targets from the EMA θ⁻ against the current parameters.
"""

import os
import sys

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# pylint: disable=g-import-not-at-top,wrong-import-position
import quick_train
from diffjax import config_lib

# pylint: enable=g-import-not-at-top,wrong-import-position

NUM = 2000


def _literal(text: str):
  try:
    return float(text)
  except ValueError:
    return text


def main():
  steps = int(sys.argv[1]) if len(sys.argv) > 1 else 4000
  key, values = "flow_interval", ["min_step", "zero"]
  if len(sys.argv) > 2:
    key, _, text = sys.argv[2].partition("=")
    values = [_literal(v) for v in text.split(",")]
  for value in values:
    config = config_lib.load(os.path.join(REPO, "configs", "shortcut", "toy2d.py"))
    if key not in config.method:
      raise ValueError(f"method.{key}: not a field of the shortcut toy config")
    config.method[key] = value
    exp, state, done, secs = quick_train.train(config, steps)
    ref = quick_train.held_out_points(config.data, NUM, seed=5)
    row = {}
    for k in (1, 2, 4, 128):
      x = np.asarray(exp.method.sample(state.ema_params, jax.random.PRNGKey(1), NUM, num_steps=k))
      row[k] = round(quick_train.exact_w2(x.reshape(NUM, -1), ref), 3)
    print(f"{key}={value}: {done} steps in {secs:.0f} s, W2 by calls {row}", flush=True)


if __name__ == "__main__":
  main()
