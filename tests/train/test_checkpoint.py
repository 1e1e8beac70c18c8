"""Checkpoints a resume can trust: no non-finite state is saved or resumed from, checksums catch
bit-rot, and a checkpoint of other shapes is refused without moving anything."""

import glob
import json
import os
import shutil
import tempfile

import chex
import jax
import numpy as np
import orbax.checkpoint as ocp

from diffjax import config_lib
from diffjax.train import checkpoint
from diffjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# One device: compiles fastest, and its arrays are big enough to be stored outside orbax's
# CRC-checked b-tree nodes, where flipped bytes are restored as silent garbage.
ONE = jax.devices()[:1]


def _toy_config(**overrides):
  return config_lib.load(os.path.join(REPO, "configs/edm/toy2d.py"), "smoke", overrides)


def _steps(workdir, sub="checkpoints"):
  path = os.path.join(workdir, sub)
  return sorted(int(d) for d in os.listdir(path) if d.isdigit()) if os.path.isdir(path) else []


def _raw(workdir, step):
  """Raw restore (no target) of one checkpoint, as NumPy."""
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
    return jax.tree.map(np.asarray, mngr.restore(step))


def _finite(tree):
  return all(np.all(np.isfinite(x)) for x in jax.tree.leaves(tree) if x.dtype.kind == "f")


class CheckpointTrustTest(chex.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._base = tempfile.mkdtemp()
    loop.train_and_evaluate(_toy_config(**{"train.num_steps": 4}), cls._base, ONE)  # steps 2, 4

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls._base, ignore_errors=True)
    super().tearDownClass()

  def _workdir(self):
    """A copy of the 4-step run (checkpoints 2 and 4)."""
    workdir = os.path.join(self.create_tempdir().full_path, "run")
    shutil.copytree(self._base, workdir)
    return workdir

  def test_diverging_run_saves_no_non_finite_state(self):
    workdir = self._workdir()
    # Resumed with lr=1e6, it diverges within a few steps; the loss is checked at log steps only
    # (here: the end), the state at every save step.
    config = _toy_config(
        **{
            "train.num_steps": 12,
            "optim.lr": 1e6,
            "train.keep_checkpoints": 2,
            "train.log_every_steps": 100,
            "train.allow_new_config": True,
        }
    )
    with self.assertRaisesRegex(FloatingPointError, r"step (\d+) .*not saved") as ctx:
      loop.train_and_evaluate(config, workdir, ONE)
    message = str(ctx.exception)
    self.assertNotIn("\n", message)
    self.assertIn(workdir, message)
    bad_step = int(message.split("step ")[1].split()[0])
    saved = _steps(workdir)
    self.assertIn(4, saved)  # the good checkpoints were not rotated out by bad ones
    self.assertLess(max(saved), bad_step)
    for step in saved:
      self.assertTrue(_finite(_raw(workdir, step)), step)

  def test_non_finite_checkpoint_is_skipped_naming_its_step(self):
    workdir = self._workdir()
    state = _raw(workdir, 4)
    state["params"] = jax.tree.map(lambda x: np.full_like(x, np.nan), state["params"])
    state["step"] = np.asarray(6, state["step"].dtype)
    with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
      mngr.save(6, args=ocp.args.StandardSave(state))  # behind the runner's back
    with self.assertLogs(level="WARNING") as logs:
      loop.train_and_evaluate(
          _toy_config(**{"train.num_steps": 8, "train.keep_checkpoints": 5}), workdir, ONE
      )
    self.assertTrue(
        any("step 6" in line and "not finite" in line for line in logs.output), logs.output
    )
    self.assertEqual(_steps(workdir, checkpoint.UNREADABLE), [6])
    self.assertEqual(_steps(workdir), [2, 4, 6, 8])  # 6 saved again, from the resumed step 4
    self.assertTrue(_finite(_raw(workdir, 8)))

  def test_flipped_bytes_are_caught_by_the_checksums(self):
    workdir = self._workdir()
    data = glob.glob(os.path.join(workdir, "checkpoints/4/default/ocdbt.process_0/d/*"))
    path = max(data, key=os.path.getsize)
    with open(path, "r+b") as f:
      blob = bytearray(f.read())
      middle = len(blob) // 2
      blob[middle : middle + 10] = bytes(b ^ 0x5A for b in blob[middle : middle + 10])
      f.seek(0)
      f.write(blob)
    with self.assertLogs(level="INFO") as logs:
      loop.train_and_evaluate(
          _toy_config(**{"train.num_steps": 6, "train.keep_checkpoints": 5}), workdir, ONE
      )
    self.assertTrue(
        any("step 4" in line and "checksum" in line for line in logs.output), logs.output
    )
    self.assertTrue(
        any("resumed" in line and "step 2" in line for line in logs.output), logs.output
    )
    self.assertEqual(_steps(workdir, checkpoint.UNREADABLE), [4])

  def test_checkpoint_of_other_shapes_is_refused_and_nothing_moved(self):
    workdir = self._workdir()
    # The stored config says width 64 too: as if the code behind an unchanged config had changed.
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
      stored = json.load(f)
    stored["model"]["width"] = 64
    with open(path, "w") as f:
      json.dump(stored, f)
    before = sorted(os.listdir(workdir)), _steps(workdir)
    with self.assertRaisesRegex(ValueError, r"step 4 .*\(32,\).*\(64,\)") as ctx:
      loop.train_and_evaluate(
          _toy_config(**{"model.width": 64, "train.num_steps": 6}), workdir, ONE
      )
    self.assertNotIn("\n", str(ctx.exception))
    self.assertEqual((sorted(os.listdir(workdir)), _steps(workdir)), before)
    with open(path) as f:
      self.assertEqual(json.load(f), stored)

  def test_checkpoint_without_checksums_restores_with_a_warning(self):
    workdir = self._workdir()
    for path in glob.glob(os.path.join(workdir, "checkpoints", "*", checkpoint.CHECKSUMS)):
      os.remove(path)
    with self.assertLogs(level="INFO") as logs:
      loop.train_and_evaluate(_toy_config(**{"train.num_steps": 6}), workdir, ONE)
    self.assertTrue(
        any("step 4" in line and "no checksums" in line for line in logs.output), logs.output
    )
    self.assertTrue(any("resumed" in line and "step 4" in line for line in logs.output))

  def test_async_saves_write_checksums_of_what_was_saved(self):
    workdir = self.create_tempdir().full_path
    state = loop.train_and_evaluate(
        _toy_config(**{"train.num_steps": 4, "train.async_checkpoints": True}), workdir, ONE
    )
    for step in (2, 4):
      with open(os.path.join(workdir, "checkpoints", str(step), checkpoint.CHECKSUMS)) as f:
        sums = json.load(f)["arrays"]
      self.assertLen(sums, len(jax.tree.leaves(state)))
    self.assertEqual(sums, checkpoint.checksums(state))
