"""Every config under configs/ (as `:smoke`, plus each of its `SMOKE_ARGS`) builds and steps.

Configs are found by glob, so a new configs/<paper>/<dataset>.py is tested the day it lands.
  * Default, every case: the Experiment builds (data, Method, optimiser, state shapes), one train
    step under `jax.eval_shape` keeps the state's tree, shapes and dtypes and gives a float32
    scalar loss, and one sampling call of the Method on a tiny batch under `jax.eval_shape` gives
    samples of the data's shape: what a config typo breaks, without compiling a step.
  * Default, enough cases that every method.kind and every model.kind runs once (`FULL_RUN`, the
    cheapest config that has it): the whole runner, i.e. train 2 steps, resume to step 4, `--mode=eval`, `--mode=sample`.
  * Slow (`make test-all`): the same full run for every other case.
Fashion-MNIST configs read small IDX files written here; TFDS configs (CIFAR-10, ImageNet-64, ...)
run on `tfds.testing.mock_data` (random images of the data set's shape and labels, no download),
resized to 8×8 by `config_lib.shrink`.
"""

import contextlib
import glob
import os
import sys
from unittest import mock

import chex
import jax
import jax.numpy as jnp
import ml_collections
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
CONFIGS = sorted(
    os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "*", "*.py"))
)
CASES = [(path, arg) for path in CONFIGS for arg in config_lib.smoke_args(os.path.join(REPO, path))]
# The full runner for every method.kind and every model.kind: the cheapest cases that have them
# (measured with --durations on 2 CPU cores). test_full_run_covers_every_kind checks that none is
# missing.
FULL_RUN = {
    ("configs/edm/toy2d.py", "smoke"),  # gaussian × mlp, on 8 devices
    ("configs/ddpm/cifar10.py", "smoke"),  # gaussian × ddpm
    ("configs/score_sde/cifar10.py", "variant=vp,smoke"),  # gaussian × ddpmpp
    ("configs/score_sde/cifar10.py", "variant=ve,smoke"),  # gaussian × ncsnpp
    ("configs/kingma_gao/imagenet64.py", "smoke"),  # gaussian × adm (Method state too)
    ("configs/sd3_timesteps/imagenet64.py", "smoke"),  # gaussian × dit
    ("configs/vdm/cifar10.py", "smoke"),  # vdm × unet
    ("configs/mdlm/shakespeare.py", "smoke"),  # discrete × token_transformer
    ("configs/autoregressive/shakespeare.py", "smoke"),  # autoregressive × token_transformer
    ("configs/consistency_models/toy2d.py", "smoke"),  # consistency × mlp
    ("configs/ctm/toy2d.py", "smoke"),  # ctm × mlp
    ("configs/meanflow/toy2d.py", "smoke"),  # meanflow × mlp
    ("configs/shortcut/toy2d.py", "smoke"),  # shortcut × mlp
    ("configs/progressive_distillation/toy2d.py", "smoke"),  # progressive_distillation × mlp
    ("configs/ot_cfm/toy2d.py", "smoke"),  # ot_cfm × mlp, coupling over 8 devices
    ("configs/sb_cfm/toy2d.py", "smoke"),  # interpolant × mlp
    ("configs/dsbm/toy2d.py", "smoke"),  # dsbm × mlp, every IMF phase
    ("configs/cold_diffusion/fashion_mnist.py", "smoke"),  # cold × unet, on 2 devices
    ("configs/ihdm/fashion_mnist.py", "smoke"),  # ihdm × unet
    ("configs/blurring_diffusion/fashion_mnist.py", "smoke"),  # blurring × unet
}
SAMPLE_BATCH = 2


def _none_leaves(config, prefix: str = "") -> list[str]:
  """Dotted keys of the config's leaves whose value is None."""
  keys = []
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      keys += _none_leaves(value, f"{prefix}{key}.")
    elif value is None:
      keys.append(prefix + key)
  return keys


def _case_name(path: str, arg: str) -> str:
  """`ddpm_cifar10`, `score_sde_cifar10_variant_ve`: what `pytest -k` matches."""
  name = path[len("configs/") : -len(".py")].replace("/", "_")
  extra = [a.replace("=", "_").replace("/", "") for a in arg.split(",") if a != "smoke"]
  return "_".join([name] + extra)


def _is_tfds(config) -> bool:
  return config.data.name == "tfds" or str(config.data.name).startswith("tfds:")


def _kinds(path: str, arg: str) -> tuple[str, str]:
  config = config_lib.load(os.path.join(REPO, path), arg)
  return config.method.kind, config.model.kind


