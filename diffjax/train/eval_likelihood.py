"""The `pfode_bpd` evaluator: test bits/dim by the probability-flow ODE (`solvers/likelihood.py`).

Enabled by `eval.pfode_bpd_num_examples` > 0; options in `eval.pfode_kwargs` (all optional):
  num_steps (32), method ("rk4" | "heun"), divergence ("rademacher" | "gaussian" | "exact"),
  sigma_min, sigma_max (0 or absent: the model's schedule range, narrowed to EDM's [0.002, 80]),
  data_var (0.25: the prior N(0, σ_max² + data_var)), dequantize (True), grid ("ddpm"),
  batch_size (250); `config_lib.pfode_defaults`.
Works for every Method with a σ-frame `denoiser` (any GaussianDiffusion: EDM, v-prediction, flow).
"""

from __future__ import annotations

import jax
import numpy as np

from diffjax import config_lib
from diffjax.solvers import grids
from diffjax.solvers import likelihood
from diffjax.train import sharding

_KEYS = tuple(config_lib.pfode_defaults())


def ode_options(method, params, pfode_kwargs) -> dict:
  """`eval.pfode_kwargs` with the σ range defaulted to the schedule's, within [0.002, 80]."""
  kw = dict(pfode_kwargs)
  unknown = sorted(set(kw) - set(_KEYS))
  if unknown:
    raise ValueError(f"eval.pfode_kwargs: unknown keys {unknown}; expected some of {list(_KEYS)}")
  lo, hi = grids.schedule_sigma_range(method.schedule(params))
  kw["sigma_min"] = float(kw.get("sigma_min", 0.0)) or max(lo, 0.002)
  kw["sigma_max"] = float(kw.get("sigma_max", 0.0)) or min(hi, 80.0)
  return kw


def pfode_bpd(ctx) -> dict:
  """Mean PF-ODE bits/dim of the first `eval.pfode_bpd_num_examples` test examples, its standard
  error over examples (probe and dequantisation noise included), and the prior's share."""
  exp, ecfg = ctx.exp, ctx.exp.config.eval
  kw = ode_options(exp.method, ctx.params, ecfg.get("pfode_kwargs", {}))
  bs = int(kw.pop("batch_size", 250))
  ref = exp.reference_data(int(ecfg.pfode_bpd_num_examples))
  x, labels = ref["x"], ref.get("label") if exp.method.conditional else None

  @jax.jit
  def fn(params, rng, x, label):
    return likelihood.bpd(exp.method.denoiser(params, label), x, rng, **kw)

  # Batches split along the mesh's `data` axis where they divide: every device runs the same
  # fixed-step program on its share (no per-device step counts to wait for).
  split = sharding.batch_sharding(exp.mesh) if bs % exp.mesh.size == 0 else None
  place = (lambda a: jax.device_put(a, split)) if split is not None else (lambda a: a)
  rng, parts, n = jax.random.PRNGKey(ecfg.seed + 3), [], len(x)
  for i in range(-(-n // bs)):
    sl = slice(i * bs, (i + 1) * bs)
    chunk, lab = x[sl], None if labels is None else labels[sl]
    pad = bs - len(chunk)  # one batch shape, one compilation
    if pad:
      chunk = np.concatenate([chunk, chunk[:1].repeat(pad, 0)])
      lab = None if lab is None else np.concatenate([lab, lab[:1].repeat(pad, 0)])
    lab = None if lab is None else place(lab)
    res = jax.device_get(fn(ctx.params, jax.random.fold_in(rng, i), place(chunk), lab))
    parts.append({k: np.asarray(v)[: bs - pad] for k, v in res.items()})
  per = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  return {
      "pfode_bpd": float(np.mean(per["bpd"])),
      "pfode_bpd_stderr": float(np.std(per["bpd"], ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
      "pfode_prior_bpd": float(np.mean(per["prior_bpd"])),
  }
