"""The runner end to end: sharding equivalence, exact resume after SIGKILL, unreadable checkpoints."""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from unittest import mock

import chex
import pytest
import jax
import numpy as np
import orbax.checkpoint as ocp

from diffjax import config_lib
from diffjax.train import checkpoint
from diffjax.train import experiment
from diffjax.train import loop
from diffjax.train import progress

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOY = "configs/edm/toy2d.py"


def _toy_config(**overrides):
  return config_lib.load(os.path.join(REPO, TOY), "smoke", overrides)


def _final_params(workdir):
  """Raw restore (no target) of the newest checkpoint's params, as NumPy."""
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints")) as mngr:
    restored = mngr.restore(mngr.latest_step())
  return mngr.latest_step(), jax.tree.map(np.asarray, restored["params"])


class ShardingTest(chex.TestCase):

  def test_eight_devices_equal_one_device(self):
    self.assertEqual(jax.device_count(), 8)
    config = _toy_config(**{"data.batch_size": 16})
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
      exp = experiment.Experiment(config, devices)
      state = jax.jit(exp.init_state, out_shardings=exp.state_sharding)()
      batch = exp.global_batch(0)
      self.assertEqual(len(batch["x"].sharding.device_set), len(devices))
      step = exp.jit_train_step()
      state, metrics = step(state, batch)
      state, metrics = step(state, exp.global_batch(1))
      results.append(jax.device_get((metrics["loss"], state.params, state.ema_params)))
    chex.assert_trees_all_close(results[0], results[1], rtol=2e-5, atol=2e-6)

  def test_step_compiles_once(self):
    exp = experiment.Experiment(_toy_config())
    state = jax.jit(exp.init_state, out_shardings=exp.state_sharding)()
    step = jax.jit(chex.assert_max_traces(exp.train_step, n=1), donate_argnums=0)
    for i in range(3):
      state, _ = step(state, exp.global_batch(i))


class StepsPerJitTest(chex.TestCase):

  def test_k_steps_per_jit_give_the_same_run(self):
    # k = 4: two full chunks; k = 3: chunks cut at the log step 4 (3 + 1 + 3 + 1).
    runs = {}
    for k in (1, 4, 3):
      workdir = self.create_tempdir().full_path
      config = _toy_config(
          **{
              "train.num_steps": 8,
              "train.ckpt_every_steps": 8,
              "train.log_every_steps": 4,
              "train.steps_per_jit": k,
          }
      )
      state = loop.train_and_evaluate(config, workdir)
      self.assertEqual(int(state.step), 8)
      runs[k] = jax.device_get((state.params, state.ema_params, state.opt_state))
    # Equal up to float32 rounding, not bitwise: XLA fuses the scanned step differently (measured:
    # 1 of 1024 entries off by 1.3e-7 after 8 steps), the tolerance of the 8-vs-1-device test.
    chex.assert_trees_all_close(runs[4], runs[1], rtol=2e-5, atol=2e-6)
    chex.assert_trees_all_close(runs[3], runs[1], rtol=2e-5, atol=2e-6)

  def test_chunks_end_at_every_hook(self):
    tcfg = _toy_config(
        **{
            "train.num_steps": 20,
            "train.ckpt_every_steps": 10,
            "train.log_every_steps": 4,
            "train.steps_per_jit": 8,
        }
    ).train
    chunks, step = [], 0
    runner = loop._Chunks(experiment.Experiment(_toy_config(), jax.devices()[:1]), tcfg)
    while step < 20:
      chunks.append(runner.length(step))
      step += chunks[-1]
    self.assertEqual(chunks, [4, 4, 2, 2, 4, 4])


