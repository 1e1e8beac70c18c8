"""Forward-pass parity of our DiT and DDPM U-Net with the PyTorch reference code, same weights.

tests/models/data/torch_parity_*.npz were written by
experiments/models/torch_parity_reference.py from facebookresearch/DiT `models.py` and
pesser/pytorch_diffusion `Model` (Ho et al.'s U-Net ported from the official TF code): random
weights for every tensor (adaLN-Zero and output layers included), inputs, and the reference output
computed in float64. Here: stored state_dict -> convert_torch -> our module -> compare. No torch.
"""

import functools
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import models
from diffjax.models import convert_torch, dit, layers

DATA = os.path.join(os.path.dirname(__file__), "data")
CASES = ("dit", "dit_p4", "ddpm", "ddpm_deep")  # the reference script's DIT_CASES, DDPM_CASES
# max |ours - reference| / max |reference|. Measured (jax 0.10 CPU): dit 3.2e-6, dit_p4 9.5e-7,
# ddpm 2.8e-6, ddpm_deep 5.4e-7; the largest errors are at t = 999, where the float32 sinusoid
# arguments t·f ≈ 1e3 carry ~1e-4 absolute phase error in both implementations.
REL_TOL = 1e-4


@functools.cache
def _load(name):
  with np.load(os.path.join(DATA, f"torch_parity_{name}.npz")) as d:
    arrays = {k: d[k] for k in d.files}
  state_dict = {k[len("sd/") :]: v for k, v in arrays.items() if k.startswith("sd/")}
  module = models.make(json.loads(str(arrays["config"])))
  x = arrays["x"].transpose(0, 2, 3, 1)  # NCHW -> NHWC
  ref = arrays["out"].transpose(0, 2, 3, 1)
  label = arrays.get("label")
  like = convert_torch.param_shapes(module, x.shape)
  apply = jax.jit(lambda p, x, nc, y: module.apply({"params": p}, x, nc, y, train=False))
  return dict(
      state_dict=state_dict,
      module=module,
      x=x,
      ref=ref,
      noise_cond=arrays["noise_cond"],
      label=label,
      like=like,
      apply=apply,
  )


def _run(name, state_dict=None, noise_cond=None, label=None):
  case = _load(name)
  convert = convert_torch.dit_params if name.startswith("dit") else convert_torch.ddpm_unet_params
  params = convert(case["state_dict"] if state_dict is None else state_dict, case["like"])
  nc = case["noise_cond"] if noise_cond is None else noise_cond
  label = case["label"] if label is None else label
  return np.asarray(case["apply"](params, case["x"], jnp.asarray(nc), label))


def _rel_err(out, ref):
  return float(np.max(np.abs(out - ref)) / np.max(np.abs(ref)))


class TorchParityTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters(*CASES)
  def test_same_output_as_reference(self, name):
    case = _load(name)
    out = _run(name)
    chex.assert_shape(out, case["ref"].shape)
    self.assertLess(_rel_err(out, case["ref"]), REL_TOL)
    chex.assert_trees_all_close(out, case["ref"], atol=REL_TOL * np.max(np.abs(case["ref"])))

  @parameterized.parameters(*CASES)
  def test_every_reference_weight_is_nontrivial(self, name):
    # The zero-initialised layers (adaLN-Zero, DiT's final layer, Ho et al.'s init_scale=0 convs)
    # must be random in the stored data, or the parity test would not see them.
    for key, w in _load(name)["state_dict"].items():
      if key != "pos_embed":  # neither the zero nor the unit initialisation
        w = w.astype(np.float32)
        self.assertGreater(min(np.max(np.abs(w)), np.max(np.abs(w - 1.0))), 1e-3, msg=key)

  @parameterized.parameters(*CASES)
  def test_comparison_sees_the_noise_level(self, name):
    # A one-step shift of t (e.g. an off-by-one between 0- and 1-based step indices) must fail.
    case = _load(name)
    out = _run(name, noise_cond=case["noise_cond"] + 1.0)
    self.assertGreater(_rel_err(out, case["ref"]), 100 * REL_TOL)

  def test_comparison_sees_the_label_and_null_row(self):
    case = _load("dit")
    self.assertEqual(int(case["label"][1]), case["module"].num_classes)  # the CFG null label
    rolled = np.roll(case["label"], 1)  # [3, null, 7] -> [7, 3, null]: every example changes
    out = _run("dit", label=rolled)
    for i in range(len(rolled)):
      self.assertGreater(_rel_err(out[i], case["ref"][i]), 100 * REL_TOL)

  def test_paper_unet_uses_ho_et_al_32_groups(self):
    # The reference data were made with our group rule (32 groups cannot split 16 channels);
    # at the paper's CIFAR-10 widths the rule must give Ho et al.'s 32 groups everywhere.
    like = convert_torch.param_shapes(models.make({"kind": "ddpm"}), (1, 32, 32, 3))
    widths = {
        leaf.shape[0]
        for path, leaf in jax.tree_util.tree_leaves_with_path(like)
        if path[-1].key == "scale"
    }
    self.assertEqual(widths, {128, 256, 384, 512})
    self.assertEqual({layers.num_groups(c) for c in widths}, {32})


