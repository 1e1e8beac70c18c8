r"""Where a config's training and sampling time goes: runner step rate with and without the input
pipeline, and the network's forward rate at the sampling batch.

  python benchmarks/train_throughput.py --config=configs/edm/fashion_mnist.py \
      [--data_path=/usr/share/datasets/fashion-mnist/] [--steps=200] [--sample_batch=2000] \
      [--trace_dir=/tmp/trace] [--out=benchmarks/results/train_throughput.md]

Three numbers on one process, each after a compile-and-warm-up pass:
  * steps/s, runner: `Experiment.jit_train_step` fed by `Experiment.global_batch(step)`, as in
    `train_and_evaluate` (host batch assembly + transfer + the jitted step, dispatched
    asynchronously, one device sync at the end);
  * steps/s, device batch: the same jitted step on one batch already on the device: the compute
    bound of the step. A large gap to the runner's figure means the input pipeline or Python
    dispatch limits training;
  * images/s, network forward: one denoiser call (the sampler's unit of work) at `sample_batch`,
    timed over `--forward_calls` calls in a `lax.fori_loop`.
Without `--data_path`, Fashion-MNIST-shaped configs read 4096 random IDX images written to a
temporary folder (same loader, same shapes). `--trace_dir` writes a `jax.profiler` trace of 11
device-batch steps (view it in Perfetto / TensorBoard) and prints, and writes as
`<trace_dir>/summary.json`, where their device time goes per step (benchmarks/trace_summary.py).
`--set model.dtype=float32` (repeatable) overrides any config field (a literal: number, bool, None
or string). Report GPU numbers with the device name this prints; compare configs only within one
run of this script on one machine.
"""

import argparse
import ast
import json
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import config_lib
from diffjax.data import fashion_mnist
from diffjax.train import experiment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import trace_summary  # pylint: disable=g-import-not-at-top,wrong-import-position

TRACE_STEPS = 10  # timed device-batch steps in the --trace_dir trace (plus _timed's warm-up step)


def _timed(fn, repeats: int) -> float:
  """Seconds per call of fn() (which returns device arrays), after one untimed warm-up call."""
  jax.block_until_ready(fn())
  start = time.perf_counter()
  out = None
  for _ in range(repeats):
    out = fn()
  jax.block_until_ready(out)
  return (time.perf_counter() - start) / repeats


def measure(
    config, *, steps: int, sample_batch: int, forward_calls: int, trace_dir: str | None = None
) -> dict:
  """The three rates of the module docstring, and the device they were measured on."""
  exp = experiment.Experiment(config, jax.devices()[:1])
  step_fn = exp.jit_train_step()
  state = jax.jit(exp.init_state, out_shardings=exp.state_sharding)()
  counter = iter(range(10**9))

  def runner_step():
    nonlocal state
    state, metrics = step_fn(state, exp.global_batch(next(counter)))
    return metrics

  runner = _timed(runner_step, steps)
  fixed = exp.global_batch(0)

  def device_step():
    nonlocal state
    state, metrics = step_fn(state, fixed)
    return metrics

  compute = _timed(device_step, steps)
  if trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      _timed(device_step, TRACE_STEPS)

  device = jax.devices()[0]
  out = {
      "device": f"{device.device_kind} ({jax.default_backend()})",
      "batch": int(config.data.batch_size),
      "runner_steps_per_s": 1.0 / runner,
      "device_batch_steps_per_s": 1.0 / compute,
      "input_share": max(0.0, 1.0 - compute / runner),
      "sample_batch": sample_batch,
      "forward_images_per_s": None,
  }
  method, params = exp.method, state.ema_params
  if not method.has_denoiser:  # token Methods (discrete diffusion, AR): step rates only
    return out
  den = method.denoiser(params)
  shape = (sample_batch,) + tuple(exp.dataset.element_shape)

  @jax.jit
  def forward(x):  # forward_calls denoiser calls at σ = 1, chained so none can be skipped
    return jax.lax.fori_loop(0, forward_calls, lambda _, z: den(z, jnp.ones(shape[:1])), x)

  x = jax.random.normal(jax.random.key(0), shape)
  per_call = _timed(lambda: forward(x), 3) / forward_calls
  return dict(out, forward_images_per_s=sample_batch / per_call)


