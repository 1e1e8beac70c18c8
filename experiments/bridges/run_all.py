r"""The "Shown" results of flows and bridges in one process (experiments/bridges_gpu.sh runs it).

  python experiments/bridges/run_all.py --fmnist=/data/fmnist --classifier=/ckpt/fd --out_dir=/tmp/b

Sections, each with its own step counts and a share of the wall-time budget (a section whose time
runs out stops training early and reports the steps it trained):
  toys      I-CFM, OT-CFM (exact assignment over the batch) and SB-CFM (σ = 0.5) on 2-D toys:
            exact W2 of 1000 samples (100 Euler steps, and 1 Euler step) to 1000 held-out points,
            mean path length of the 100-step trajectories and straightness = displacement / length.
  gaussian  DSBM-IMF on N(−0.1, I) → N(0.1, I), σ = 1, d = 5, 20, 50: coupling errors against the
            closed-form SB after each IMF iteration (gaussian_sb.py).
  fmnist    OT-CFM vs I-CFM on Fashion-MNIST (short training): FD-FMNIST at 1 and 4 Euler steps and
            Heun-35 (EDM's 18-step grid).
  transfer  DSBM between Fashion-MNIST tops (0, 2, 4, 6) and footwear (5, 7, 9), two IMF
            iterations, always trained in full: pictures of footwear → tops (backward net) and
            tops → footwear (forward).
Writes bridges.md, bridges.json and PNGs into --out_dir. SMOKE=1 (or --smoke) runs tiny settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # quick_train

# pylint: disable=g-import-not-at-top,wrong-import-position
import gaussian_sb as gaussian_sb_experiment
import quick_train
from diffjax import config_lib
from diffjax import data
from diffjax.methods import sampling
from diffjax.metrics import fd_fmnist
from diffjax.train import progress

# pylint: enable=g-import-not-at-top,wrong-import-position

_FMNIST = flags.DEFINE_string("fmnist", "/usr/share/datasets/fashion-mnist/", "Fashion-MNIST dir.")
_CLASSIFIER = flags.DEFINE_string("classifier", "", "FD-FMNIST classifier dir ('' skips FD).")
_OUT = flags.DEFINE_string("out_dir", "/tmp/bridges", "Output dir.")
_BUDGET = flags.DEFINE_float("budget_s", 360.0, "Wall-time budget of all sections (seconds).")
_SMOKE = flags.DEFINE_bool("smoke", bool(int(os.environ.get("SMOKE", "0"))), "Tiny settings.")
_SECTIONS = flags.DEFINE_list("sections", ["toys", "gaussian", "fmnist", "transfer"], "Sections.")
_TRANSFER_STEPS = flags.DEFINE_integer("transfer_steps", 400, "DSBM steps per IMF iteration.")
_DIMS = flags.DEFINE_list("gaussian_dims", ["5", "20", "50"], "Dimensions of the gaussian section.")

SHARE = {"toys": 0.3, "gaussian": 0.15, "fmnist": 0.4, "transfer": 0.15}  # of the budget
# Step counts are fixed so that compared rows train equally long; the deadlines only guard the
# wall time (a row cut short says so in its `steps` column).


def _config(path, arg, **overrides):
  config = config_lib.load(os.path.join(REPO, "configs", path), arg)
  for k, v in overrides.items():
    node = config
    *parents, name = k.split(".")
    for p in parents:
      node = node[p]
    node[name] = v
  return config


def _velocity(exp, params):
  """u(z, t [N]) = dz/dt of the trained model's ODE (t: 1 noise -> 0 data)."""
  method = exp.method
  if exp.config.method.kind == "interpolant":
    fields = method.fields(params)
    return lambda z, t: method.path.drift(*fields(z, t), t)
  den = method.denoiser(params)  # flow schedule, σ_min = 0: z = (1 − t)x + tε, u = (z − x̂)/t

  def u(z, t):
    x_hat = den(z / (1.0 - t)[:, None], (t / (1.0 - t)))
    return (z - x_hat) / t[:, None]

  return u


