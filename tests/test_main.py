"""The CLI fails fast with one line `error: ...` naming the problem (no traceback): unknown keys,
wrong types, missing config files, data or checkpoints, bad config args, an unwritable workdir."""

import os
import re
import subprocess
import sys

import chex
import pytest
from absl.testing import parameterized

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY = "configs/edm/toy2d.py:smoke"
_ABSL_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")


def _run(workdir, config, *flags):
  cmd = [sys.executable, "-m", "diffjax.main", f"--config={config}", f"--workdir={workdir}", *flags]
  env = dict(os.environ)
  env.pop("DIFFJAX_TRACEBACK", None)
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
  return proc.returncode, proc.stdout, proc.stderr


class CliErrorTest(chex.TestCase, parameterized.TestCase):

  def assertOneErrorLine(self, rc, stderr, needle):
    """Exit status 1 and, log lines aside, one line `error: ...` with `needle` in it."""
    self.assertEqual(rc, 1, stderr[-3000:])
    self.assertNotIn("Traceback", stderr)
    lines = [line for line in stderr.splitlines() if line and not _ABSL_LOG_LINE.match(line)]
    self.assertLen(lines, 1, stderr[-3000:])
    self.assertTrue(lines[0].startswith("error: "), lines)
    self.assertIn(needle, lines[0])

  def _fails_in_one_line(self, config, flags, *needles):
    workdir = self.create_tempdir().full_path
    rc, stdout, stderr = _run(workdir, config, *flags)
    for needle in needles:
      self.assertOneErrorLine(rc, stderr, needle)
    self.assertNotIn("step 1/", stdout + stderr)  # failed before training started
    self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints", "1")))

  # Problems in the flags or the config fail before JAX is imported (~0.1 s per CLI process).
  @parameterized.named_parameters(
      ("unknown_key", TOY, ["--config.does_not_exist=1"], "does_not_exist"),
      ("unknown_nested_key", TOY, ["--config.model.foo=1"], "model.foo"),
      ("wrong_type", TOY, ["--config.optim.lr=fast"], "optim.lr"),
      ("missing_config_file", "configs/edm/nope.py:smoke", [], "configs/edm/nope.py"),
      ("bad_config_arg", "configs/edm/toy2d.py:smoke,sise=big", [], "'sise'"),
  )
  def test_fails_naming_the_problem_in_one_line(self, config, flags, needle):
    self._fails_in_one_line(config, flags, needle)

  @pytest.mark.slow  # a data-set error is raised after JAX's import (~3 CPU-s); .ci/run runs it
  def test_bad_data_name_in_one_line(self):
    self._fails_in_one_line(TOY, ["--config.data.name=nope"], "nope")

  def test_missing_data_is_named_with_how_to_get_it(self):
    self._fails_in_one_line(
        "configs/edm/fashion_mnist.py:smoke",
        ["--config.data.path=/nonexistent/fmnist"],
        "/nonexistent/fmnist",
        "make fashion-mnist",
    )

  def test_eval_without_checkpoint(self):
    workdir = self.create_tempdir().full_path
    rc, _, stderr = _run(workdir, TOY, "--mode=eval")
    self.assertOneErrorLine(rc, stderr, "no checkpoint")
    self.assertIn(workdir, stderr)

  def test_unwritable_workdir(self):
    blocker = self.create_tempfile().full_path  # a file where the workdir's parent should be
    rc, _, stderr = _run(os.path.join(blocker, "run"), TOY)
    self.assertOneErrorLine(rc, stderr, os.path.join(blocker, "run"))
    self.assertNotIn("training from step", stderr)


class CliLogTest(chex.TestCase):

  def test_train_log_is_short_and_the_first_eta_leaves_compile_out(self):
    rc, _, stderr = _run(self.create_tempdir().full_path, TOY, "--config.train.num_steps=3")
    self.assertEqual(rc, 0, stderr[-3000:])
    self.assertNotIn("orbax", stderr)  # orbax's INFO lines (half of `make demo`'s log) are off
    self.assertNotIn("Saving checkpoint", stderr)
    self.assertLess(len(stderr.splitlines()), 15, stderr)
    first = [line for line in stderr.splitlines() if "step 1/3" in line]
    self.assertLen(first, 1, stderr)
    self.assertNotIn("ETA", first[0])  # only compile has been timed so far: no rate to show
    self.assertIn("ETA", [line for line in stderr.splitlines() if "step 3/3" in line][0])
