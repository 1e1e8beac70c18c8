r"""Micro-benchmark: FIR resampling and GroupNorm+SiLU, old vs new, jitted forward + backward.

  python benchmarks/resample_norm.py [--batch=512] [--dtype=bfloat16] [--iters=50] [--ops=...] \
      [--out=rows.jsonl]
  python benchmarks/resample_norm.py --tiny   # CPU smoke run: tiny shapes, 2 iterations

At EDM's CIFAR-10 DDPM++ activation shapes ([B, 32, 32, 256], [B, 16, 16, 256], [B, 8, 8, 256]) it
times, per call of y, vjp = jax.vjp(op, ...); vjp(random cotangent) under one jax.jit:
  * down/up-sampling, box (1, 1) and FIR (1, 3, 3, 1) taps: `layers._downsample_conv` /
    `_upsample_conv` (EDM's depthwise convolutions, the baseline) vs `layers.downsample` /
    `upsample` (reshape-mean / repeat, separable strided slices);
  * GroupNorm (32 groups) + SiLU: nn.GroupNorm then nn.silu (the baseline, fused_norm="none") vs
    `fused_norm.group_norm_silu` with impl "jnp", "pallas" and "pallas" with the jnp backward.
Each row is one JSON object: device, jax version, op, shape, dtype, impl, ms (median of --iters
timed calls after --warmup untimed ones), baseline_ms and speedup = baseline_ms / ms. On CPU the
Pallas kernels run in interpret mode, so their CPU numbers mean nothing.
"""

import argparse
import json
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffjax.models import fused_norm, layers

PAPER_SHAPES = ((32, 32, 256), (16, 16, 256), (8, 8, 256))  # per-example [H, W, C], DDPM++ CIFAR-10
TINY_SHAPES = ((8, 8, 16), (4, 4, 16))
NUM_GROUPS, EPS = 32, 1e-6


def _time_ms(fn, args, iters: int, warmup: int) -> float:
  """Median milliseconds per fn(*args) call (each waited for), after `warmup` untimed calls."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def _fwd_bwd(op):
  """jit of (x, cotangent, *params) -> (op(x, *params), its VJP at the cotangent)."""

  def run(x, ct, *params):
    y, vjp = jax.vjp(op, x, *params)
    return y, vjp(ct)

  return jax.jit(run)


def _plain_norm_silu(x, gamma, beta, groups=NUM_GROUPS):
  norm = nn.GroupNorm(num_groups=groups, epsilon=EPS, dtype=x.dtype)
  return nn.silu(norm.apply({"params": {"scale": gamma, "bias": beta}}, x))


def cases(groups: int):
  """(op name, baseline, {impl: function}); functions take x (and GroupNorm's gamma, beta)."""
  fused = lambda **kw: lambda x, g, b: fused_norm.group_norm_silu(x, g, b, groups, EPS, **kw)
  out = []
  for name, taps in (("box", (1, 1)), ("fir", (1, 3, 3, 1))):
    out.append(
        (
            f"downsample_{name}",
            lambda x, t=taps: layers._downsample_conv(x, t),
            {"new": lambda x, t=taps: layers.downsample(x, t)},
        )
    )
    out.append(
        (
            f"upsample_{name}",
            lambda x, t=taps: layers._upsample_conv(x, t),
            {"new": lambda x, t=taps: layers.upsample(x, t)},
        )
    )
  out.append(
      (
          "group_norm_silu",
          lambda x, g, b: _plain_norm_silu(x, g, b, groups),
          {
              "jnp": fused(impl="jnp"),
              "pallas": fused(impl="pallas"),
              "pallas_jnp_backward": fused(impl="pallas", pallas_backward=False),
          },
      )
  )
  return out


def measure(
    shapes,
    *,
    batch: int,
    dtype: str,
    iters: int,
    warmup: int,
    groups: int = NUM_GROUPS,
    ops: tuple[str, ...] | None = None,
):
  """One row per (op, shape, impl) as described in the module docstring; ops None = all."""
  rng = np.random.default_rng(0)
  base = {
      "device": jax.devices()[0].device_kind,
      "backend": jax.default_backend(),
      "jax": jax.__version__,
      "dtype": dtype,
  }
  rows = []
  for h, w, c in shapes:
    x = jnp.asarray(rng.standard_normal((batch, h, w, c)), dtype)
    gamma = jnp.asarray(1.0 + 0.1 * rng.standard_normal(c), jnp.float32)
    beta = jnp.asarray(0.1 * rng.standard_normal(c), jnp.float32)
    for op, baseline, impls in cases(groups):
      if ops is not None and op not in ops:
        continue
      params = (gamma, beta) if op == "group_norm_silu" else ()
      out_shape = jax.eval_shape(baseline, x, *params)
      ct = jnp.asarray(rng.standard_normal(out_shape.shape), out_shape.dtype)
      args = (x, ct, *params)
      baseline_ms = _time_ms(_fwd_bwd(baseline), args, iters, warmup)
      row = dict(base, op=op, shape=[batch, h, w, c])
      rows.append(dict(row, impl="baseline", ms=baseline_ms, baseline_ms=baseline_ms, speedup=1.0))
      for impl, fn in impls.items():
        if impl.startswith("pallas") and not fused_norm.pallas_supported(x.shape, groups):
          continue
        ms = _time_ms(_fwd_bwd(fn), args, iters, warmup)
        rows.append(dict(row, impl=impl, ms=ms, baseline_ms=baseline_ms, speedup=baseline_ms / ms))
  return rows


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--iters", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--tiny", action="store_true", help="tiny shapes, batch 2, 2 iterations")
  parser.add_argument("--ops", default=None, help="comma-separated subset, e.g. upsample_fir")
  parser.add_argument("--out", default=None, help="also append the JSON rows to this file")
  args = parser.parse_args(argv)
  if args.tiny:
    shapes, args.batch, args.iters, args.warmup, groups = TINY_SHAPES, 2, 2, 1, 4
  else:
    shapes, groups = PAPER_SHAPES, NUM_GROUPS
  rows = measure(
      shapes,
      batch=args.batch,
      dtype=args.dtype,
      iters=args.iters,
      warmup=args.warmup,
      groups=groups,
      ops=None if args.ops is None else tuple(args.ops.split(",")),
  )
  lines = [json.dumps(r) for r in rows]
  print("\n".join(lines))
  if args.out:
    with open(args.out, "a") as f:
      f.write("\n".join(lines) + "\n")
  return rows


if __name__ == "__main__":
  main(sys.argv[1:])