class ProgressTest(chex.TestCase):

  def test_rate_and_eta_leave_the_first_steps_compile_out(self):
    # 100 s to compile and run step 1, then 10 steps in 1 s: 10 steps/s, not 11 / 101 s.
    clock = iter([0.0, 100.0, 100.0, 101.0])
    with mock.patch.object(progress.time, "perf_counter", lambda: next(clock)):
      prog = progress.Progress(self.create_tempdir().full_path, 1011, 0, enabled=False)
      prog.first_step_done(1)
      first = prog.log(1, {"loss": 2.0})
      line = prog.log(11, {"loss": 1.0})
    self.assertNotIn("ETA", first)
    self.assertIn("100.0s", first)
    self.assertIn("10.00 steps/s | ETA 1m40s", line)

  def test_token_samples_are_saved_as_decoded_text(self):
    path = os.path.join(self.create_tempdir().full_path, "s", "final.png")
    ids = np.array([[0, 1, 2], [2, 2, 0]], np.int32)
    got = progress.save_samples(ids, path, decode=lambda row: "".join("ab\nc"[i] for i in row))
    self.assertEqual(got, path[: -len(".png")] + ".txt")
    with open(got) as f:
      self.assertEqual(f.read(), "ab\n\n" + "-" * 80 + "\n\n\na\n")
    with self.assertRaisesRegex(ValueError, "decode"):
      progress.save_samples(ids, path)

  def test_scalars_survive_a_missing_tensorboardx(self):
    logdir = self.create_tempdir().full_path
    with mock.patch.dict(sys.modules, {"tensorboardX": None}):  # `import` raises ImportError
      writer = progress.scalar_writer(logdir)
    self.assertIsInstance(writer, progress.JsonlScalarWriter)
    writer.add_scalar("train/loss", 0.5, 3)
    writer.add_scalar("train/loss", 0.25, 4)
    writer.close()
    with open(os.path.join(logdir, "scalars.jsonl")) as f:
      rows = [json.loads(line) for line in f]
    self.assertEqual(
        rows,
        [
            {"tag": "train/loss", "value": 0.5, "step": 3},
            {"tag": "train/loss", "value": 0.25, "step": 4},
        ],
    )


def _traces(workdir):
  """The profiler traces (`*.xplane.pb`) that `train.profile_steps` wrote under workdir."""
  return glob.glob(os.path.join(workdir, "profile", "**", "*.xplane.pb"), recursive=True)


class ProfileTest(chex.TestCase):

  @pytest.mark.slow  # .ci/run runs the slow tests after the default suite
  def test_profile_steps_write_one_trace_of_the_loop(self):
    workdir = self.create_tempdir().full_path
    loop.train_and_evaluate(
        _toy_config(
            **{"train.num_steps": 5, "train.profile_steps": 2, "train.profile_from_step": 2}
        ),
        workdir,
    )
    traces = _traces(workdir)
    self.assertLen(traces, 1)

  def test_trace_into_the_last_step_is_closed_one_past_the_end_never_started(self):
    tcfg = _toy_config(**{"train.profile_steps": 10, "train.profile_from_step": 3}).train
    for first_step, last_step, want in ((0, 5, 1), (4, 8, 0)):
      workdir = self.create_tempdir().full_path
      profile = loop._Profile(tcfg, workdir, first_step)
      for step in range(first_step, last_step):
        profile.at(step, jax.numpy.ones(2))
      profile.at(last_step, jax.numpy.ones(2), final=True)
      got = _traces(workdir)
      self.assertLen(got, want)

  def test_negative_profile_steps_named(self):
    with self.assertRaisesRegex(ValueError, "train.profile_steps"):
      loop.train_and_evaluate(
          _toy_config(**{"train.profile_steps": -1}), self.create_tempdir().full_path
      )


class CheckpointTest(chex.TestCase):

  def test_unreadable_latest_checkpoint_is_skipped_not_deleted(self):
    workdir = self.create_tempdir().full_path
    config = _toy_config(**{"train.num_steps": 4, "train.keep_checkpoints": 5})
    loop.train_and_evaluate(config, workdir)
    ckpts = os.path.join(workdir, "checkpoints")
    self.assertEqual(sorted(os.listdir(ckpts)), ["2", "4"])
    # Corrupt every data file of step 4 and leave a half-written temporary step beside it.
    for path in glob.glob(os.path.join(ckpts, "4", "**", "*"), recursive=True):
      if os.path.isfile(path):
        with open(path, "wb") as f:
          f.write(b"\x00garbage")
    partial = os.path.join(ckpts, "6.orbax-checkpoint-tmp-1234")
    os.makedirs(partial)
    with self.assertLogs(level="WARNING") as logs:
      loop.train_and_evaluate(
          _toy_config(**{"train.num_steps": 6, "train.keep_checkpoints": 5}), workdir
      )
    self.assertTrue(
        any(re.search("step 4 .*is unreadable", line) for line in logs.output), logs.output
    )
    self.assertTrue(os.path.isdir(os.path.join(workdir, checkpoint.UNREADABLE, "4")))
    self.assertTrue(os.path.isdir(partial))  # nothing deleted but by the keep-K policy
    self.assertEqual(sorted(os.listdir(ckpts))[:3], ["2", "4", "6"])
    # Resumed from step 2, so it must equal an uninterrupted 6-step run.
    clean = self.create_tempdir().full_path
    loop.train_and_evaluate(_toy_config(**{"train.num_steps": 6}), clean)
    chex.assert_trees_all_close(
        _final_params(workdir)[1], _final_params(clean)[1], atol=1e-6, rtol=0
    )

  def test_init_from_takes_params_of_another_run_and_starts_at_step_0(self):
    teacher, student = self.create_tempdir().full_path, self.create_tempdir().full_path
    loop.train_and_evaluate(_toy_config(**{"train.num_steps": 2}), teacher)
    config = _toy_config()
    config.init_from = teacher
    exp = experiment.Experiment(config)
    with checkpoint.make_manager(student, config.train) as mngr:
      state = exp.restore_or_init(mngr, student)
    self.assertEqual(int(jax.device_get(state.step)), 0)
    chex.assert_trees_all_close(jax.tree.map(np.asarray, state.params), _final_params(teacher)[1])
    self.assertEqual(sorted(os.listdir(os.path.join(teacher, "checkpoints"))), ["2"])