def _trajectory_stats(exp, params, noise, num_steps):
  """Euler from t_max to 0: endpoints, mean path length, mean displacement."""
  kind = exp.config.method.kind
  t_max = 1.0 if kind == "interpolant" else 0.999
  u = _velocity(exp, params)
  if kind == "interpolant":
    from diffjax.core import interpolants  # pylint: disable=g-import-not-at-top

    clip = lambda t: jnp.clip(t, interpolants.T_EDGE, 1 - interpolants.T_EDGE)  # pylint: disable=unnecessary-lambda-assignment
  else:
    clip = lambda t: t  # pylint: disable=unnecessary-lambda-assignment
  ts = jnp.linspace(t_max, 0.0, num_steps + 1)
  z0 = noise if kind == "interpolant" else t_max * noise

  @jax.jit
  def run(z):
    def step(carry, pair):
      z, length = carry
      t, t_next = pair
      dz = (t_next - t) * u(z, jnp.full(z.shape[:1], clip(t)))
      return (z + dz, length + jnp.linalg.norm(dz, axis=1)), None

    (z_end, length), _ = jax.lax.scan(step, (z, jnp.zeros(z.shape[0])), (ts[:-1], ts[1:]))
    return z_end, jnp.mean(length), jnp.mean(jnp.linalg.norm(z_end - z, axis=1))

  return run(z0)


def toys(smoke, deadline, out):
  rows = []
  datasets = ["eight_gaussians", "two_moons"]
  runs = [
      ("I-CFM", "ot_cfm/toy2d.py", "coupling=independent"),
      ("OT-CFM", "ot_cfm/toy2d.py", "coupling=exact"),
      ("SB-CFM σ=0.5", "sb_cfm/toy2d.py", "sigma=0.5"),
  ]
  steps, n = (20, 200) if smoke else (1000, 1000)
  share = (deadline - time.perf_counter()) / (len(datasets) * len(runs))
  for ds_name in datasets:
    for name, path, arg in runs:
      config = _config(path, f"{arg},dataset={ds_name}", **{"data.batch_size": 256})
      if smoke:
        config.model.update(width=32, depth=2)
      exp, state, done, secs = quick_train.train(config, steps, time.perf_counter() + share, 10)
      ref = quick_train.held_out_points(config.data, n, seed=5)
      noise = jax.random.normal(jax.random.PRNGKey(0), (n, 2))
      z100, length, disp = _trajectory_stats(exp, state.ema_params, noise, 100)
      z1, _, _ = _trajectory_stats(exp, state.ema_params, noise, 1)
      row = dict(
          dataset=ds_name,
          method=name,
          steps=done,
          train_s=secs,
          w2_100=quick_train.exact_w2(z100, ref[:n]),
          w2_1=quick_train.exact_w2(z1, ref[:n]),
          path_length=float(length),
          straightness=float(disp / length),
      )
      rows.append(row)
      progress.save_samples(
          np.asarray(z100), os.path.join(out, f"toy_{ds_name}_{name.split()[0]}.png"), ref[:n]
      )
      print(row, flush=True)
  return rows


def gaussian(smoke, deadline, out):
  del out
  dims, iterations, steps = ([5], 2, 10) if smoke else ([int(d) for d in _DIMS.value], 4, 500)
  rows = []
  for d in dims:
    if time.perf_counter() > deadline:
      break
    rows += gaussian_sb_experiment.run(
        d, iterations=iterations, steps=steps, num_eval=2000 if smoke else 10_000, deadline=deadline
    )
  return rows


