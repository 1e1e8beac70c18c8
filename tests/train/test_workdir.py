"""One run per workdir: another config is refused naming the keys (nothing is moved), and a lock
keeps a second training out."""

import json
import os
import socket
import subprocess

import chex
import jax

from diffjax import config_lib
from diffjax.train import checkpoint
from diffjax.train import loop
from diffjax.train import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ONE = jax.devices()[:1]


def _toy_config(**overrides):
  return config_lib.load(os.path.join(REPO, "configs/edm/toy2d.py"), "smoke", overrides)


def _listing(workdir):
  return {
      d: sorted(os.listdir(os.path.join(workdir, d)))
      if os.path.isdir(os.path.join(workdir, d))
      else None
      for d in os.listdir(workdir)
  }


def _read(path):
  with open(path) as f:
    return f.read()


class ConfigChangesTest(chex.TestCase):

  def test_keys_that_change_the_state_are_named_run_keys_are_not(self):
    stored = json.loads(json.dumps(_toy_config().to_dict(), default=str))
    config = _toy_config(
        **{
            "model.width": 64,
            "optim.lr": 1e-3,
            "train.num_steps": 99,
            "train.log_every_steps": 7,
            "eval.num_samples": 3,
            "sample.num_steps": 5,
            "mesh.shape": (8,),
        }
    )
    config.init_from = "/elsewhere"
    config.model.foo = 1
    self.assertEqual(
        workdir_lib.config_changes(stored, config),
        ["model.foo (absent) -> 1", "model.width 32 -> 64", "optim.lr 0.002 -> 0.001"],
    )
    self.assertEqual(workdir_lib.config_changes(stored, _toy_config()), [])

  def test_a_key_added_later_compares_as_its_default(self):
    """A config.json written before optim.flatten existed resumes under flatten=False only."""
    stored = json.loads(json.dumps(_toy_config().to_dict(), default=str))
    del stored["optim"]["flatten"]
    self.assertEqual(workdir_lib.config_changes(stored, _toy_config()), [])
    self.assertEqual(
        workdir_lib.config_changes(stored, _toy_config(**{"optim.flatten": True})),
        ["optim.flatten false -> true"],
    )


class OtherConfigTest(chex.TestCase):

  def test_other_config_is_refused_naming_the_keys_and_nothing_moved(self):
    workdir = self.create_tempdir().full_path
    loop.train_and_evaluate(_toy_config(), workdir, ONE)  # width 32, checkpoint 2
    before, stored = _listing(workdir), _read(os.path.join(workdir, "config.json"))
    wider = _toy_config(**{"model.width": 64, "train.num_steps": 4})
    with self.assertRaisesRegex(
        ValueError, r"another config: model\.width 32 -> 64; .*" r"allow_new_config=True"
    ) as ctx:
      loop.train_and_evaluate(wider, workdir, ONE)
    self.assertNotIn("\n", str(ctx.exception))
    self.assertEqual(_listing(workdir), before)
    self.assertEqual(_read(os.path.join(workdir, "config.json")), stored)
    # The override resumes under a new config, but never with a state of other shapes.
    wider.train.allow_new_config = True
    with self.assertRaisesRegex(ValueError, r"step 2 .*\(32,\).*\(64,\)"):
      loop.train_and_evaluate(wider, workdir, ONE)
    self.assertEqual(_listing(workdir), before)
    self.assertEqual(_read(os.path.join(workdir, "config.json")), stored)

  def test_allow_new_config_resumes_and_keeps_the_old_config(self):
    workdir = self.create_tempdir().full_path
    loop.train_and_evaluate(_toy_config(), workdir, ONE)
    stored = _read(os.path.join(workdir, "config.json"))
    config = _toy_config(**{"optim.lr": 1e-3, "train.num_steps": 4, "train.allow_new_config": True})
    with self.assertLogs(level="INFO") as logs:
      state = loop.train_and_evaluate(config, workdir, ONE)
    self.assertEqual(int(jax.device_get(state.step)), 4)
    self.assertTrue(any("resumed" in line and "step 2" in line for line in logs.output))
    self.assertEqual(_read(os.path.join(workdir, "config_until_step_2.json")), stored)
    with open(os.path.join(workdir, "config.json")) as f:
      self.assertEqual(json.load(f)["optim"]["lr"], 1e-3)
    self.assertEqual(checkpoint.saved_steps(workdir), [2, 4])


def _dead_pid():
  proc = subprocess.Popen(["true"])
  proc.wait()
  return proc.pid


class LockTest(chex.TestCase):

  def _lock(self, workdir, pid, host=None, **extra):
    with open(os.path.join(workdir, workdir_lib.LOCK), "w") as f:
      json.dump({"pid": pid, "host": host or socket.gethostname(), **extra}, f)

  def test_a_live_lock_refuses_a_second_training_in_one_line(self):
    workdir = self.create_tempdir().full_path
    self._lock(workdir, os.getppid())  # a process that is alive: the one that started the tests
    lock = _read(os.path.join(workdir, workdir_lib.LOCK))
    with self.assertRaisesRegex(ValueError, rf"in use by pid {os.getppid()} ") as ctx:
      loop.train_and_evaluate(_toy_config(), workdir, ONE)
    self.assertNotIn("\n", str(ctx.exception))
    self.assertEqual(_read(os.path.join(workdir, workdir_lib.LOCK)), lock)
    self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints")))

  def test_lock_is_held_inside_and_released_after_also_on_errors(self):
    workdir = self.create_tempdir().full_path
    path = os.path.join(workdir, workdir_lib.LOCK)
    with workdir_lib.lock(workdir):
      with open(path) as f:
        self.assertEqual(json.load(f)["pid"], os.getpid())
      with self.assertRaisesRegex(ValueError, "in use"):
        with workdir_lib.lock(workdir):
          pass
      self.assertTrue(os.path.exists(path))  # the refused second holder leaves the lock alone
    self.assertFalse(os.path.exists(path))
    with self.assertRaisesRegex(RuntimeError, "boom"):
      with workdir_lib.lock(workdir):
        raise RuntimeError("boom")
    self.assertFalse(os.path.exists(path))

  def test_a_stale_lock_is_taken_over_with_a_warning(self):
    workdir = self.create_tempdir().full_path
    pid = _dead_pid()
    self._lock(workdir, pid)
    with self.assertLogs(level="WARNING") as logs:
      with workdir_lib.lock(workdir):
        with open(os.path.join(workdir, workdir_lib.LOCK)) as f:
          self.assertEqual(json.load(f)["pid"], os.getpid())
    self.assertTrue(any(f"stale lock of pid {pid}" in line for line in logs.output), logs.output)
    self.assertEqual(os.listdir(workdir), [])

  def test_a_lock_of_a_reused_pid_is_stale(self):
    workdir = self.create_tempdir().full_path
    # A live pid, but started at another time than the lock's holder: the pid was reused.
    self._lock(workdir, os.getppid(), started="1")
    with self.assertLogs(level="WARNING"):
      with workdir_lib.lock(workdir):
        pass
    self.assertEqual(os.listdir(workdir), [])

  def test_a_lock_of_another_host_is_refused(self):
    workdir = self.create_tempdir().full_path
    self._lock(workdir, _dead_pid(), host="elsewhere.example")
    with self.assertRaisesRegex(ValueError, "on elsewhere.example"):
      with workdir_lib.lock(workdir):
        pass
