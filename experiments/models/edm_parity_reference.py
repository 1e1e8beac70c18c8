r"""Reference outputs of NVlabs/edm's U-Nets for tests/models/test_edm_parity.py.

Run in a PyTorch environment with a checkout of NVlabs/edm (Karras et al. 2022) on PYTHONPATH
(this repository does not need torch; the test only reads the files written here):

  PYTHONPATH=/path/to/edm python experiments/models/edm_parity_reference.py \
      --out_dir=tests/models/data

For each case it builds EDM's `training/networks.py` SongUNet (DDPM++ / NCSN++) or DhariwalUNet
(ADM) at a tiny size, replaces every parameter and buffer by a random draw (nothing is zero, so
every weight reaches the output), runs the network in eval mode on random inputs and writes
`edm_parity_<case>.npz`:
  param/<state_dict name>   every state_dict entry (parameters and buffers), EDM layout, float16
  x                         [B, C, H, W] float32 network input (NCHW, as EDM takes it)
  noise_labels              [B] float32, EDM's `noise_labels` (c_noise of the preconditioner)
  class_labels              [B, label_dim] float32 one-hot rows, an all-zero row = dropped label
  label                     [B] int32, the same labels as diffjax takes them (label_dim = null)
  augment_labels            [B, augment_dim] float32 (cases with augment_dim > 0)
  out                       [B, C, H, W] float32 output of EDM's network
  out_noaug                 the output with augment_labels=None (cases with augment_dim > 0)
  edm_class, edm_kwargs     the class name and its constructor kwargs (JSON)
  channels_per_head         ADM only: the head width the network was built with (see below)
and `edm_parity_layouts.npz`: the state_dict names and shapes, init_kwargs and parameter counts of
EDM's full-size train.py networks (DDPM++ and NCSN++ for CIFAR-10, ADM for ImageNet-64) as their
EDMPrecond snapshots hold them (names prefixed "model."), with no weights.
Every stored float is exactly representable in float16 (weights, inputs and Fourier frequencies are
rounded before the forward pass), so the files are half the size and lose nothing.

DhariwalUNet fixes 64 channels per attention head, so a network this small (widths 8 and 16) would
have no attention at all; the `adm` case therefore builds it with 4 channels per head (2 and 4
heads), which exercises the multi-head qkv layout. `adm_noheads` keeps EDM's 64 and checks that a
layer narrower than one head has no attention, as in EDM.
"""

import argparse
import json
import os
import subprocess

import numpy as np
import torch

from training import networks  # NVlabs/edm, from PYTHONPATH

BATCH = 3
RES = 16
NOISE_LABELS = (-1.4, 0.35, 1.1)  # c_noise = ln(σ)/4 for σ ≈ 0.0037, 4.1, 81 (EDM's range)

SMALL = dict(
    img_resolution=RES,
    in_channels=3,
    out_channels=3,
    model_channels=8,
    channel_mult=[1, 2],
    num_blocks=1,
    attn_resolutions=[8],
    dropout=0.0,
)
CASES = {
    "ddpmpp": ("SongUNet", dict(SMALL)),
    "ddpmpp_cond_aug": ("SongUNet", dict(SMALL, label_dim=5, augment_dim=9)),
    "ncsnpp": (
        "SongUNet",
        dict(
            SMALL,
            augment_dim=9,
            embedding_type="fourier",
            channel_mult_noise=2,
            encoder_type="residual",
            decoder_type="standard",
            resample_filter=[1, 3, 3, 1],
        ),
    ),
    "ncsnpp_skip_cond": (
        "SongUNet",
        dict(
            SMALL,
            label_dim=5,
            embedding_type="fourier",
            channel_mult_noise=2,
            encoder_type="skip",
            decoder_type="skip",
            resample_filter=[1, 3, 3, 1],
        ),
    ),
    "adm": ("DhariwalUNet", dict(SMALL, attn_resolutions=[16, 8], label_dim=5, augment_dim=9)),
    "adm_noheads": ("DhariwalUNet", dict(SMALL, model_channels=4, label_dim=5)),
}
HEAD_WIDTH = {"adm": 4, "adm_noheads": 64}


# EDM's train.py networks (--arch, CIFAR-10 with --augment, ImageNet-64 with --cond=1), wrapped in
# EDMPrecond as in its snapshots: only their state_dict layout (names, shapes) is written.
PAPER = {
    "cifar10_ddpmpp": dict(
        img_resolution=32,
        img_channels=3,
        label_dim=0,
        model_type="SongUNet",
        embedding_type="positional",
        encoder_type="standard",
        decoder_type="standard",
        channel_mult_noise=1,
        resample_filter=[1, 1],
        model_channels=128,
        channel_mult=[2, 2, 2],
        augment_dim=9,
        dropout=0.13,
    ),
    "cifar10_ncsnpp_cond": dict(
        img_resolution=32,
        img_channels=3,
        label_dim=10,
        model_type="SongUNet",
        embedding_type="fourier",
        encoder_type="residual",
        decoder_type="standard",
        channel_mult_noise=2,
        resample_filter=[1, 3, 3, 1],
        model_channels=128,
        channel_mult=[2, 2, 2],
        augment_dim=9,
        dropout=0.13,
    ),
    "imagenet64_adm_cond": dict(
        img_resolution=64,
        img_channels=3,
        label_dim=1000,
        model_type="DhariwalUNet",
        model_channels=192,
        channel_mult=[1, 2, 3, 4],
        dropout=0.10,
    ),
}