def parse_set(items: list[str]) -> dict:
  """{"KEY": VALUE} from "KEY=VALUE" items (dotted KEY; VALUE a Python literal, else a string), for
  `config_lib.load(..., overrides=...)`, which names a KEY the config does not have.

  Raises:
    ValueError: naming an item without "=".
  """
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep:
      raise ValueError(f"--set {item!r}: expected KEY=VALUE")
    try:
      out[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key] = text
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--config", required=True)
  parser.add_argument("--arg", default=None, help="config arg, as after ':' in --config")
  parser.add_argument("--data_path", default=None)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--sample_batch", type=int, default=2000)
  parser.add_argument("--forward_calls", type=int, default=20)
  parser.add_argument("--batch", type=int, default=None, help="override data.batch_size")
  parser.add_argument("--dtype", default=None, help="override model.dtype (e.g. float32)")
  parser.add_argument("--dropout", type=float, default=None, help="override model.dropout")
  parser.add_argument(
      "--prng_impl",
      default=None,
      help="jax_default_prng_impl (default threefry2x32; rbg, unsafe_rbg)",
  )
  parser.add_argument("--trace_dir", default=None)
  parser.add_argument("--set", action="append", default=[], help="KEY=VALUE config override")
  parser.add_argument("--out", default=None, help="append a markdown row here")
  args = parser.parse_args()

  if args.prng_impl:  # before any key is made
    jax.config.update("jax_default_prng_impl", args.prng_impl)
  config = config_lib.load(args.config, args.arg, parse_set(args.set))
  if args.dropout is not None:
    config.model.dropout = args.dropout
  if args.batch:
    config.data.batch_size = args.batch
  if args.dtype:
    config.model.dtype = args.dtype
  if config.data.name == "fashion_mnist":
    config.data.path = args.data_path or fashion_mnist.write_fake(
        tempfile.mkdtemp(prefix="fmnist_fake_"), num_examples=4096
    )
  elif args.data_path:
    config.data.path = args.data_path
  r = measure(
      config,
      steps=args.steps,
      sample_batch=args.sample_batch,
      forward_calls=args.forward_calls,
      trace_dir=args.trace_dir,
  )
  if args.trace_dir:
    summary = trace_summary.summarize(args.trace_dir, steps=TRACE_STEPS + 1)
    print(trace_summary.format_summary(summary))
    with open(os.path.join(args.trace_dir, "summary.json"), "w") as f:
      json.dump(summary, f, indent=1)
  fwd = r["forward_images_per_s"]
  fwd = "—" if fwd is None else f"{fwd:.0f} ({r['sample_batch']})"
  name = args.config + (f":{args.arg}" if args.arg else "")
  name += "".join(
      f" {k}={v}"
      for k, v in (
          ("batch", args.batch),
          ("dtype", args.dtype),
          ("dropout", args.dropout),
          ("prng", args.prng_impl),
      )
      if v is not None
  ) + "".join(f" {item}" for item in args.set)
  print(
      f"{name} on {r['device']}: batch {r['batch']}: runner {r['runner_steps_per_s']:.1f} "
      f"steps/s, device batch {r['device_batch_steps_per_s']:.1f} steps/s (input pipeline and "
      f"dispatch {100 * r['input_share']:.0f} % of a runner step); forward images/s (batch): "
      f"{fwd}"
  )
  if args.out:
    new = not os.path.exists(args.out)
    with open(args.out, "a") as f:
      if new:
        f.write(
            "| config | device | batch | runner steps/s | device-batch steps/s | "
            "input share | forward images/s (batch) | jax |\n"
            "|---|---|---|---|---|---|---|---|\n"
        )
      f.write(
          f"| `{name}` | {r['device']} | {r['batch']} | {r['runner_steps_per_s']:.1f} | "
          f"{r['device_batch_steps_per_s']:.1f} | {100 * r['input_share']:.0f} % | "
          f"{fwd} | {jax.__version__} |\n"
      )


if __name__ == "__main__":
  main()
