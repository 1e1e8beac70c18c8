"""DDPM++, NCSN++ and ADM against NVlabs/edm's `training/networks.py`, run with the same weights.

tests/models/data/edm_parity_<case>.npz hold a tiny EDM network's state_dict (every tensor random),
inputs and EDM's outputs, written by experiments/models/edm_parity_reference.py with torch 2.13 CPU
and NVlabs/edm 008a4e5; edm_parity_layouts.npz holds the state_dict layout (names, shapes) and the
parameter counts of EDM's full-size train.py networks. No torch is needed here.
"""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import models
from diffjax.models import convert

DATA = os.path.join(os.path.dirname(__file__), "data")
CASES = ("ddpmpp", "ddpmpp_cond_aug", "ncsnpp", "ncsnpp_skip_cond", "adm", "adm_noheads")
# float32 CPU, PyTorch vs XLA: measured max |ours - EDM| / max |EDM| <= 2.2e-6 over the cases.
REL_TOL = 2e-5


def _load(case):
  with np.load(os.path.join(DATA, f"edm_parity_{case}.npz")) as d:
    data = {k: d[k] for k in d.files}
  state = {k[len("param/") :]: v for k, v in data.items() if k.startswith("param/")}
  return data, state


def _module_and_params(data, state):
  edm_class, kwargs = str(data["edm_class"]), json.loads(str(data["edm_kwargs"]))
  if "channels_per_head" in data:  # the reference ADM was built with a narrower head width
    cfg = convert.model_config(edm_class, kwargs, state)
    cfg["channels_per_head"] = int(data["channels_per_head"])
    res = kwargs["img_resolution"]
    module = models.make(cfg)
    return module, convert.edm_to_params(state, module, (res, res, kwargs["in_channels"]))
  cfg, params = convert.from_edm(edm_class, kwargs, state)
  return models.make(cfg), params


def _run(module, params, data, *, noise=None, use_label=True, use_augment=True):
  """Our module on the stored inputs; NCHW output like EDM's."""
  x = jnp.asarray(data["x"].transpose(0, 2, 3, 1))  # EDM NCHW -> NHWC
  noise = jnp.asarray(data["noise_labels"] if noise is None else noise)
  label = jnp.asarray(data["label"]) if use_label and "label" in data else None
  aug = jnp.asarray(data["augment_labels"]) if use_augment and "augment_labels" in data else None
  out = module.apply({"params": params}, x, noise, label, train=False, augment_labels=aug)
  return np.asarray(out).transpose(0, 3, 1, 2)


def _rel_err(out, ref):
  return float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))


class ParityTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters(*CASES)
  def test_output_matches_edm(self, case):
    data, state = _load(case)
    module, params = _module_and_params(data, state)
    # The converted tree is exactly the module's own parameter tree (names and shapes).
    x = jnp.zeros((1, *data["x"].shape[2:], data["x"].shape[1]))
    want = jax.eval_shape(lambda: module.init(jax.random.key(0), x, jnp.zeros(1), train=False))
    chex.assert_trees_all_equal_shapes_and_dtypes(params, want["params"])
    ref = data["out"]
    self.assertGreater(float(np.std(ref)), 0.3)  # random weights: an O(1) output, not ~0
    self.assertLess(_rel_err(_run(module, params, data), ref), REL_TOL)
    if "out_noaug" in data:  # EDM skips map_augment when augment_labels is None; ours adds zeros
      self.assertLess(
          _rel_err(_run(module, params, data, use_augment=False), data["out_noaug"]), REL_TOL
      )

  def test_every_input_reaches_the_output(self):
    # The comparison can fail: shifting c_noise, dropping the labels or the augmentation moves the
    # output by far more than the tolerance.
    data, state = _load("ddpmpp_cond_aug")
    module, params = _module_and_params(data, state)
    ref = data["out"]
    for kwargs in (
        dict(noise=data["noise_labels"] + 0.05),
        dict(use_label=False),
        dict(use_augment=False),
    ):
      self.assertGreater(_rel_err(_run(module, params, data, **kwargs), ref), 100 * REL_TOL)

  def test_unpermuted_qkv_fails(self):
    # EDM interleaves q, k, v per head; loading its qkv rows without the permutation is wrong.
    data, state = _load("adm")
    module, params = _module_and_params(data, state)
    w = state["enc.8x8_block0.qkv.weight"].astype(np.float32)
    bad = jax.tree.map(lambda a: a, params)
    bad["enc8_block0"]["qkv"]["kernel"] = w.transpose(2, 3, 1, 0)
    bad["enc8_block0"]["qkv"]["bias"] = state["enc.8x8_block0.qkv.bias"].astype(np.float32)
    self.assertGreater(_rel_err(_run(module, bad, data), data["out"]), 100 * REL_TOL)