class _Data:
  """Mixin: `self._data(config)` points a config at local data for the duration of a `with`."""

  @contextlib.contextmanager
  def _data(self, config):
    if config.data.name == "fashion_mnist":
      config.data.path = self.create_tempdir().full_path
      fashion_mnist.write_fake(config.data.path)
    for end in ("x", "y") if config.data.name == "unpaired" else ():  # the two ends of a bridge
      if config.data[end].name == "fashion_mnist":
        config.data[end].path = self.create_tempdir().full_path
        fashion_mnist.write_fake(config.data[end].path)
    if _is_tfds(config) or config.data.name == "tfds_text":
      with tfds.testing.mock_data(num_examples=16):
        yield
    else:
      yield


class ConfigBuildTest(_Data, chex.TestCase, parameterized.TestCase):

  def test_all_configs_listed(self):
    self.assertGreaterEqual(len(CONFIGS), 6, CONFIGS)
    self.assertIn(("configs/score_sde/cifar10.py", "variant=ve,smoke"), CASES)

  def test_full_run_covers_every_kind(self):
    """Every method.kind and every model.kind of the configs runs the full runner at least once.

    (Every *pair* would grow as methods × models; a Method only meets a model through
    `Method.network_fn`, which each model kind's own full run already drives.)"""
    self.assertLessEqual(FULL_RUN, set(CASES))
    kinds = {_kinds(p, a) for p, a in CASES}
    covered = {_kinds(p, a) for p, a in FULL_RUN}
    for axis, name in enumerate(("method.kind", "model.kind")):
      missing = {k[axis] for k in kinds} - {k[axis] for k in covered}
      self.assertFalse(missing, f"{name} without a FULL_RUN case: {sorted(missing)}")

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

  def test_unset_leaves_can_be_set_from_the_command_line(self):
    """Every None leaf (data.path of the TFDS and text configs, data.image_size) is settable by
    `--config.key=value` through the flag the CLI parses with (it refuses a plain None)."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

    values = {"data.path": "/some/dir", "data.image_size": "64"}
    checked = set()
    for path in CONFIGS:
      for key in _none_leaves(config_lib.load(os.path.join(REPO, path))):
        with self.subTest(path=path, key=key):
          self.assertIn(key, values, f"{path}: a new None leaf {key}; add it to this test")
          fv = flags.FlagValues()
          flag = config_flags.DEFINE_config_file("config", flag_values=fv)
          argv = ["prog", f"--config={os.path.join(REPO, path)}", f"--config.{key}={values[key]}"]
          with mock.patch.object(sys, "argv", argv):  # config_flags reads overrides from sys.argv
            fv(argv)
          section, name = key.split(".")
          self.assertEqual(str(flag.value[section][name]), values[key])
          checked.add((path, key))
    self.assertGreaterEqual(len(checked), 10)  # the TFDS image and text configs

  def test_reflow_stage_needs_the_first_run(self):
    path = os.path.join(REPO, "configs", "rectified_flow", "fashion_mnist.py")
    with self.assertRaisesRegex(ValueError, "init_from"):
      config_lib.load(path, "stage=reflow")
    config = config_lib.load(path, "stage=reflow,init_from=/runs/rf1")
    self.assertEqual(
        (config.init_from, config.data.path), ("/runs/rf1", "/runs/rf1/reflow/pairs_00006000.npz")
    )

  @parameterized.named_parameters(*[(_case_name(p, a), p, a) for p, a in CASES])
  def test_builds_and_steps(self, path, arg):
    config = config_lib.load(os.path.join(REPO, path), arg)
    with self._data(config):
      exp = experiment.Experiment(config, jax.devices()[:1])
      batch = exp.example_batch
    state = jax.eval_shape(exp.init_state)
    self.assertGreater(sum(x.size for x in jax.tree.leaves(state.params)), 1000)
    new_state, metrics = jax.eval_shape(exp.train_step, state, batch)
    self.assertEqual((metrics["loss"].shape, metrics["loss"].dtype), ((), jnp.float32))
    self.assertEqual(jax.tree.structure(new_state), jax.tree.structure(state))
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    # No weak types, so the second step and a resume reuse the first step's compiled program.
    weak = [jax.tree_util.keystr(k) for k, x in jax.tree.leaves_with_path(state) if x.weak_type]
    self.assertEqual(weak, [])
    sample = lambda params: exp.method.sample(params, jax.random.PRNGKey(1), SAMPLE_BATCH)
    try:
      samples = jax.eval_shape(sample, state.ema_params)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
      # The σ grid is built on the host from the schedule; a learned one (VDM) is a function of
      # the parameters, which must then be concrete: one jitted init (op-by-op it took ~4 s).
      params = jax.jit(exp.method.init)(jax.random.PRNGKey(0), batch)
      samples = jax.eval_shape(lambda: sample(params))
    shape = tuple(exp.dataset.element_shape)
    self.assertEqual(samples.shape, (SAMPLE_BATCH,) + shape)
    kind = jnp.integer if jnp.issubdtype(batch["x"].dtype, jnp.integer) else jnp.floating
    self.assertTrue(jnp.issubdtype(samples.dtype, kind))  # tokens stay tokens
    if _is_tfds(config):
      self.assertEqual(shape[:2], (config_lib.SMOKE_IMAGE_SIZE,) * 2)


class _FullRun(_Data):
  """Train 2 steps, resume to step 4, evaluate, sample: the runner's whole path for one case."""

  def _full_run(self, path, arg):
    config = config_lib.load(os.path.join(REPO, path), arg)
    workdir = self.create_tempdir().full_path
    if config.model.kind == "mlp":
      devices = None  # all 8 (fake) devices: the batch splits along `data`
      config.train.sample_every_steps = 2  # and the periodic hooks run in the loop
      config.train.eval_every_steps = 4
    elif config.data.name == "fashion_mnist":
      devices = jax.devices()[:2]  # sharded, with less SPMD compile than on 8
    else:
      devices = jax.devices()[:1]  # an SPMD compile for 8 devices costs about twice the CPU time
    if config.sample.solver == "pc":
      # EDM-initialised networks output ~0 (last layer scaled by 1e-5), so the Langevin step
      # 2·(snr·‖z‖/‖score‖)² is unbounded before training: run the predictor path only.
      config.sample.solver_kwargs.n_corrector = 0
    with self._data(config):
      state = loop.train_and_evaluate(config, workdir, devices)
      self.assertEqual(int(jax.device_get(state.step)), 2)
      want = len(devices) if devices is not None else jax.device_count()
      self.assertLen(jax.tree.leaves(state.params)[0].sharding.device_set, want)
      config.train.num_steps = 4
      state = loop.train_and_evaluate(config, workdir, devices)
      self.assertEqual(int(jax.device_get(state.step)), 4)
      self.assertEqual(sorted(os.listdir(os.path.join(workdir, "checkpoints"))), ["2", "4"])
      leaves = jax.tree.leaves(jax.device_get(state.params))
      self.assertTrue(all(np.all(np.isfinite(x)) for x in leaves))
      if config.train.sample_every_steps:
        self.assertEqual(
            sorted(os.listdir(os.path.join(workdir, "samples"))),
            ["step_00000002.png", "step_00000004.png"],
        )
      metrics = evaluate.evaluate(config, workdir, devices)
      if config.eval.num_samples:
        self.assertTrue(np.isfinite(metrics["sliced_w2"]))
      if config.eval.get("bpd_num_examples", 0):
        self.assertTrue(np.isfinite(metrics["test_bpd"]))
      self.assertTrue(os.path.exists(os.path.join(workdir, "eval", "metrics_00000004.json")))
      config.sample.num_samples = config.sample.batch_size  # one batch of what --mode=sample does
      samples = inference.sample(config, workdir, devices)
      shown = glob.glob(os.path.join(workdir, "samples", "final_*.*[gt]"))  # .png or .txt
      want_ext = ".txt" if jnp.issubdtype(samples.dtype, jnp.integer) else ".png"
      self.assertEqual([os.path.splitext(p)[1] for p in shown], [want_ext])
      shape = tuple(experiment.Experiment(config, devices).dataset.element_shape)
    self.assertEqual(samples.shape, (config.sample.num_samples,) + shape)
    self.assertTrue(np.all(np.isfinite(samples)))


class ConfigFullRunTest(_FullRun, chex.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      *[(_case_name(p, a), p, a) for p, a in CASES if (p, a) in FULL_RUN]
  )
  def test_full_run(self, path, arg):
    self._full_run(path, arg)


@pytest.mark.slow  # a class mark reaches the methods absl's parameterized generates
class SlowConfigFullRunTest(_FullRun, chex.TestCase, parameterized.TestCase):
  """The full run of every other case (`make test-all`)."""

  @parameterized.named_parameters(
      *[(_case_name(p, a), p, a) for p, a in CASES if (p, a) not in FULL_RUN]
  )
  def test_full_run(self, path, arg):
    self._full_run(path, arg)
