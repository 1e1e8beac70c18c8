"""Every config under configs/ trains 2 steps as `:smoke` (plus each of its `SMOKE_ARGS`).

Configs are found by glob, so a new configs/<paper>/<dataset>.py is tested the day it lands. Six
Fashion-MNIST twins whose path a faster case already runs are slow-marked (`SLOW`; `make test-all`),
and every twin builds its Experiment in the default suite.
  * Fashion-MNIST and toy configs read small IDX files written here; they also resume to step 4,
    draw periodic sample pictures and run the evaluation hook.
  * TFDS configs (CIFAR-10, ImageNet-64, ...) run on `tfds.testing.mock_data` (random images of
    the data set's shape and labels, no download), resized to 8×8 by `config_lib.shrink`: 2 train
    steps, then what `--mode=sample` does from the checkpoint. Resume is covered above.
"""

import glob
import os

import chex
import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl.testing import parameterized

from diffjax import config_lib
from diffjax.data import fashion_mnist
from diffjax.train import evaluate
from diffjax.train import experiment
from diffjax.train import inference
from diffjax.train import loop

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(os.path.relpath(p, REPO)
                 for p in glob.glob(os.path.join(REPO, "configs", "*", "*.py")))
CASES = [(path, arg) for path in CONFIGS for arg in config_lib.smoke_args(os.path.join(REPO, path))]
# Configs that also run the whole loop contract on 8 devices (resume, periodic pictures and
# evaluation); every other config trains 2 steps, evaluates and samples on one device.
FULL_PATH = {p for p in CONFIGS if p.endswith("toy2d.py")} | {"configs/edm/fashion_mnist.py"}
# Fashion-MNIST twins whose Method path a faster smoke case already runs: their CIFAR-10 configs
# (same Method, schedule and sampler; the twin differs only by `config_lib.fashion_mnist_twin`'s
# shared protocol) and, for rectified flow, tests/test_reflow.py (that twin, 1-RF then reflow).
# The runner's bits/dim hook stays covered by the DDPM twin. Slow-marked (`make test-all`);
# test_every_twin_builds still builds each of them.
SLOW = {"configs/ddim/fashion_mnist.py", "configs/flow_matching/fashion_mnist.py",
        "configs/v_prediction/fashion_mnist.py", "configs/rectified_flow/fashion_mnist.py",
        "configs/vdm/fashion_mnist.py", "configs/iddpm/fashion_mnist.py"}


def _case_name(path: str, arg: str) -> str:
  """`ddpm_cifar10`, `score_sde_cifar10_variant_ve`: what `pytest -k` matches."""
  name = path[len("configs/"):-len(".py")].replace("/", "_")
  extra = [a.replace("=", "_").replace("/", "") for a in arg.split(",") if a != "smoke"]
  return "_".join([name] + extra)


def _is_tfds(config) -> bool:
  return config.data.name == "tfds" or str(config.data.name).startswith("tfds:")


def _check_finite_params(test, state):
  leaves = jax.tree.leaves(jax.device_get(state.params))
  test.assertTrue(all(np.all(np.isfinite(x)) for x in leaves))


