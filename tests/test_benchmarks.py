"""The benchmark scripts still run (tiny sizes; they measure speed, these tests assert none)."""

import gzip
import importlib.util
import json
import os

import numpy as np
import pytest
from absl.testing import absltest

from diffjax import config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(REPO, "benchmarks", name + ".py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


class TrainThroughputTest(absltest.TestCase):

  def test_measures_the_three_rates(self):
    bench = _load("train_throughput")
    config = config_lib.load(os.path.join(REPO, "configs", "edm", "toy2d.py"), "smoke")
    r = bench.measure(config, steps=2, sample_batch=16, forward_calls=2)
    for key in ("runner_steps_per_s", "device_batch_steps_per_s", "forward_images_per_s"):
      self.assertTrue(np.isfinite(r[key]) and r[key] > 0, key)
    self.assertTrue(0.0 <= r["input_share"] < 1.0)
    self.assertEqual(r["sample_batch"], 16)

  def test_token_methods_have_step_rates_only(self):
    """Discrete diffusion has no σ-frame denoiser: step rates, and no forward rate."""
    bench = _load("train_throughput")
    config = config_lib.load(os.path.join(REPO, "configs", "mdlm", "shakespeare.py"), "smoke")
    r = bench.measure(config, steps=2, sample_batch=16, forward_calls=2)
    self.assertTrue(np.isfinite(r["runner_steps_per_s"]) and r["runner_steps_per_s"] > 0)
    self.assertIsNone(r["forward_images_per_s"])

  def test_set_overrides_a_field_and_names_a_bad_one(self):
    bench = _load("train_throughput")
    sets = bench.parse_set(["model.dtype=float32", "data.batch_size=3"])
    self.assertEqual(sets, {"model.dtype": "float32", "data.batch_size": 3})
    path = os.path.join(REPO, "configs", "mdlm", "shakespeare.py")
    config = config_lib.load(path, "smoke", sets)
    self.assertEqual((config.model.dtype, config.data.batch_size), ("float32", 3))
    with self.assertRaisesRegex(ValueError, "no key 'nope'"):
      config_lib.load(path, "smoke", bench.parse_set(["model.nope=1"]))
    with self.assertRaisesRegex(ValueError, "KEY=VALUE"):
      bench.parse_set(["model.dtype"])


class TraceSummaryTest(absltest.TestCase):

  def _write(self, events):
    run = os.path.join(self.create_tempdir().full_path, "plugins", "profile", "r1")
    os.makedirs(run)
    with gzip.open(os.path.join(run, "perfetto_trace.json.gz"), "wt") as f:
      json.dump({"traceEvents": events}, f)
    return os.path.dirname(os.path.dirname(os.path.dirname(run)))

  def test_gpu_events_totals_by_hand(self):
    """Two steps of a GPU stream: kernels a (2 × 10 µs + 2 × 2 µs) and b (2 × 20 µs), b overlaps
    a by 5 µs once; host events and other processes are ignored."""
    meta = [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "process_name", "pid": 2, "args": {"name": "/device:GPU:0"}},
    ]
    gpu = [
        (0, 10, "a"),
        (5, 20, "b"),
        (30, 2, "a"),  # busy [0, 25) + [30, 32): 27 µs
        (100, 10, "a"),
        (110, 20, "b"),
        (140, 2, "a"),  # busy 10 + 20 + 2 = 32 µs
    ]
    events = meta + [
        {"ph": "X", "pid": 2, "tid": 7, "ts": ts, "dur": dur, "name": n} for ts, dur, n in gpu
    ]
    events.append({"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 1000, "name": "python"})
    s = _load("trace_summary").summarize(self._write(events), steps=2)
    self.assertEqual(s["source"], "gpu")
    self.assertAlmostEqual(s["busy_us"], (27 + 32) / 2)
    self.assertAlmostEqual(s["span_us"], 142 / 2)
    self.assertEqual(s["kernels"], 3)
    self.assertAlmostEqual(s["short_kernel_share"], 2 / 6)
    top = {r["name"]: r for r in s["top"]}
    self.assertEqual([r["name"] for r in s["top"]], ["b", "a"])
    self.assertAlmostEqual(top["b"]["us"], 20)
    self.assertAlmostEqual(top["a"]["mean_us"], 6)
    self.assertAlmostEqual(top["a"]["share"], 24 / 64)

  def test_cpu_trace_of_a_jitted_function(self):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    f = jax.jit(lambda x: jnp.tanh(x @ x).sum())
    x = jnp.ones((64, 64))
    f(x).block_until_ready()
    trace_dir = self.create_tempdir().full_path
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(2):
        f(x).block_until_ready()
    summary = _load("trace_summary")
    s = summary.summarize(trace_dir, steps=2)
    self.assertEqual(s["source"], "cpu")
    self.assertGreater(s["kernels"], 0)
    self.assertLessEqual(s["busy_us"], s["span_us"] + 1e-6)
    self.assertIn("| kernel |", summary.format_summary(s))


class ResampleNormTest(absltest.TestCase):

  def test_rows_for_each_impl(self):
    bench = _load("resample_norm")
    rows = bench.measure(
        [(4, 4, 8)],
        batch=2,
        dtype="float32",
        iters=1,
        warmup=0,
        groups=2,
        ops=("downsample_fir", "group_norm_silu"),
    )
    impls = [(r["op"], r["impl"]) for r in rows]
    self.assertEqual(
        impls,
        [
            ("downsample_fir", "baseline"),
            ("downsample_fir", "new"),
            ("group_norm_silu", "baseline"),
            ("group_norm_silu", "jnp"),
            ("group_norm_silu", "pallas"),
            ("group_norm_silu", "pallas_jnp_backward"),
        ],
    )
    for r in rows:
      self.assertTrue(np.isfinite(r["ms"]) and r["ms"] > 0 and r["speedup"] > 0)
      self.assertEqual(r["shape"], [2, 4, 4, 8])


class FlopCountTest(absltest.TestCase):
  """`throughput.jaxpr_flops` against hand counts (2·M·N·K per matmul, 2·out·window·C_in per
  convolution), through jit, scan and a gradient."""

  def test_hand_counts(self):
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

    count = _load("throughput").jaxpr_flops
    x, w = jnp.ones((4, 8, 3)), jnp.ones((3, 5))
    self.assertEqual(count(jax.make_jaxpr(jnp.matmul)(x, w)), 2 * 32 * 3 * 5)
    img, kernel = jnp.ones((2, 6, 6, 4)), jnp.ones((3, 3, 2, 8))  # HWIO, 2 groups of 2 inputs

    def conv(a, k):
      return jax.lax.conv_general_dilated(
          a, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=2
      )

    self.assertEqual(count(jax.make_jaxpr(jax.jit(conv))(img, kernel)), 2 * (2 * 36 * 8) * 9 * 2)

    def scanned(w, x):
      return jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=7)[0]

    square = jnp.ones((5, 5))
    self.assertEqual(count(jax.make_jaxpr(scanned)(square, jnp.ones((2, 5)))), 7 * 2 * 2 * 25)
    # Gradient of sum(x @ w) in w only: the forward matmul and one transposed product.
    grad = jax.grad(lambda w: jnp.sum(x.reshape(32, 3) @ w))
    self.assertEqual(count(jax.make_jaxpr(grad)(w)), 2 * (2 * 32 * 3 * 5))


class ThroughputTest(absltest.TestCase):

  @pytest.mark.slow  # .ci/run runs the slow tests after the default suite
  def test_tiny_rows(self):
    bench = _load("throughput")
    out = os.path.join(self.create_tempdir().full_path, "rows.jsonl")
    rows = bench.main(
        [
            "--tiny",
            "--config",
            "configs/edm/toy2d.py",
            "--samplers",
            "heun18",
            "--set",
            "optim.lr=3e-4",
            "--name",
            "toy",
            "--out",
            out,
        ]
    )
    self.assertEqual(
        [(r["kind"], r.get("sampler")) for r in rows], [("train", None), ("sample", "heun18")]
    )
    for r in rows:
      self.assertEqual(r["name"], "toy")
      self.assertEqual(r["overrides"], {"optim.lr": 3e-4})
      self.assertTrue(np.isfinite(r["images_per_s"]) and r["images_per_s"] > 0)
    self.assertGreater(rows[0]["flops_per_step"], 0)
    self.assertGreater(rows[0]["params"], 0)
    self.assertEqual(rows[1]["nfe"], 3)  # Heun, 2 steps under --tiny
    with open(out) as f:
      self.assertEqual([json.loads(line) for line in f], json.loads(json.dumps(rows)))

  def test_overrides_are_typed_and_unknown_keys_named(self):
    bench = _load("throughput")
    config = config_lib.load(os.path.join(REPO, "configs", "edm", "cifar10.py"))
    self.assertEqual(bench.apply_override(config, "data.batch_size=64"), ("data.batch_size", 64))
    self.assertEqual(config.data.batch_size, 64)
    bench.apply_override(config, "model.fused_norm=pallas")  # a model field the config may omit
    self.assertEqual(config.model.fused_norm, "pallas")
    with self.assertRaisesRegex(ValueError, "model.no_such_field"):
      bench.apply_override(config, "model.no_such_field=1")
    with self.assertRaisesRegex(ValueError, "nosection"):
      bench.apply_override(config, "nosection.key=1")
    with self.assertRaisesRegex(ValueError, "data.batch_size"):
      bench.apply_override(config, "data.batch_size=big")

  def test_edm_tiny_rows(self):
    edm = os.environ.get("DIFFJAX_EDM_DIR", os.path.join(REPO, ".edm"))
    if importlib.util.find_spec("torch") is None or not os.path.isdir(edm):
      self.skipTest("needs torch and an NVlabs/edm checkout (.edm or $DIFFJAX_EDM_DIR)")
    bench = _load("throughput")
    out = os.path.join(self.create_tempdir().full_path, "rows.jsonl")
    bench.main(
        [
            "--tiny",
            "--only_edm",
            "--compare-edm",
            edm,
            "--edm_inprocess",
            "--edm_modes",
            "fp32,sample_fp32",
            "--out",
            out,
        ]
    )
    with open(out) as f:
      rows = [json.loads(line) for line in f]
    self.assertEqual(
        [(r["framework"], r["kind"], r["edm_mode"]) for r in rows],
        [("edm", "train", "fp32"), ("edm", "sample", "sample_fp32")],
    )
    for r in rows:
      self.assertEqual(r["params"], 41_875)  # = diffjax's ddpmpp under config_lib.shrink
      self.assertTrue(np.isfinite(r["images_per_s"]) and r["images_per_s"] > 0)


if __name__ == "__main__":
  absltest.main()