def paper_layouts():
  """{name: {"edm_class", "init_kwargs", "num_params", "state_dict": {name: shape}}}."""
  out = {}
  for name, kwargs in PAPER.items():
    net = networks.EDMPrecond(**kwargs)
    out[name] = dict(
        edm_class=type(net.model).__name__,
        init_kwargs=dict(net.model.init_kwargs),
        num_params=sum(p.numel() for p in net.model.parameters()),
        state_dict={k: list(v.shape) for k, v in net.state_dict().items()},
    )
  return out


def build(edm_class, kwargs, channels_per_head):
  """EDM's network; for DhariwalUNet with its blocks' head width replaced."""
  if edm_class == "SongUNet":
    return networks.SongUNet(**kwargs)
  original = networks.UNetBlock

  class Block(original):

    def __init__(self, *args, **block_kwargs):
      block_kwargs["channels_per_head"] = channels_per_head
      super().__init__(*args, **block_kwargs)

  networks.UNetBlock = Block  # DhariwalUNet looks the class up while it builds its blocks
  try:
    return networks.DhariwalUNet(**kwargs)
  finally:
    networks.UNetBlock = original  # forward() tests isinstance(block, UNetBlock): Block is one


def fp16_exact(a):
  return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def randomize(net, rng):
  """Redraws every parameter: weights N(0, 1/fan_in), norm scales 1 + N(0, .1²), biases N(0, .1²).

  Buffers: the Fourier frequencies keep EDM's N(0, 16²) draw, the resampling filters their values;
  both are rounded to float16 like everything else.
  """
  with torch.no_grad():
    for name, p in net.named_parameters():
      shape = tuple(p.shape)
      z = rng.standard_normal(shape)
      if len(shape) >= 2:
        z = z / np.sqrt(np.prod(shape[1:]))
      elif "norm" in name and name.endswith("weight"):
        z = 1.0 + 0.1 * z
      else:
        z = 0.1 * z
      p.copy_(torch.from_numpy(fp16_exact(z)))
    for _, buf in net.named_buffers():
      buf.copy_(torch.from_numpy(fp16_exact(buf.numpy())))


def make_case(name, edm_class, kwargs, seed):
  torch.manual_seed(seed)
  rng = np.random.default_rng(seed)
  head_width = HEAD_WIDTH.get(name)
  net = build(edm_class, kwargs, head_width).eval()
  randomize(net, rng)
  x = fp16_exact(rng.standard_normal((BATCH, 3, RES, RES)))
  noise = np.asarray(NOISE_LABELS, np.float32)
  label_dim, augment_dim = kwargs.get("label_dim", 0), kwargs.get("augment_dim", 0)
  label = np.array([1, label_dim - 1, label_dim], np.int32) if label_dim else None
  onehot = np.eye(label_dim + 1, dtype=np.float32)[label][:, :label_dim] if label_dim else None
  aug = fp16_exact(rng.standard_normal((BATCH, augment_dim))) if augment_dim else None
  t = lambda a: None if a is None else torch.from_numpy(a)
  with torch.no_grad():
    out = net(t(x), t(noise), t(onehot), t(aug)).numpy()
    out_noaug = net(t(x), t(noise), t(onehot), None).numpy() if augment_dim else None
  record = {f"param/{k}": v.numpy().astype(np.float16) for k, v in net.state_dict().items()}
  record.update(
      x=x,
      noise_labels=noise,
      out=out,
      edm_class=np.array(edm_class),
      edm_kwargs=np.array(json.dumps(kwargs, sort_keys=True)),
  )
  if label_dim:
    record.update(class_labels=onehot, label=label)
  if augment_dim:
    record.update(augment_labels=aug, out_noaug=out_noaug)
  if head_width is not None:
    record["channels_per_head"] = np.array(head_width, np.int32)
  return record, sum(p.numel() for p in net.parameters())


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", default="tests/models/data")
  parser.add_argument("--edm_commit", default=None, help="recorded commit (default: git of edm)")
  args = parser.parse_args()
  os.makedirs(args.out_dir, exist_ok=True)
  edm_dir = os.path.dirname(os.path.dirname(os.path.abspath(networks.__file__)))
  commit = args.edm_commit
  if commit is None:
    try:
      commit = subprocess.run(
          ["git", "-C", edm_dir, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
      ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
      commit = "unknown"
  for seed, (name, (edm_class, kwargs)) in enumerate(CASES.items()):
    record, n = make_case(name, edm_class, kwargs, seed)
    record.update(torch_version=np.array(torch.__version__), edm_commit=np.array(commit))
    path = os.path.join(args.out_dir, f"edm_parity_{name}.npz")
    np.savez_compressed(path, **record)
    print(
        f"{path}: {edm_class} {n} parameters, |out| max {np.abs(record['out']).max():.3g}, "
        f"{os.path.getsize(path) / 1024:.0f} KiB"
    )
  path = os.path.join(args.out_dir, "edm_parity_layouts.npz")
  layouts = paper_layouts()
  np.savez_compressed(
      path,
      layouts=np.array(json.dumps(layouts, sort_keys=True)),
      torch_version=np.array(torch.__version__),
      edm_commit=np.array(commit),
  )
  print(
      f"{path}: "
      + ", ".join(f"{k} {v['num_params']} parameters" for k, v in layouts.items())
      + f", {os.path.getsize(path) / 1024:.0f} KiB"
  )


if __name__ == "__main__":
  main()