class _Smoke:
  """What every smoke case runs (mixed into the two test classes below)."""

  def _smoke(self, path, arg):
    config = config_lib.load(os.path.join(REPO, path), arg)
    workdir = self.create_tempdir().full_path
    if _is_tfds(config):
      with tfds.testing.mock_data(num_examples=16):
        self._train_then_sample(config, workdir)
      return
    if config.data.name == "fashion_mnist":
      config.data.path = self.create_tempdir().full_path
      fashion_mnist.write_fake(config.data.path)
    if path in FULL_PATH:
      # The U-Net twin on a 2-device mesh: sharded all the same, with less SPMD compile and thread
      # contention than on 8 (48 s -> 40 s alone on this machine); the toy configs keep all 8.
      devices = jax.devices()[:2] if config.data.name == "fashion_mnist" else None
      self._train_resume_evaluate(config, workdir, devices)
    else:  # the other image twins: one device, train, evaluate where bits/dim are set, sample
      self._train_then_sample(config, workdir,
                              evaluate=bool(config.eval.get("bpd_num_examples", 0)))

  def _train_then_sample(self, config, workdir, evaluate=False):
    # One device: the 8-device sharding is exercised by the configs above, and an SPMD compile
    # for 8 devices costs about twice as much CPU time.
    devices = jax.devices()[:1]
    if config.sample.solver == "pc":
      # EDM-initialised networks output ~0 (last layer scaled by 1e-5), so the Langevin step
      # 2·(snr·‖z‖/‖score‖)² is unbounded before training: smoke-test the predictor path only.
      config.sample.solver_kwargs.n_corrector = 0
    state = loop.train_and_evaluate(config, workdir, devices)
    self.assertEqual(int(jax.device_get(state.step)), 2)
    self.assertEqual(os.listdir(os.path.join(workdir, "checkpoints")), ["2"])
    _check_finite_params(self, state)
    if evaluate:
      metrics = evaluate.evaluate(config, workdir, devices)
      self.assertIn("sliced_w2", metrics)
      if config.eval.get("bpd_num_examples", 0):
        self.assertTrue(np.isfinite(metrics["test_bpd"]))
    config.sample.num_samples = config.sample.batch_size  # one batch: what --mode=sample does
    samples = inference.sample(config, workdir, devices)
    shape = tuple(experiment.Experiment(config, devices).dataset.element_shape)
    self.assertEqual(samples.shape, (config.sample.num_samples,) + shape)
    if _is_tfds(config):
      self.assertEqual(shape, (config_lib.SMOKE_IMAGE_SIZE, config_lib.SMOKE_IMAGE_SIZE, 3))
    self.assertTrue(np.all(np.isfinite(samples)))

  def _train_resume_evaluate(self, config, workdir, devices=None):
    config.train.sample_every_steps = 2  # exercise the periodic hooks too
    config.train.eval_every_steps = 4
    state = loop.train_and_evaluate(config, workdir, devices)
    self.assertEqual(int(jax.device_get(state.step)), 2)
    want = len(devices) if devices is not None else jax.device_count()
    self.assertLen(jax.tree.leaves(state.params)[0].sharding.device_set, want)
    config.train.num_steps = 4
    state = loop.train_and_evaluate(config, workdir, devices)
    self.assertEqual(int(jax.device_get(state.step)), 4)
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, "checkpoints"))), ["2", "4"])
    self.assertEqual(sorted(os.listdir(os.path.join(workdir, "samples"))),
                     ["step_00000002.png", "step_00000004.png"])
    self.assertTrue(os.path.exists(os.path.join(workdir, "eval", "metrics_00000004.json")))
    self.assertTrue(os.path.exists(os.path.join(workdir, "eval", "samples_00000004.png")))
    _check_finite_params(self, state)
    samples = inference.sample(config, workdir, devices)
    shape = tuple(experiment.Experiment(config, devices).dataset.element_shape)
    self.assertEqual(samples.shape[1:], shape)
    self.assertTrue(np.all(np.isfinite(samples)))


class ConfigSmokeTest(_Smoke, chex.TestCase, parameterized.TestCase):

  def test_all_configs_listed(self):
    self.assertGreaterEqual(len(CONFIGS), 6, CONFIGS)
    self.assertIn(("configs/score_sde/cifar10.py", "variant=ve,smoke"), CASES)

  def test_tfds_configs_use_paper_data(self):
    """The paper configs (not only their smoke variants) read a TFDS set at full resolution."""
    sizes = {"cifar10": (None, (32, 32, 3)), "imagenet2012": (64, None)}
    for path in CONFIGS:
      config = config_lib.load(os.path.join(REPO, path))
      if not _is_tfds(config):
        continue
      with self.subTest(path=path):
        self.assertIn(config.data.tfds_name, sizes)
        self.assertEqual(config.data.get("image_size"), sizes[config.data.tfds_name][0])

  def test_every_twin_builds(self):
    """Every Fashion-MNIST twin (the slow-marked ones too) builds its data, Method, optimiser and
    state shapes: what a config typo would break before the first step."""
    data = self.create_tempdir().full_path
    fashion_mnist.write_fake(data)
    for path in (p for p in CONFIGS if p.endswith("fashion_mnist.py")):
      with self.subTest(path=path):
        config = config_lib.load(os.path.join(REPO, path), "smoke")
        config.data.path = data
        exp = experiment.Experiment(config, jax.devices()[:1])
        shapes = jax.eval_shape(exp.init_state)
        self.assertGreater(sum(x.size for x in jax.tree.leaves(shapes.params)), 10_000)

  @parameterized.named_parameters(*[(_case_name(p, a), p, a) for p, a in CASES if p not in SLOW])
  def test_smoke(self, path, arg):
    self._smoke(path, arg)


@pytest.mark.slow  # a class mark reaches the methods absl's parameterized generates
class SlowConfigSmokeTest(_Smoke, chex.TestCase, parameterized.TestCase):
  """The SLOW twins' smoke cases (`make test-all`)."""

  @parameterized.named_parameters(*[(_case_name(p, a), p, a) for p, a in CASES if p in SLOW])
  def test_smoke(self, path, arg):
    self._smoke(path, arg)