class PaperSizeLayoutTest(chex.TestCase, parameterized.TestCase):
  """Every entry of the released checkpoints' layout (names and shapes from the reference code)."""

  @parameterized.parameters(
      (
          "ddpm_cifar10",
          {"kind": "ddpm"},
          (1, 32, 32, 3),
          convert_torch.ddpm_unet_params,
          35_746_307,
      ),
      ("dit_s2", {"kind": "dit", "variant": "S/2"}, (1, 32, 32, 4), convert_torch.dit_params, None),
  )
  def test_converts_paper_layout(self, name, cfg, x_shape, convert, want_count):
    with np.load(os.path.join(DATA, "torch_parity_shapes.npz")) as d:
      shapes = json.loads(str(d["shapes"]))[name]
    # Zero-stride views: no memory for the weights themselves.
    sd = {k: np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}
    if "pos_embed" in sd:
      sd["pos_embed"] = dit.sincos_2d(shapes["pos_embed"][-1], 16, 16)[None]
    params = convert(sd, convert_torch.param_shapes(models.make(cfg), x_shape))
    count = sum(x.size for x in jax.tree.leaves(params))
    n_ref = sum(int(np.prod(s)) for k, s in shapes.items() if k != "pos_embed")
    self.assertEqual(count, n_ref)
    if want_count is not None:
      self.assertEqual(count, want_count)  # Ho et al.'s stated size


class ConverterErrorTest(chex.TestCase):

  def _dit(self):
    return dict(_load("dit")["state_dict"]), _load("dit")["like"]

  def test_dit_missing_entry(self):
    sd, like = self._dit()
    del sd["blocks.1.attn.qkv.bias"]
    with self.assertRaisesRegex(ValueError, r"missing DiT entries: blocks\.1\.attn\.qkv\.bias"):
      convert_torch.dit_params(sd, like)

  def test_dit_unexpected_entry(self):
    sd, like = self._dit()
    sd["blocks.0.norm1.weight"] = np.ones(32, np.float32)  # DiT's LayerNorms have no affine
    with self.assertRaisesRegex(ValueError, r"unexpected DiT entries: blocks\.0\.norm1\.weight"):
      convert_torch.dit_params(sd, like)

  def test_dit_label_table_without_null_row(self):
    sd, like = self._dit()
    sd["y_embedder.embedding_table.weight"] = sd["y_embedder.embedding_table.weight"][:10]
    with self.assertRaisesRegex(
        ValueError,
        r"misshaped DiT entries: y_embedder\.embedding_table\.weight: shape \(10, 32\)"
        r" gives \(10, 32\), but y_embedder/embedding needs \(11, 32\)",
    ):
      convert_torch.dit_params(sd, like)

  def test_dit_all_problems_in_one_message(self):
    sd, like = self._dit()
    del sd["final_layer.linear.bias"]
    sd["extra.weight"] = np.zeros(3, np.float32)
    sd["blocks.0.attn.qkv.weight"] = sd["blocks.0.attn.qkv.weight"][:64]
    sd["blocks.1.attn.proj.weight"] = sd["blocks.1.attn.proj.weight"][:, :16]
    with self.assertRaisesRegex(
        ValueError,
        r"final_layer\.linear\.bias.*extra\.weight.*"
        r"blocks\.0\.attn\.qkv\.weight: shape \(64, 32\).*"
        r"blocks\.1\.attn\.proj\.weight: shape \(32, 16\)",
    ):
      convert_torch.dit_params(sd, like)

  def test_dit_pos_embed_must_be_the_fixed_table(self):
    sd, like = self._dit()
    sd["pos_embed"] = sd["pos_embed"][:, ::-1]  # tokens in the wrong order
    with self.assertRaisesRegex(ValueError, "pos_embed differs"):
      convert_torch.dit_params(sd, like)
    for bad in ((1, 15, 32), (16, 32)):  # not a square grid; no batch axis
      sd["pos_embed"] = np.zeros(bad, np.float32)
      with self.assertRaisesRegex(ValueError, r"pos_embed has shape \(" + ", ".join(map(str, bad))):
        convert_torch.dit_params(sd, like)

  def test_dit_stored_pos_embed_is_ours(self):
    pos = _load("dit")["state_dict"]["pos_embed"]
    np.testing.assert_allclose(pos[0], dit.sincos_2d(32, 4, 4), atol=1e-6)

  def test_unet_label_embedding_has_no_counterpart(self):
    case = _load("ddpm")
    cfg = json.loads(str(np.load(os.path.join(DATA, "torch_parity_ddpm.npz"))["config"]))
    like = convert_torch.param_shapes(models.make({**cfg, "num_classes": 10}), case["x"].shape)
    with self.assertRaisesRegex(ValueError, r"missing DDPM U-Net entries: label_embed/embedding"):
      convert_torch.ddpm_unet_params(case["state_dict"], like)

  def test_unet_conv_shortcut_and_learned_sigma(self):
    case = _load("ddpm")
    sd = dict(case["state_dict"])
    sd["up.0.block.0.conv_shortcut.weight"] = np.zeros((16, 48, 3, 3), np.float32)
    cfg = json.loads(str(np.load(os.path.join(DATA, "torch_parity_ddpm.npz"))["config"]))
    like = convert_torch.param_shapes(models.make({**cfg, "learn_sigma": True}), case["x"].shape)
    with self.assertRaisesRegex(
        ValueError,
        r"unexpected DDPM U-Net entries: up\.0\.block\.0\.conv_shortcut\.weight; "
        r"misshaped DDPM U-Net entries: conv_out\.bias: shape \(3,\) gives \(3,\), "
        r"but conv_out/bias needs \(6,\), conv_out\.weight: shape \(3, 16, 3, 3\)",
    ):
      convert_torch.ddpm_unet_params(sd, like)
