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

Tiny configurations (the sizes tests/models/test_torch_parity.py rebuilds in Flax):
  DiT: 8x8x4 input, patch 2, hidden 32, depth 2, 2 heads, 10 classes + CFG null row, learn_sigma.
  DDPM U-Net: 16x16x3, ch 16, ch_mult (1, 2), 1 res block, attention at 8x8, dropout 0 (eval mode).
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
  """Redraws every parameter (not buffers/frozen tensors) so nothing is zero or one."""
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


def cast_input_to_float64_(layer: torch.nn.Module) -> None:
  """Both references build the sinusoidal features in float32 (`t.float()`); go on in float64."""
  layer.register_forward_pre_hook(lambda _, args: tuple(a.double() for a in args))


def state_arrays(model: torch.nn.Module) -> dict:
  return {f"sd/{k}": v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}


def dit_reference(models_py: str, gen: torch.Generator) -> dict:
  ref = load_module("dit_reference_models", models_py)
  cfg = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=2,
             mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=10, learn_sigma=True)
  model = ref.DiT(**cfg)
  randomize_(model, gen)
  model.eval()
  cast_input_to_float64_(model.t_embedder.mlp[0])
  x = torch.randn((3, 4, 8, 8), generator=gen)
  t = torch.tensor([0.0, 17.5, 999.0])  # DiT's t: the (possibly fractional) DDPM step index
  y = torch.tensor([3, 10, 7])  # 10 = num_classes: the classifier-free-guidance null label
  with torch.no_grad():
    out = model.double()(x.double(), t.double(), y)
  ours = dict(kind="dit", patch_size=2, hidden_size=32, depth=2, num_heads=2, mlp_ratio=4.0,
              freq_dim=256, num_classes=10, learn_sigma=True)
  return dict(config=json.dumps(ours), reference_config=json.dumps(cfg), x=x.numpy(),
              noise_cond=t.numpy(), label=y.numpy().astype(np.int32),
              out=out.to(torch.float32).numpy(), **state_arrays(model))


def num_groups(channels: int) -> int:
  """diffjax.models.layers.num_groups, restated (see the module docstring)."""
  g = max(1, min(32, channels // 4))
  while channels % g:
    g -= 1
  return g


def ddpm_reference(model_py: str, gen: torch.Generator) -> dict:
  ref = load_module("ddpm_reference_model", model_py)
  ref.Normalize = lambda c: torch.nn.GroupNorm(num_groups(c), c, eps=1e-6, affine=True)
  cfg = dict(ch=16, out_ch=3, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
             dropout=0.0, resamp_with_conv=True, in_channels=3, resolution=16)
  model = ref.Model(**cfg)
  randomize_(model, gen)
  model.eval()
  cast_input_to_float64_(model.temb.dense[0])
  x = torch.randn((3, 3, 16, 16), generator=gen)
  t = torch.tensor([0.0, 250.0, 999.0])  # Ho et al.'s t: the step index in {0, ..., 999}
  with torch.no_grad():
    out = model.double()(x.double(), t.double())
  ours = dict(kind="unet", ch=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
              dropout=0.0)
  return dict(config=json.dumps(ours), reference_config=json.dumps(cfg), x=x.numpy(),
              noise_cond=t.numpy(), out=out.to(torch.float32).numpy(), **state_arrays(model))


def paper_shapes(dit_models_py: str, ddpm_model_py: str) -> dict:
  """Names and shapes of every state_dict entry of DiT-S/2 (ImageNet-256 latents, 1000 classes)
  and of Ho et al.'s CIFAR-10 U-Net (35,746,307 parameters, real 32-group GroupNorm): the layout of
  the released checkpoints, for a shape-only conversion test at paper size."""
  ref = load_module("dit_reference_models", dit_models_py)
  dit_s2 = ref.DiT_S_2(input_size=32, num_classes=1000)
  out = {"dit_s2": {k: list(v.shape) for k, v in dit_s2.state_dict().items()}}
  ref = load_module("ddpm_reference_model", ddpm_model_py)
  model = ref.Model(ch=128, out_ch=3, ch_mult=(1, 2, 2, 2), num_res_blocks=2,
                    attn_resolutions=(16,), dropout=0.1, in_channels=3, resolution=32)
  out["ddpm_cifar10"] = {k: list(v.shape) for k, v in model.state_dict().items()}
  return {"shapes": json.dumps(out)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dit_models_py", required=True, help="facebookresearch/DiT models.py")
  parser.add_argument("--ddpm_model_py", required=True, help="pytorch_diffusion/model.py")
  parser.add_argument("--out_dir", default="tests/models/data")
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  for name, fn, path in (("dit", dit_reference, args.dit_models_py),
                         ("ddpm", ddpm_reference, args.ddpm_model_py)):
    gen = torch.Generator().manual_seed(SEED)
    arrays = fn(path, gen)
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
