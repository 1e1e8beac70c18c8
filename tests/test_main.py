"""The CLI fails fast, naming the problem: unknown keys, wrong types, missing data, bad config args."""

import os
import subprocess
import sys

import chex
from absl.testing import parameterized

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir, config, *flags):
  cmd = [sys.executable, "-m", "diffjax.main", f"--config={config}", f"--workdir={workdir}", *flags]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  return proc.returncode, proc.stdout + proc.stderr


class CliErrorTest(chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ("unknown_key", "configs/edm/toy2d.py:smoke", ["--config.does_not_exist=1"], "does_not_exist"),
      ("unknown_nested_key", "configs/edm/toy2d.py:smoke", ["--config.optim.lrr=1e-3"], "lrr"),
      ("wrong_type", "configs/edm/toy2d.py:smoke", ["--config.optim.lr=fast"], "optim.lr"),
      ("bad_config_arg", "configs/edm/toy2d.py:smoke,sise=big", [], "'sise'"),
      ("bad_data_name", "configs/edm/toy2d.py:smoke", ["--config.data.name=nope"], "nope"),
      ("missing_data_path", "configs/edm/fashion_mnist.py:smoke",
       ["--config.data.path=/nonexistent/fmnist"], "/nonexistent/fmnist"),
  )
  def test_fails_naming_the_problem(self, config, flags, needle):
    workdir = self.create_tempdir().full_path
    rc, out = _run(workdir, config, *flags)
    self.assertNotEqual(rc, 0, out[-2000:])
    self.assertIn(needle, out)
    self.assertNotIn("step 1/", out)  # failed before training started
    self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints", "1")))

  def test_missing_data_says_how_to_get_it(self):
    rc, out = _run(self.create_tempdir().full_path, "configs/edm/fashion_mnist.py:smoke",
                   "--config.data.path=/nonexistent/fmnist")
    self.assertNotEqual(rc, 0)
    self.assertIn("make fashion-mnist", out)

  def test_eval_without_checkpoint(self):
    rc, out = _run(self.create_tempdir().full_path, "configs/edm/toy2d.py:smoke", "--mode=eval")
    self.assertNotEqual(rc, 0)
    self.assertIn("no checkpoint", out)