def _cli(workdir, *flags, **popen_kwargs):
  cmd = [
      sys.executable,
      "-m",
      "diffjax.main",
      f"--config={TOY}:smoke",
      f"--workdir={workdir}",
      *flags,
  ]
  return subprocess.Popen(
      cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen_kwargs
  )


class KillTest(chex.TestCase):

  @pytest.mark.slow  # three CLI runs (~40 CPU-s); .ci/run runs the slow tests after the default ones
  def test_sigkill_midway_then_rerun_equals_uninterrupted(self):
    base = self.create_tempdir().full_path
    flags = [
        "--config.train.num_steps=120",
        "--config.train.ckpt_every_steps=10",
        "--config.train.log_every_steps=50",
    ]
    killed, clean = os.path.join(base, "killed"), os.path.join(base, "clean")
    proc = _cli(killed, *flags)
    ckpts = os.path.join(killed, "checkpoints")
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
      steps = [int(d) for d in os.listdir(ckpts) if d.isdigit()] if os.path.isdir(ckpts) else []
      if steps and max(steps) >= 20:
        os.kill(proc.pid, signal.SIGKILL)
        break
      time.sleep(0.01)
    out = proc.communicate()[0]
    self.assertEqual(
        proc.returncode, -signal.SIGKILL, f"run was not killed mid-way:\n{out[-3000:]}"
    )
    stopped_at = max(int(d) for d in os.listdir(ckpts) if d.isdigit())
    self.assertLess(stopped_at, 120)
    outputs = {}
    for workdir in (killed, clean):
      proc = _cli(workdir, *flags)
      outputs[workdir] = proc.communicate()[0]
      self.assertEqual(proc.returncode, 0, outputs[workdir][-3000:])
    self.assertIn(f"at step {stopped_at}", outputs[killed])
    self.assertNotIn("resumed", outputs[clean])
    (s1, p1), (s2, p2) = _final_params(killed), _final_params(clean)
    self.assertEqual((s1, s2), (120, 120))
    chex.assert_trees_all_close(p1, p2, atol=1e-6, rtol=0)

  def test_sigterm_saves_at_the_current_step_and_rerun_resumes(self):
    workdir = self.create_tempdir().full_path
    flags = [
        "--config.train.num_steps=3000",
        "--config.train.ckpt_every_steps=100000",
        "--config.train.log_every_steps=20",
    ]
    proc = _cli(workdir, *flags)
    lines = []
    for line in proc.stdout:  # wait until training is under way, then ask it to stop
      lines.append(line)
      if "step 40/3000" in line:
        proc.send_signal(signal.SIGTERM)
        break
    out = "".join(lines) + proc.communicate()[0]
    self.assertEqual(proc.returncode, 0, out[-3000:])
    saved = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
    self.assertEqual(len(saved), 1, saved)  # only the preemption save: no periodic one was due
    self.assertTrue(40 <= saved[0] < 3000, saved)
    self.assertIn(f"stopping at step {saved[0]} after a preemption signal", out)
    proc = _cli(workdir, f"--config.train.num_steps={saved[0] + 20}", *flags[1:])
    out = proc.communicate()[0]
    self.assertEqual(proc.returncode, 0, out[-3000:])
    self.assertIn(f"at step {saved[0]}", out)
    self.assertEqual(_final_params(workdir)[0], saved[0] + 20)
