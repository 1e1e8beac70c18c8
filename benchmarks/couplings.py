r"""Exact minibatch OT assignment: the on-device auction against SciPy on the host.

  python benchmarks/couplings.py --out benchmarks/results/couplings.md

Problem: OT-CFM's cost ‖x_i − ε_j‖² (divided by its maximum, as configs/ot_cfm/toy2d.py) between B
points of a 2-D toy (eight Gaussians, two moons; `diffjax.data.toy2d`, seed 0) and B standard
normal points. Each solver is jitted, compiled once, then timed over `--repeats` calls
(median); both must return assignments of the same total cost (the table's last column).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import couplings
from diffjax.data import toy2d


def _seconds(fn, cost, repeats):
  jax.block_until_ready(fn(cost))  # compile
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(cost))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  rows = []
  for name in ("eight_gaussians", "two_moons"):
    x = jnp.asarray(getattr(toy2d, name)(rng, args.batch), jnp.float32)
    eps = jnp.asarray(rng.standard_normal((args.batch, 2)), jnp.float32)
    cost = couplings.pairwise_sq_dists(x, eps)
    cost = cost / jnp.max(cost)
    row = {"data": name, "batch": args.batch}
    for key, fn in couplings.ASSIGNMENTS.items():
      jitted = jax.jit(fn)
      row[f"{key}_s"] = _seconds(jitted, cost, args.repeats)
      row[f"{key}_cost"] = float(couplings.assignment_cost(cost, jitted(cost)))
    rows.append(row)
    print(json.dumps(row))
  if args.out:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    device = jax.devices()[0]
    lines = [
        "# Exact minibatch OT assignment: auction (on device) vs SciPy (host)",
        "",
        f"- Command: `python benchmarks/couplings.py --batch {args.batch} --repeats "
        f"{args.repeats} --out {args.out}`",
        f"- Commit: `{commit}`; device: {device.platform} ({device.device_kind}), "
        f"{platform.processor() or platform.machine()}, jax {jax.__version__}",
        "- Median seconds per assignment after compilation; total cost of each assignment.",
        "",
        "| data | B | auction s | host (SciPy) s | ratio | auction cost | host cost |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
      lines.append(
          f"| {r['data']} | {r['batch']} | {r['auction_s']:.3f} | {r['host_s']:.4f} | "
          f"{r['auction_s'] / r['host_s']:.0f}× | {r['auction_cost']:.6f} | {r['host_cost']:.6f} |"
      )
    with open(args.out, "w") as f:
      f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  main()
