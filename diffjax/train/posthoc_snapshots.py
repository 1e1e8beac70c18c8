r"""Post-hoc EMA snapshots (orbax) and `--mode=reconstruct_ema` (EDM2, App. C; posthoc_ema.py).

Training with `optim.posthoc_ema.sigma_rels` set writes the power-function EMA tracks every
`snapshot_every_steps` steps and at the last step to `<workdir>/posthoc_ema/<step>/` (one orbax
checkpoint of {"track_<i>": params}, and `meta.json` with the step, σ_rel and γ of each track,
written once orbax has committed). These are kept, unlike the rotating `checkpoints/`.

`reconstruct(config, workdir)` (`--mode=reconstruct_ema`) solves, for each target σ_rel of
`optim.posthoc_ema.reconstruct_sigma_rels`, the least-squares fit of the target's power-function
profile at `reconstruct_step` (0: the last snapshot) by the profiles of all snapshots up to that
step, writes the combined parameters to `<workdir>/posthoc_ema/sigma_rel_<σ>/params` with the
coefficients in `reconstruction.json`, and, when evaluators are enabled in `config.eval`, evaluates
them (the metrics go to `<workdir>/posthoc_ema/sigma_rel_<σ>/eval/` and to `summary.json`).

  python -m diffjax.main --config=configs/edm/fashion_mnist.py:posthoc_ema --workdir=DIR \
    --mode=reconstruct_ema --config.optim.posthoc_ema.reconstruct_sigma_rels="(0.05, 0.1, 0.2)"
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from diffjax.train import evaluate as evaluate_lib
from diffjax.train import experiment
from diffjax.train import posthoc_ema
from diffjax.train import progress

DIR = "posthoc_ema"
META = "meta.json"


def snapshot_root(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), DIR)


def save_snapshot(workdir: str, step: int, tracks, sigma_rels, gammas) -> str:
  """Writes the tracks at `step` to `<workdir>/posthoc_ema/<step>` (replacing one of that step)."""
  path = os.path.join(snapshot_root(workdir), f"{int(step):08d}")
  tree = {f"track_{i}": t for i, t in enumerate(tracks)}
  _save(os.path.join(path, "tracks"), tree)
  if jax.process_index() == 0:
    meta = dict(step=int(step), sigma_rels=[float(s) for s in sigma_rels])
    meta["gammas"] = [float(g) for g in gammas]
    progress.write_json(os.path.join(path, META), meta)
  return path


def _save(path: str, tree) -> None:
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(path, tree, force=True)
  ckptr.wait_until_finished()


def load_params(path: str):
  """Parameters written by `reconstruct` (`<workdir>/posthoc_ema/sigma_rel_<σ>/params`), NumPy."""
  return jax.tree.map(np.asarray, ocp.StandardCheckpointer().restore(path))


def list_snapshots(workdir: str) -> list[dict]:
  """Complete snapshots (those with `meta.json`), by step: [{"step", "sigma_rels", "gammas",
  "path"}]."""
  root = snapshot_root(workdir)
  if not os.path.isdir(root):
    return []
  out = []
  for name in sorted(os.listdir(root)):
    meta_path = os.path.join(root, name, META)
    if name.isdigit() and os.path.isfile(meta_path):
      with open(meta_path) as f:
        out.append(dict(json.load(f), path=os.path.join(root, name)))
  return sorted(out, key=lambda m: m["step"])


def load_tracks(snapshot: dict) -> list:
  """The snapshot's tracks as host NumPy trees, in the order of its sigma_rels."""
  tree = ocp.StandardCheckpointer().restore(os.path.join(snapshot["path"], "tracks"))
  return [jax.tree.map(np.asarray, tree[f"track_{i}"]) for i in range(len(snapshot["gammas"]))]


def reconstruct(config, workdir: str, devices=None) -> dict:
  """`--mode=reconstruct_ema`: EMA parameters for every target σ_rel (module docstring). Returns
  {σ_rel: metrics} (empty dicts when no evaluator is enabled)."""
  opts = posthoc_ema.options(config.optim)
  targets = [float(s) for s in opts["reconstruct_sigma_rels"]]
  if not targets:
    raise ValueError("optim.posthoc_ema.reconstruct_sigma_rels is empty: name the σ_rel to build")
  snaps = list_snapshots(workdir)
  if not snaps:
    raise FileNotFoundError(
        f"--workdir={workdir} has no post-hoc EMA snapshots in {DIR}/: train with "
        "optim.posthoc_ema.sigma_rels and snapshot_every_steps set"
    )
  step = int(opts["reconstruct_step"]) or snaps[-1]["step"]
  snaps = [s for s in snaps if s["step"] <= step]
  if not snaps or snaps[-1]["step"] < step:
    raise ValueError(
        f"optim.posthoc_ema.reconstruct_step={step}: the target time must be at or before the "
        f"last snapshot ({snaps[-1]['step'] if snaps else 'none'}) and at or after the first"
    )
  ts, gammas, trees = [], [], []
  for snap in snaps:
    for gamma, tree in zip(snap["gammas"], load_tracks(snap)):
      ts.append(snap["step"])
      gammas.append(gamma)
      trees.append(tree)
  exp, state, _ = experiment.restore_for_inference(config, workdir, devices)
  evaluate = any(enabled(config.eval) for enabled, _ in evaluate_lib.EVALUATORS.values())
  summary = {}
  for sigma_rel in targets:
    gamma = posthoc_ema.sigma_rel_to_gamma(sigma_rel)
    coeffs = posthoc_ema.coefficients(ts, gammas, step, gamma, opts["gram"])
    params = posthoc_ema.combine(trees, coeffs)
    out = os.path.join(snapshot_root(workdir), f"sigma_rel_{sigma_rel:.4f}")
    _save(os.path.join(out, "params"), params)
    if jax.process_index() == 0:
      progress.write_json(
          os.path.join(out, "reconstruction.json"),
          dict(
              sigma_rel=sigma_rel,
              gamma=gamma,
              step=step,
              gram=opts["gram"],
              snapshots=[
                  dict(step=int(t), gamma=float(g), coeff=float(c))
                  for t, g, c in zip(ts, gammas, coeffs)
              ],
          ),
      )
    logging.info("σ_rel %.4f (γ %.3f) at step %d from %d profiles", sigma_rel, gamma, step, len(ts))
    metrics = {}
    if evaluate:
      shardings = exp.state_sharding.ema_params
      on_device = jax.tree.map(lambda x, s: jax.device_put(x, s), params, shardings)
      metrics = evaluate_lib.evaluate_state(exp, state.replace(ema_params=on_device), out, step)
    summary[f"{sigma_rel:.4f}"] = metrics
    print(f"sigma_rel {sigma_rel:.4f}: " + " | ".join(f"{k} {v:.6g}" for k, v in metrics.items()))
  if jax.process_index() == 0:
    progress.write_json(os.path.join(snapshot_root(workdir), "summary.json"), summary)
  return summary
