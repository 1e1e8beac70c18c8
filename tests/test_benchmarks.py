"""The benchmark scripts still run (tiny sizes; they measure speed, these tests assert none)."""

import importlib.util
import os

import numpy as np
from absl.testing import absltest

from diffjax import config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks", name + ".py"))
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


class ResampleNormTest(absltest.TestCase):

  def test_rows_for_each_impl(self):
    bench = _load("resample_norm")
    rows = bench.measure([(4, 4, 8)], batch=2, dtype="float32", iters=1, warmup=0, groups=2,
                         ops=("downsample_fir", "group_norm_silu"))
    impls = [(r["op"], r["impl"]) for r in rows]
    self.assertEqual(impls, [("downsample_fir", "baseline"), ("downsample_fir", "new"),
                             ("group_norm_silu", "baseline"), ("group_norm_silu", "jnp"),
                             ("group_norm_silu", "pallas"),
                             ("group_norm_silu", "pallas_jnp_backward")])
    for r in rows:
      self.assertTrue(np.isfinite(r["ms"]) and r["ms"] > 0 and r["speedup"] > 0)
      self.assertEqual(r["shape"], [2, 4, 4, 8])


if __name__ == "__main__":
  absltest.main()