class PaperLayoutTest(chex.TestCase, parameterized.TestCase):
  """EDM's full-size networks: init_kwargs -> config -> parameter count, and every name mapped."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    with np.load(os.path.join(DATA, "edm_parity_layouts.npz")) as d:
      cls.layouts = json.loads(str(d["layouts"]))

  @parameterized.parameters("cifar10_ddpmpp", "cifar10_ncsnpp_cond", "imagenet64_adm_cond")
  def test_full_size_state_dict_converts(self, name):
    layout = self.layouts[name]
    kwargs = layout["init_kwargs"]
    taps = np.asarray(kwargs.get("resample_filter", [1, 1]), np.float32)
    filt = (np.outer(taps, taps) / taps.sum() ** 2)[None, None]
    # Zero-stride stand-ins for the weights: no memory, any shape; filters hold EDM's values.
    state = {
        k: filt if k.endswith("resample_filter") else np.broadcast_to(np.float32(0.5), shape)
        for k, shape in layout["state_dict"].items()
    }
    cfg, params = convert.from_edm(layout["edm_class"], kwargs, state, prefix="model.")
    res = kwargs["img_resolution"]
    self.assertEqual(models.param_count(models.make(cfg), (1, res, res, 3)), layout["num_params"])
    self.assertEqual(sum(a.size for a in jax.tree.leaves(params)), layout["num_params"])

  def test_known_counts(self):
    # EDM's own modules counted by the reference script vs numbers known independently: DDPM++
    # CIFAR-10 55,733,891 (the count EDM prints), and NCSN++ conditional = unconditional
    # 56,397,827 plus the 10 -> 256 label map with bias.
    self.assertEqual(self.layouts["cifar10_ddpmpp"]["num_params"], 55_733_891)
    self.assertEqual(self.layouts["cifar10_ncsnpp_cond"]["num_params"], 56_397_827 + 10 * 256 + 256)


class ConverterErrorTest(chex.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.data, self.state = _load("ddpmpp")
    self.module = models.make(
        convert.model_config("SongUNet", json.loads(str(self.data["edm_kwargs"])))
    )

  def convert(self, state, module=None, **kwargs):
    return convert.edm_to_params(state, module or self.module, (16, 16, 3), **kwargs)

  def test_missing(self):
    state = dict(self.state)
    del state["enc.16x16_conv.bias"]
    with self.assertRaisesRegex(ValueError, r"missing \['enc\.16x16_conv\.bias'\]"):
      self.convert(state)

  @parameterized.parameters("map_extra.weight", "enc.16x16_block0.skip.resample_filter")
  def test_unexpected(self, name):
    # The second: a block whose widths match and that does not resample has no skip in EDM.
    with self.assertRaisesRegex(ValueError, rf"unexpected \['{name}'\]"):
      self.convert({**self.state, name: np.zeros((1, 1, 2, 2))})

  def test_misshaped(self):
    state = {**self.state, "map_layer0.weight": self.state["map_layer0.weight"].T}
    with self.assertRaisesRegex(
        ValueError, r"misshaped.*map_layer0\.weight: shape \(8, 32\), " r"expected \(32, 8\)"
    ):
      self.convert(state)

  def test_wrong_resample_filter(self):
    state = dict(self.state)
    state["enc.8x8_down.conv0.resample_filter"] = np.full((1, 1, 2, 2), 0.3, np.float32)
    with self.assertRaisesRegex(ValueError, r"enc\.8x8_down\.conv0\.resample_filter is not"):
      self.convert(state)

  def test_prefix(self):
    prefixed = {"model." + k: v for k, v in self.state.items()}
    with self.assertRaisesRegex(ValueError, r"missing.*unexpected.*pass prefix='model\.'"):
      self.convert(prefixed)
    chex.assert_trees_all_equal(self.convert(prefixed, prefix="model."), self.convert(self.state))
    with self.assertRaisesRegex(ValueError, "does not start with prefix"):
      self.convert({**prefixed, "other": np.zeros(1)}, prefix="model.")

  def test_fourier_frequencies_must_travel(self):
    data, state = _load("ncsnpp")
    kwargs = json.loads(str(data["edm_kwargs"]))
    without = models.make(convert.model_config("SongUNet", kwargs))  # seed-0 frequencies
    with self.assertRaisesRegex(ValueError, r"map_noise\.freqs differs.*fourier_freqs"):
      convert.edm_to_params(state, without, (16, 16, 3))
    missing = {k: v for k, v in state.items() if k != "map_noise.freqs"}
    with self.assertRaisesRegex(ValueError, r"missing \['map_noise\.freqs'\]"):
      convert.edm_to_params(missing, without, (16, 16, 3))
    cfg = convert.model_config("SongUNet", kwargs, state)
    np.testing.assert_array_equal(cfg["fourier_freqs"], state["map_noise.freqs"])
    bad = models.make({**cfg, "fourier_freqs": cfg["fourier_freqs"][:-1]})
    with self.assertRaisesRegex(ValueError, "fourier_freqs must have"):
      bad.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros(1), train=False)

  def test_not_an_edm_module(self):
    with self.assertRaisesRegex(ValueError, "module must be"):
      self.convert(self.state, module=models.make({"kind": "mlp"}))

  @parameterized.parameters(
      ("Unet", {}, "edm_class"),
      ("SongUNet", dict(img_resolution=8, in_channels=3, out_channels=3, bogus=1), "bogus"),
      ("SongUNet", dict(img_resolution=8, in_channels=3), "out_channels"),
      ("DhariwalUNet", dict(img_resolution=8, in_channels=3, out_channels=4), "out_channels"),
  )
  def test_model_config_errors(self, edm_class, kwargs, pattern):
    with self.assertRaisesRegex(ValueError, pattern):
      convert.model_config(edm_class, kwargs)

  def test_model_config_defaults_and_learn_sigma(self):
    # Omitted kwargs take EDM's constructor defaults (not diffjax's), out = 2 in is learn_sigma.
    cfg = convert.model_config(
        "DhariwalUNet", dict(img_resolution=64, in_channels=3, out_channels=6)
    )
    self.assertEqual(cfg["num_classes"], 0)
    self.assertEqual(cfg["channel_mult"], (1, 2, 3, 4))
    self.assertTrue(cfg["learn_sigma"])
    cfg = convert.model_config("SongUNet", dict(img_resolution=32, in_channels=3, out_channels=3))
    self.assertEqual(
        (cfg["kind"], cfg["channel_mult"], cfg["dropout"]), ("ddpmpp", (1, 2, 2, 2), 0.1)
    )