def fmnist(smoke, deadline, out, fmnist_dir, classifier_dir):
  rows = []
  steps, num = (4, 64) if smoke else (1000, 2000)
  evaluator = fd_fmnist.Evaluator.load(classifier_dir) if classifier_dir else None
  samplers = {
      "euler1": config_lib.euler_steps(1),
      "euler4": config_lib.euler_steps(4),  # t = 0.999·i/4 (before session 9: last level 10⁻³)
      "heun35": dict(config_lib.HEUN35),
  }
  runs = [("I-CFM", "independent"), ("OT-CFM", "exact")]
  share = (deadline - time.perf_counter()) / len(runs)
  for name, coupling in runs:
    config = _config(
        "ot_cfm/fashion_mnist.py",
        f"coupling={coupling}" + (",smoke" if smoke else ""),
        **{"data.path": fmnist_dir, "data.batch_size": 16 if smoke else 128},
    )
    # The twin's constant EMA 0.9995 still holds 61% of the initial network after 1000 steps (the
    # first GPU run's FD ~420 came from that): EDM's ramped half-life instead.
    config.optim.ema = ml_collections.ConfigDict(config_lib.ema_halflife(50_000, 0.05))
    exp, state, done, secs = quick_train.train(
        config, steps, time.perf_counter() + share * 0.7, 2 if smoke else 10
    )
    row = dict(method=name, steps=done, train_s=secs, batch=config.data.batch_size)
    for sname, overrides in samplers.items():
      samples = sampling.sample_in_batches(
          exp.method, state.ema_params, jax.random.PRNGKey(1), num, min(num, 500), **overrides
      )
      if evaluator is not None:
        row[f"fd_{sname}"] = evaluator.distance(samples)
      progress.save_samples(samples[:64], os.path.join(out, f"fmnist_{name}_{sname}.png"))
    rows.append(row)
    print(row, flush=True)
  return rows


def transfer(smoke, deadline, out, fmnist_dir):
  steps = 2 if smoke else _TRANSFER_STEPS.value
  config = _config(
      "dsbm/fashion_mnist.py",
      f"steps={steps},iterations=2" + (",smoke" if smoke else ""),
      **{"data.batch_size": 16 if smoke else 64, "method.num_sim_steps": 2 if smoke else 5},
  )
  config.method.steps_per_iteration = steps
  config.data.x.path = config.data.y.path = fmnist_dir
  # Both IMF iterations train in full however late the section starts (a deadline would cut the
  # second, forward, network): pictures of an untrained network are worse than a late report.
  # 800 steps of this DSBM take well under a minute on one GPU.
  exp, state, done, secs = quick_train.train(
      config, 2 * steps, deadline, 1 if smoke else 10, min_steps=2 * steps
  )
  test = data.make(config.data, seed=3, split="test").batch(0)
  method, key = exp.method, jax.random.PRNGKey(4)
  sim = jax.jit(method.simulate, static_argnames=("direction", "num_steps"))
  n = min(16, len(test["x"]))
  tops = np.asarray(sim(state.params, "backward", jnp.asarray(test["y"][:n]), key, num_steps=30))
  shoes = np.asarray(sim(state.params, "forward", jnp.asarray(test["x"][:n]), key, num_steps=30))
  progress.save_samples(
      np.concatenate([test["y"][:n], tops]), os.path.join(out, "transfer_footwear_to_tops.png")
  )
  progress.save_samples(
      np.concatenate([test["x"][:n], shoes]), os.path.join(out, "transfer_tops_to_footwear.png")
  )
  return [dict(steps=done, train_s=secs, iterations=2, batch=config.data.batch_size)]


