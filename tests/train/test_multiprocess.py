"""Two real processes (`jax.distributed`, 4 CPU devices each, gloo collectives) train, resume,
evaluate and sample exactly as one process with 8 devices does: the multi-host code path (per-host
data rows, the lock and config.json on process 0, orbax's multi-process checkpoints, SPMD sampling)
run for real, on one machine, with OT-CFM's global-batch coupling on the host."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from absl.testing import absltest

from diffjax import config_lib
from diffjax import main as main_lib
from diffjax.train import evaluate
from diffjax.train import experiment
from diffjax.train import inference
from diffjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# OT-CFM: besides the runner, its exact coupling over the global batch is a host callback
# (`core.couplings.host_assignment`) that both processes must answer identically.
TOY = "configs/ot_cfm/toy2d.py"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _two_processes(workdir: str, mode: str, num_steps: int) -> list[str]:
  """Runs `--mode=mode` as two processes of 4 CPU devices each; returns their logs."""
  port = _free_port()
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
      "--xla_force_host_platform_device_count=8", "--xla_force_host_platform_device_count=4"
  )
  procs = []
  for pid in range(2):
    cmd = [
        sys.executable,
        "-m",
        "diffjax.main",
        f"--config={TOY}:smoke",
        f"--workdir={workdir}",
        f"--mode={mode}",
        f"--config.train.num_steps={num_steps}",
        "--config.runtime.distributed=True",
        f"--config.runtime.coordinator_address=localhost:{port}",
        "--config.runtime.num_processes=2",
        f"--config.runtime.process_id={pid}",
    ]
    procs.append(
        subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    )
  logs = [p.communicate(timeout=240)[0] for p in procs]
  for pid, (p, log) in enumerate(zip(procs, logs)):
    assert p.returncode == 0, f"process {pid} failed:\n{log[-3000:]}"
  return logs


def _params(workdir: str, num_steps: int):
  """(step, (params, ema_params)) of the newest checkpoint, restored in this 8-device process
  (also when two processes of 4 devices saved it)."""
  _, state, step = experiment.restore_for_inference(_config(num_steps), workdir)
  return step, jax.tree.map(np.asarray, (state.params, state.ema_params))


def _config(num_steps: int):
  return config_lib.load(os.path.join(REPO, TOY), "smoke", {"train.num_steps": num_steps})


class MultiProcessTest(absltest.TestCase):

  @pytest.mark.slow  # .ci/run runs the slow tests after the default suite
  def test_two_processes_train_like_one_with_eight_devices(self):
    self.assertEqual(jax.device_count(), 8)
    one, two = self.create_tempdir().full_path, self.create_tempdir().full_path
    loop.train_and_evaluate(_config(2), one)
    logs = _two_processes(two, "train", 2)
    self.assertIn("2 processes", logs[0])
    self.assertIn("step 2/2", logs[0])  # process 0 reports progress ...
    self.assertNotIn("step 2/2", logs[1])  # ... the others stay quiet
    (s1, p1), (s2, p2) = _params(one, 2), _params(two, 2)
    self.assertEqual((s1, s2), (2, 2))
    # The same global batches and all-reduced gradients: equal up to the order of float sums.
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p1, p2)
    self.assertEqual(sorted(os.listdir(two)), ["checkpoints", "config.json", "tb"])  # no lock left

  @pytest.mark.slow
  def test_two_processes_resume_evaluate_and_sample_like_one(self):
    one, two = self.create_tempdir().full_path, self.create_tempdir().full_path
    loop.train_and_evaluate(_config(2), one)
    loop.train_and_evaluate(_config(4), one)
    evaluate.evaluate(_config(4), one)
    inference.sample(_config(4), one)
    _two_processes(two, "train", 2)
    logs = _two_processes(two, "train", 4)
    self.assertIn("resumed from", logs[1])
    _two_processes(two, "eval", 4)
    _two_processes(two, "sample", 4)
    (s1, p1), (s2, p2) = _params(one, 4), _params(two, 4)
    self.assertEqual((s1, s2), (4, 4))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p1, p2)
    metrics = []
    for w in (one, two):
      with open(os.path.join(w, "eval", "metrics_00000004.json")) as f:
        metrics.append(json.load(f))
    self.assertEqual(metrics[0].keys(), metrics[1].keys())
    for key in metrics[0]:
      self.assertAlmostEqual(metrics[0][key], metrics[1][key], delta=1e-4 * abs(metrics[0][key]))
    samples = [
        np.load(os.path.join(w, "samples", "final_00000004.npz"))["samples"] for w in (one, two)
    ]
    np.testing.assert_allclose(
        samples[0], samples[1], rtol=1e-4, atol=1e-4 * np.abs(samples[0]).max()
    )


class RuntimeConfigTest(absltest.TestCase):

  def test_process_id_outside_the_process_count_is_named(self):
    runtime = config_lib.base().runtime
    runtime.update(distributed=True, num_processes=2, process_id=2)
    with self.assertRaisesRegex(ValueError, r"runtime.process_id=2 must lie in \[0, .*=2\)"):
      main_lib.initialize_distributed(runtime)


if __name__ == "__main__":
  absltest.main()
