r"""Writes tests/models/data/torch_parity_*.npz: outputs of the PyTorch reference DiT and U-Net.

Runs in a *PyTorch* environment (not the diffjax venv), with the reference sources on disk:
  * facebookresearch/DiT `models.py` (needs timm for PatchEmbed / Attention / Mlp);
  * pesser/pytorch_diffusion `pytorch_diffusion/model.py` (`Model`), the PyTorch port of Ho et al.'s
    TF U-Net whose author checked it layer by layer against `diffusion_tf` and which loads the
    official DDPM CIFAR-10 / LSUN checkpoints; its scripts/convert.py copies the TF variables
    layer by layer next to the `diffusion_tf` functions. diffusers' `UNet2DModel` is not used: it
    is a general re-implementation with its own names and options, so agreeing with it would show
    agreement with diffusers rather than with Ho et al.'s code.

  python experiments/models/torch_parity_reference.py \
      --dit_models_py=/tmp/f/ref/dit/models.py --ddpm_model_py=/tmp/f/ref/pd/model.py \
      --out_dir=tests/models/data

It also writes torch_parity_shapes.npz: the names and shapes (no values) of the state_dicts of
DiT-S/2 and of Ho et al.'s CIFAR-10 U-Net, for a shape-only conversion test at paper size.

Tiny configurations (DIT_CASES, DDPM_CASES below; tests/models/test_torch_parity.py rebuilds them):
  dit:       8x8x4 input, patch 2, hidden 32, depth 2, 2 heads, 10 classes + CFG null row,
             learn_sigma; dit_p4: patch 4, 4 heads, MLP ratio 2, no learned sigma.
  ddpm:      16x16x3, ch 16, ch_mult (1, 2), 1 res block, attention at 8x8, dropout 0 (eval mode);
  ddpm_deep: 8x8x1, ch 8, ch_mult (1, 2, 2), 2 res blocks, attention at the top resolution.
Every tensor, including the ones DiT zero-initialises (adaLN modulations, final layer), is redrawn
as N(0, 1/fan_in) weights and N(0, 0.1²) biases / norm offsets (norm scales 1 + N(0, 0.1²)), so
every path through the network contributes to the output. The forward pass runs in float64 (the
weights are float32 values cast up; only the sinusoidal noise-level features are float32, as both
references compute them), so the stored outputs carry no float32 error of the network itself;
inputs and weights are stored as float32, NCHW / PyTorch layout, names as in `state_dict()`.

One change to the reference, made explicit here: Ho et al.'s GroupNorm has 32 groups, which a
width-16 network cannot have. The DDPM reference is built with diffjax's group rule
(`diffjax.models.layers.num_groups`: min(32, C/4), lowered until it divides C; 32 at every width
of the paper's model), re-implemented below so that this script needs no JAX.
"""

import argparse
import importlib.util
import json
import os

import numpy as np
import torch

SEED = 0


def load_module(name: str, path: str):
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
  """Redraws every trainable parameter so nothing is zero or one, rounded to float16 values.

  The float16 rounding only halves the stored size: the values are exact in float16 and float32,
  and the reference runs on exactly those values.
  """
  with torch.no_grad():
    for name, p in model.named_parameters():
      if not p.requires_grad:
        continue  # DiT's frozen sin-cos position table
      if p.ndim >= 2:
        fan_in = int(np.prod(p.shape[1:])) if not name.endswith("embedding_table.weight") else 1
        p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(fan_in))
      elif "norm" in name and name.endswith("weight"):
        p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
      else:
        p.copy_(0.1 * torch.randn(p.shape, generator=gen))
      p.copy_(p.half().float())


def cast_input_to_float64_(layer: torch.nn.Module) -> None:
  """Both references build the sinusoidal features in float32 (`t.float()`); go on in float64."""
  layer.register_forward_pre_hook(lambda _, args: tuple(a.double() for a in args))


def state_arrays(model: torch.nn.Module) -> dict:
  """{"sd/<name>": array}: float16 for the (float16-exact) parameters, float32 for pos_embed."""
  return {
      f"sd/{k}": v.detach().to(torch.float32 if k == "pos_embed" else torch.float16).numpy()
      for k, v in model.state_dict().items()
  }