def _report(results, out, smoke, wall):
  commit = (
      os.environ.get("DIFFJAX_COMMIT")
      or subprocess.run(
          ["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True, check=False
      ).stdout.strip()
  )
  lines = [
      "# Flows and bridges: OT-CFM, SB-CFM, stochastic interpolants, DSBM / IMF",
      "",
      f"Commit `{commit}`, device `{jax.devices()[0].device_kind}` × {jax.device_count()}, "
      f"wall {wall:.0f} s{' (SMOKE: tiny settings, numbers meaningless)' if smoke else ''}.",
      "Command: `experiments/bridges_gpu.sh <fmnist dir> <classifier dir> <out dir>` "
      "(runs `experiments/bridges/run_all.py`).",
      "",
  ]
  if results.get("toys"):
    lines += [
        "## 2-D toys: I-CFM vs OT-CFM vs SB-CFM (batch 256, MLP 256×4)",
        "",
        "W2: exact (optimal assignment) between 1000 samples and 1000 held-out points; path "
        "length: mean Σ‖Δz‖ over the 100 Euler steps; straightness: mean displacement / length "
        "(1 = straight).",
        "",
        "| data | method | steps | W2 (100 Euler) | W2 (1 Euler) | path length | straightness |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["toys"]:
      lines.append(
          f"| {r['dataset']} | {r['method']} | {r['steps']} | {r['w2_100']:.3f} | "
          f"{r['w2_1']:.3f} | {r['path_length']:.3f} | {r['straightness']:.4f} |"
      )
    lines.append("")
  if results.get("gaussian"):
    lines += [
        "## DSBM-IMF against the closed-form Gaussian Schrödinger bridge",
        "",
        "π₀ = N(−0.1·1, I), π₁ = N(0.1·1, I), σ = 1; errors are per-dimension RMS (Frobenius / "
        "√d) of the sampled coupling (10k pairs, 20 Euler–Maruyama steps) against the closed form; "
        "the SB cross-covariance is (√5 − 1)/2·I = 0.618·I.",
        "",
        "| d | IMF iteration | net | mean₀ | mean₁ | cov₀ | cov₁ | cross-cov | diag(cross) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["gaussian"]:
      lines.append(
          f"| {r['dim']} | {r['iteration']} | {r['direction']} | {r['mean0']:.3f} | "
          f"{r['mean1']:.3f} | {r['cov0']:.3f} | {r['cov1']:.3f} | {r['cross_cov']:.3f} | "
          f"{r['cross_cov_diag_mean']:.3f} |"
      )
    lines.append("")
  if results.get("fmnist"):
    lines += [
        "## Fashion-MNIST: OT-CFM vs I-CFM (short training, batch 128, twin U-Net)",
        "",
        "FD-FMNIST of 2000 samples (biased upwards at this sample size; compare rows, not papers).",
        "",
        "| method | steps | train s | FD 1 NFE (Euler) | FD 4 NFE (Euler) | FD 35 NFE (Heun) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["fmnist"]:
      fd = lambda k: f"{r[k]:.2f}" if k in r else "—"  # pylint: disable=cell-var-from-loop
      lines.append(
          f"| {r['method']} | {r['steps']} | {r['train_s']:.0f} | {fd('fd_euler1')} | "
          f"{fd('fd_euler4')} | {fd('fd_heun35')} |"
      )
    lines += ["", "Samples: `fmnist_<method>_<sampler>.png`.", ""]
  if results.get("transfer"):
    r = results["transfer"][0]
    lines += [
        "## DSBM transfer between Fashion-MNIST class groups",
        "",
        f"Tops (0, 2, 4, 6) ↔ footwear (5, 7, 9), σ = 1, 2 IMF iterations, {r['steps']} steps in "
        "all: `transfer_footwear_to_tops.png` (top rows: test inputs, bottom rows: backward "
        "transfer), `transfer_tops_to_footwear.png` (forward).",
        "",
    ]
  if results.get("skipped"):
    lines += [f"Skipped (time budget or missing input): {', '.join(results['skipped'])}.", ""]
  with open(os.path.join(out, "bridges.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
  with open(os.path.join(out, "bridges.json"), "w", encoding="utf-8") as f:
    json.dump(results, f, indent=1, default=float)


def main(argv):
  del argv
  out, smoke = _OUT.value, _SMOKE.value
  os.makedirs(out, exist_ok=True)
  start = time.perf_counter()
  end = start + _BUDGET.value
  results, skipped = {}, []
  order = [s for s in ("toys", "gaussian", "fmnist", "transfer") if s in _SECTIONS.value]
  for i, name in enumerate(order):
    left = end - time.perf_counter()
    share = sum(SHARE[s] for s in order[i:])
    deadline = time.perf_counter() + left * SHARE[name] / share
    if left < 10:
      skipped.append(name)
      continue
    t0 = time.perf_counter()
    if name == "toys":
      results[name] = toys(smoke, deadline, out)
    elif name == "gaussian":
      results[name] = gaussian(smoke, deadline, out)
    elif name == "fmnist":
      results[name] = fmnist(smoke, deadline, out, _FMNIST.value, _CLASSIFIER.value)
    else:
      results[name] = transfer(smoke, deadline, out, _FMNIST.value)
    print(f"section {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    results["skipped"] = skipped
    _report(results, out, smoke, time.perf_counter() - start)  # after each section: partial
  results["skipped"] = skipped
  _report(results, out, smoke, time.perf_counter() - start)
  print(f"wrote {os.path.join(out, 'bridges.md')}")


if __name__ == "__main__":
  app.run(main)
