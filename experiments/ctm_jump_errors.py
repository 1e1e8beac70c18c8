r"""How accurate are a CTM student's jumps G(x_t, t, s), by (t, s), along training? (issue 13)

  python -m diffjax.main --config=configs/edm/toy2d.py --workdir=/tmp/tt/edm \
      --config.train.num_steps=4000 --mode=train                       # the teacher (~2 min CPU)
  python experiments/ctm_jump_errors.py --teacher=/tmp/tt/edm --steps=4000 --out_dir=/tmp/ctm_err

Distils `configs/ctm/toy2d.py` (plus `--set key=value` overrides of config.method) from the
teacher in-process and, every `--every` steps, measures the RMS error of the student's jump
(EMA parameters) against the teacher's own PF-ODE map (Heun, 400 log-spaced levels) from 500
noised held-out points x + t ε, for starts t on and off the training grid and ends s = σ_min or
intermediate; and the exact W2 of `--num_w2` samples (1, 2, 4 jumps, γ = 0) to as many held-out
points, with the config's Karras sampling grid (inner levels off the N training levels, as the
official sampler) and with `karras_subset` (inner levels on them). Prints one row per checkpoint
and writes ctm_jump_errors.json.
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # quick_train

# pylint: disable=g-import-not-at-top,wrong-import-position
import quick_train
from diffjax import config_lib
from diffjax import data
from diffjax.methods import consistency_lib as lib
from diffjax.train import experiment

# pylint: enable=g-import-not-at-top,wrong-import-position

_TEACHER = flags.DEFINE_string("teacher", None, "EDM toy2d run directory.", required=True)
_STEPS = flags.DEFINE_integer("steps", 4000, "CTM training steps.")
_EVERY = flags.DEFINE_integer("every", 500, "Measure every this many steps.")
_OUT = flags.DEFINE_string("out_dir", "/tmp/ctm_err", "Output dir.")
_NUM_W2 = flags.DEFINE_integer("num_w2", 2000, "Samples (and held-out points) per W2.")
_SET = flags.DEFINE_list("set", [], "config.method overrides key=value (Python literals).")

NUM = 500
ODE_LEVELS = 400


def _pairs(method):
  """(label, t, s): grid starts σ_i → σ_min, off-grid starts, and intermediate jumps."""
  lv = lambda i: float(method.level(i))
  smin, last = method.sigma_min, method.num_scales - 1
  pairs = [(f"σ_{i}={lv(i):.3g} → σ_min", lv(i), smin) for i in (0, 2, 4, 8, 12, last - 1)]
  pairs += [(f"{t:g} → σ_min (off grid)", t, smin) for t in (20.0, 2.5)]
  pairs += [
      (f"σ_0 → σ_{j}={lv(j):.3g}", lv(0), lv(j)) for j in (4, 8, 12)
  ]  # intermediate ends: compared in x_s space
  return pairs


def _teacher_map(den, x, t, s):
  """The teacher's PF-ODE map t → s (Heun on ODE_LEVELS log-spaced levels)."""
  levels = jnp.exp(jnp.linspace(jnp.log(t), jnp.log(s), ODE_LEVELS))

  def body(y, k):
    sig = jnp.full(y.shape[:1], levels[k])
    nxt = jnp.full(y.shape[:1], levels[k + 1])
    return lib.heun_step(den, y, sig, nxt), None

  y, _ = jax.lax.scan(body, x, jnp.arange(ODE_LEVELS - 1))
  return y


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  config = config_lib.load(os.path.join(REPO, "configs/ctm/toy2d.py"), None)
  config.init_from = _TEACHER.value
  for kv in _SET.value:
    k, v = kv.split("=", 1)
    config.method[k] = eval(v)  # pylint: disable=eval-used
  tconfig = config_lib.load(os.path.join(REPO, "configs/edm/toy2d.py"), None)
  _, tstate, _ = experiment.restore_for_inference(tconfig, _TEACHER.value)
  exp = experiment.Experiment(config)
  state = jax.jit(exp.init_state)()
  state = exp.method.start_from(state, tstate)
  m = exp.method
  den = m.teacher_denoiser(state.method_state["teacher"])
  source = data.make(config.data, seed=7, split="test")
  x0 = np.concatenate([np.asarray(source.batch(k)["x"]) for k in range(4)])[:NUM]
  eps = jax.random.normal(jax.random.PRNGKey(3), x0.shape)
  pairs = _pairs(m)
  refs = {}
  for label, t, s in pairs:
    xt = x0 + t * eps
    refs[label] = (xt, _teacher_map(den, xt, jnp.float32(t), jnp.float32(s)))
  jump = jax.jit(lambda p, x, t, s: m.jump_fn(p)(x, t, s))

  def errors(params):
    out = {}
    for label, t, s in pairs:
      xt, ref = refs[label]
      g = jump(params, xt, jnp.full((NUM,), t), jnp.full((NUM,), s))
      out[label] = float(jnp.sqrt(jnp.mean(jnp.sum((g - ref) ** 2, -1))))
    return out

  ref_w2 = quick_train.held_out_points(config.data, _NUM_W2.value, seed=5)
  # The CTM configs' FD samplers: `step<k>` on the config's Karras grid, `step<k>_on_grid` on the
  # training levels; labelled as in fewstep_toy.md.
  labels = {"step1": "1", "step2": "2 karras", "step4": "4 karras"}
  labels.update({"step2_on_grid": "2 on grid", "step4_on_grid": "4 on grid"})
  samplers = config_lib.ctm_fd_samplers(config)

  def w2(params):
    out = {}
    for sampler, name in labels.items():
      x = m.sample(params, jax.random.PRNGKey(1), _NUM_W2.value, **samplers[sampler])
      out[name] = quick_train.exact_w2(np.asarray(x).reshape(len(ref_w2), -1), ref_w2)
    return out

  chunk = 10
  steps_fn = exp.jit_train_steps(chunk)
  rows = [dict(step=0, ema=errors(state.ema_params), raw=errors(state.params))]
  print(json.dumps(rows[-1]), flush=True)
  t0, step = time.perf_counter(), 0
  while step < _STEPS.value:
    state, metrics = steps_fn(state, exp.global_batches(step, chunk))
    step += chunk
    if step % _EVERY.value == 0:
      lam = float(np.mean(metrics["dsm_lambda"]))
      rows.append(
          dict(
              step=step,
              ema=errors(state.ema_params),
              raw=errors(state.params),
              lam=lam,
              w2_ema=w2(state.ema_params),
          )
      )
      print(f"{time.perf_counter() - t0:.0f}s", json.dumps(rows[-1]), flush=True)
  with open(os.path.join(_OUT.value, "ctm_jump_errors.json"), "w") as f:
    json.dump(dict(overrides=_SET.value, rows=rows), f, indent=1)


if __name__ == "__main__":
  app.run(main)