# name -> (reference constructor kwargs, our model config, input [B, C, H, W], t, labels or None).
DIT_CASES = {
    # The size the task names: class-conditional with the CFG null label (index num_classes).
    "dit": (
        dict(
            input_size=8,
            patch_size=2,
            in_channels=4,
            hidden_size=32,
            depth=2,
            num_heads=2,
            mlp_ratio=4.0,
            class_dropout_prob=0.1,
            num_classes=10,
            learn_sigma=True,
        ),
        dict(
            kind="dit",
            patch_size=2,
            hidden_size=32,
            depth=2,
            num_heads=2,
            mlp_ratio=4.0,
            freq_dim=256,
            num_classes=10,
            learn_sigma=True,
        ),
        (3, 4, 8, 8),
        [0.0, 17.5, 999.0],
        [3, 10, 7],
    ),
    # Patch 4, no learned sigma, 4 heads, MLP ratio 2, non-square batch of labels.
    "dit_p4": (
        dict(
            input_size=8,
            patch_size=4,
            in_channels=3,
            hidden_size=32,
            depth=1,
            num_heads=4,
            mlp_ratio=2.0,
            class_dropout_prob=0.1,
            num_classes=5,
            learn_sigma=False,
        ),
        dict(
            kind="dit",
            patch_size=4,
            hidden_size=32,
            depth=1,
            num_heads=4,
            mlp_ratio=2.0,
            freq_dim=256,
            num_classes=5,
            learn_sigma=False,
        ),
        (2, 3, 8, 8),
        [3.0, 500.25],
        [5, 0],
    ),
}
DDPM_CASES = {
    # The size the task names.
    "ddpm": (
        dict(
            ch=16,
            out_ch=3,
            ch_mult=(1, 2),
            num_res_blocks=1,
            attn_resolutions=(8,),
            dropout=0.0,
            resamp_with_conv=True,
            in_channels=3,
            resolution=16,
        ),
        dict(
            kind="unet", ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8], dropout=0.0
        ),
        (3, 3, 16, 16),
        [0.0, 250.0, 999.0],
        None,
    ),
    # Ho et al.'s structure in small: 3 levels, 2 blocks per level (3 in the decoder, the last
    # one fed by the downsampler's skip), attention at the top resolution.
    "ddpm_deep": (
        dict(
            ch=8,
            out_ch=1,
            ch_mult=(1, 2, 2),
            num_res_blocks=2,
            attn_resolutions=(8,),
            dropout=0.0,
            resamp_with_conv=True,
            in_channels=1,
            resolution=8,
        ),
        dict(
            kind="unet",
            ch=8,
            ch_mult=[1, 2, 2],
            num_res_blocks=2,
            attn_resolutions=[8],
            dropout=0.0,
        ),
        (2, 1, 8, 8),
        [1.0, 640.0],
        None,
    ),
}


def reference_case(module, build, case, gen: torch.Generator) -> dict:
  """Builds the reference model, randomises it and runs it in float64 on random inputs."""
  ref_cfg, ours, x_shape, t, y = case
  model, t_layer = build(module, ref_cfg)
  randomize_(model, gen)
  model.eval()
  cast_input_to_float64_(t_layer)
  x = torch.randn(x_shape, generator=gen)
  t = torch.tensor(t)  # the reference's t: the (possibly fractional) DDPM step index
  args = (x.double(), t.double()) + (() if y is None else (torch.tensor(y),))
  with torch.no_grad():
    out = model.double()(*args)
  arrays = dict(
      config=json.dumps(ours),
      reference_config=json.dumps(ref_cfg),
      x=x.numpy(),
      noise_cond=t.numpy(),
      out=out.to(torch.float32).numpy(),
      **state_arrays(model),
  )
  if y is not None:
    arrays["label"] = np.asarray(y, np.int32)
  return arrays


def build_dit(module, cfg):
  model = module.DiT(**cfg)
  return model, model.t_embedder.mlp[0]


def num_groups(channels: int) -> int:
  """diffjax.models.layers.num_groups, restated (see the module docstring)."""
  g = max(1, min(32, channels // 4))
  while channels % g:
    g -= 1
  return g


def build_ddpm(module, cfg):
  module.Normalize = lambda c: torch.nn.GroupNorm(num_groups(c), c, eps=1e-6, affine=True)
  model = module.Model(**cfg)
  return model, model.temb.dense[0]


def paper_shapes(dit_models_py: str, ddpm_model_py: str) -> dict:
  """Names and shapes of every state_dict entry of DiT-S/2 (ImageNet-256 latents, 1000 classes)
  and of Ho et al.'s CIFAR-10 U-Net (35,746,307 parameters, real 32-group GroupNorm): the layout of
  the released checkpoints, for a shape-only conversion test at paper size."""
  ref = load_module("dit_reference_models", dit_models_py)
  dit_s2 = ref.DiT_S_2(input_size=32, num_classes=1000)
  out = {"dit_s2": {k: list(v.shape) for k, v in dit_s2.state_dict().items()}}
  ref = load_module("ddpm_reference_model", ddpm_model_py)
  model = ref.Model(
      ch=128,
      out_ch=3,
      ch_mult=(1, 2, 2, 2),
      num_res_blocks=2,
      attn_resolutions=(16,),
      dropout=0.1,
      in_channels=3,
      resolution=32,
  )
  out["ddpm_cifar10"] = {k: list(v.shape) for k, v in model.state_dict().items()}
  return {"shapes": json.dumps(out)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dit_models_py", required=True, help="facebookresearch/DiT models.py")
  parser.add_argument("--ddpm_model_py", required=True, help="pytorch_diffusion/model.py")
  parser.add_argument("--out_dir", default="tests/models/data")
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  dit_module = load_module("dit_reference_models", args.dit_models_py)
  ddpm_module = load_module("ddpm_reference_model", args.ddpm_model_py)
  cases = [(name, dit_module, build_dit, case) for name, case in DIT_CASES.items()]
  cases += [(name, ddpm_module, build_ddpm, case) for name, case in DDPM_CASES.items()]
  for name, module, build, case in cases:
    gen = torch.Generator().manual_seed(SEED)
    arrays = reference_case(module, build, case, gen)
    out = os.path.join(args.out_dir, f"torch_parity_{name}.npz")
    np.savez_compressed(out, **arrays)
    n = sum(v.size for k, v in arrays.items() if k.startswith("sd/"))
    peak = np.abs(arrays["out"]).max()
    print(f"{out}: {n} weights, out {arrays['out'].shape}, max |out| {peak:.3g}")
  out = os.path.join(args.out_dir, "torch_parity_shapes.npz")
  np.savez_compressed(out, **paper_shapes(args.dit_models_py, args.ddpm_model_py))
  print(f"{out}: paper-size state_dict names and shapes")


if __name__ == "__main__":
  main()
