r"""Training and sampling throughput, MFU, memory and compile time of one config, as JSON rows.

  python benchmarks/throughput.py [--config=configs/edm/cifar10.py] [--arg=...] \
      [--set model.dtype=bfloat16 --set model.fused_norm=pallas --set data.batch_size=512] \
      [--steps_per_jit=4] [--samplers=heun18,dpmpp20] [--sample_batch=1024] [--name=ROW] \
      [--out=throughput.jsonl] [--peak_tflops=989] [--compare-edm=.edm [--only_edm]]
  python benchmarks/throughput.py --model=dit --variant=B/2 --latent=32x32x4   # DiT on latents
  python benchmarks/throughput.py --tiny [--compare-edm=.edm]                  # CPU smoke run

Rows (one JSON object per line on stdout, appended to --out; progress goes to stderr):
  * kind "train": images/s of `Experiment.jit_train_step` (or `jit_train_steps(k)` with
    `--steps_per_jit k`) on synthetic batches of the config's shape already on the device (the
    compute bound of a step: no input pipeline), median over `--repeats` of `--steps` steps each
    after `--warmup` steps; `compile_s` = first call minus a steady step (k steps for k > 1);
    FLOPs per step counted on the step's jaxpr (`jaxpr_flops`: matmuls and convolutions, forward
    and backward, the rule of torch's FlopCounterMode that the EDM rows use) and
    MFU = FLOPs / step time / (`--peak_tflops` e12): 989 is the dense bf16 rate of an H100/H200
    SXM, used for float32 rows too; `peak_bytes` is the device allocator's peak in this process
    so far (`memory_stats()`, null where the backend has none, e.g. CPU; a sample row's includes
    the training before it: run one process per row, as run_throughput_gpu.sh does).
  * kind "sample": images/s of `method.sample(params, rng, num, **overrides)` (the library's
    jitted sampler, methods/sampling.py) at `--sample_batch`, median over `--sample_repeats`
    calls; `compile_s` = first call minus a steady call. Samplers: `heun18` (EDM's Heun, 18 steps,
    35 NFE, ρ = 7 grid on [0.002, 80]) and `dpmpp20` (DPM-Solver++(2M), multistep order 2, 20
    steps on DPM-Solver's logSNR grid; 20 NFE).
Synthetic data: `Experiment(config, dataset=SyntheticData(...))`, uniform in [-1, 1], labels when
the data set has classes; its shape comes from `config.data` (CIFAR-10 32×32×3, Fashion-MNIST
32×32×1, ImageNet at `image_size`, `--data_shape` for anything else), so neither
tensorflow_datasets nor the data files are needed.

`--compare-edm DIR` (a checkout of NVlabs/edm) runs EDM's own PyTorch code in a subprocess, before
JAX touches the device: `training/networks.py` EDMPrecond(SongUNet) with train.py's `--arch=ddpmpp`
CIFAR-10 settings (55,733,891 parameters, checked), `training/loss.py` EDMLoss,
`training/augment.py` AugmentPipe(p=0.12, ...) and Adam, one step as training_loop.py does it
(lr ramp, nan_to_num on gradients, EMA), at batch 512; modes (`--edm_modes`): `fp32` (eager,
TF32 off as training_loop.py sets it), `tf32`, `bf16` (eager under `torch.autocast(bfloat16)`;
SongUNet's output is cast to float32 because EDMPrecond asserts it; EDM's own `--fp16` casts to
float16 instead: mode `fp16`), `bf16_compile` (bf16 with `torch.compile(net)`), `sample`
(generate.py's `edm_sampler`, 18 steps, at `--sample_batch`, eager bf16) and `sample_fp32`.
Its rows have framework "edm" and the same fields. `--tiny` shrinks everything (tiny networks,
batch 8, 2 steps a repeat, 2 repeats, 2 sampler steps at batch 8; it overrides those flags) so
the whole script runs on a CPU in seconds. `--summary FILE` prints a table of a JSONL file.
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import types

import flax
import jax
import jaxlib
import ml_collections
import numpy as np

from diffjax import config_lib
from diffjax import models
from diffjax import solvers
from diffjax.train import experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EDM_C10_PARAMS = 55_733_891  # EDM's CIFAR-10 DDPM++ (augment_dim 9, unconditional)
SAMPLERS = {
    "heun18": dict(
        solver="heun",
        num_steps=18,
        grid="karras",
        grid_kwargs=dict(sigma_min=0.002, sigma_max=80.0, rho=7.0),
    ),
    "dpmpp20": dict(solver="dpmpp_2m", num_steps=20, grid="logSNR", grid_kwargs={}),
}
# (H, W, C), classes of the TFDS image sets the configs use; `data.image_size` resizes H and W.
TFDS_SHAPES = {"cifar10": ((32, 32, 3), 10), "imagenet2012": ((64, 64, 3), 1000)}
TOY_SOURCES = (
    "checkerboard",
    "eight_gaussians",
    "two_moons",
    "swiss_roll",
    "rings",
    "pinwheel",
    "gmm",
)


class SyntheticData:
  """A data source of random images of a fixed shape (`Experiment(..., dataset=...)`)."""

  num_examples = None

  def __init__(self, element_shape: tuple[int, ...], num_classes: int, batch_size: int):
    self.element_shape, self.num_classes = tuple(element_shape), int(num_classes)
    self.batch_size = int(batch_size)

  def batch(self, step: int) -> dict:
    """{"x": float32 [B, *element_shape] uniform in [-1, 1], "label": int32 [B] if classes}."""
    rng = np.random.default_rng(int(step))
    out = {"x": rng.uniform(-1.0, 1.0, (self.batch_size,) + self.element_shape).astype(np.float32)}
    if self.num_classes:
      out["label"] = rng.integers(0, self.num_classes, self.batch_size).astype(np.int32)
    return out


def parse_shape(text: str) -> tuple[int, ...]:
  """'32x32x4' -> (32, 32, 4)."""
  try:
    return tuple(int(n) for n in text.lower().split("x"))
  except ValueError as e:
    raise ValueError(f"expected a shape like 32x32x4, got {text!r}") from e


def synthetic_dataset(config, data_shape=None, num_classes=None):
  """SyntheticData of `config.data`'s shape (None for 2-D toy sources: `data.make` is cheap)."""
  d = config.data
  name = str(d.name)
  if data_shape is None and name in TOY_SOURCES:
    return None
  shape, classes = None, 0
  if name == "fashion_mnist":
    side = 32 if d.get("pad_to_32", False) else 28
    shape, classes = (side, side, 1), 10
  elif name == "tfds" or name.startswith("tfds:"):
    tfds_name = d.get("tfds_name") or name.partition(":")[2]
    if tfds_name in TFDS_SHAPES:
      shape, classes = TFDS_SHAPES[tfds_name]
    if shape and d.get("image_size"):
      shape = (int(d.image_size), int(d.image_size), shape[2])
  elif "element_shape" in d:
    shape, classes = tuple(d.element_shape), int(d.get("num_classes", 0))
  shape = tuple(data_shape) if data_shape is not None else shape
  if shape is None:
    raise ValueError(f"data.name={name!r}: unknown shape; pass --data_shape HxWxC")
  classes = int(num_classes) if num_classes is not None else classes
  return SyntheticData(tuple(shape), classes, int(d.batch_size))


def _coerce(key: str, text: str, like):
  """`text` as a value of `like`'s type (bool, int, float, str, tuple/list, dtype); ValueError."""
  try:
    if isinstance(like, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError("expected true/false")
      return text.lower() in ("true", "1")
    if isinstance(like, int):
      return int(text)
    if isinstance(like, float):
      return float(text)
    if isinstance(like, (tuple, list)):
      return type(like)(ast.literal_eval(text))
    if like is None or isinstance(like, ml_collections.ConfigDict):
      try:
        return ast.literal_eval(text)
      except (ValueError, SyntaxError):
        return text
    return text  # strings, and dtypes given by name ("bfloat16"; models.make checks them)
  except (ValueError, SyntaxError) as e:
    raise ValueError(f"--set {key}={text}: expected {type(like).__name__} ({e})") from e


def apply_override(config: ml_collections.ConfigDict, item: str) -> tuple[str, object]:
  """Applies `--set section.key=value` to `config` with the existing value's type.

  A key of `model` that the config leaves at the network's default (e.g. `model.dtype`,
  `model.fused_norm`) may be set when the model class has that field (typed by its default).

  Returns:
    (key, value) as applied.

  Raises:
    ValueError: no `=`, or an unknown key (named), or a value of the wrong type.
  """
  key, eq, text = item.partition("=")
  if not eq:
    raise ValueError(f"--set {item!r}: expected key=value")
  parts = key.split(".")
  node = config
  for i, part in enumerate(parts[:-1]):
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise ValueError(f"--set {key}: unknown key {'.'.join(parts[:i + 1])!r}")
    node = node[part]
  leaf = parts[-1]
  if leaf in node:
    like = node[leaf]
  elif parts[:-1] == ["model"] and node.get("kind") in models.MODELS:
    fields = {f.name: f.default for f in dataclasses.fields(models.MODELS[node.kind])}
    if leaf not in fields or leaf in ("parent", "name"):
      raise ValueError(
          f"--set {key}: unknown key (model kind {node.kind!r} has no field {leaf!r}; "
          f"known: {sorted(k for k in fields if k not in ('parent', 'name'))})"
      )
    like = fields[leaf] if fields[leaf] is not dataclasses.MISSING else None
  else:
    raise ValueError(
        f"--set {key}: unknown key; known in {'.'.join(parts[:-1]) or 'config'}: "
        f"{sorted(node.keys())}"
    )
  value = _coerce(key, text, like)
  with node.unlocked():
    node[leaf] = value
  return key, value


def dit_config(variant: str, latent: tuple[int, ...], batch_size: int = 256):
  """GaussianDiffusion with EDM's preconditioning, loss and sampler around DiT-`variant` on
  latents of shape `latent`, class-conditional on 1000 classes (DiT's ImageNet setting, batch 256,
  Adam lr 1e-4, EMA 0.9999); `learn_sigma=False` (EDM predicts no variance)."""
  config = config_lib.base()
  config.data = dict(
      name="synthetic", batch_size=batch_size, element_shape=tuple(latent), num_classes=1000
  )
  config.update(config_lib.edm(conditional=True, batch_size=1000, num_samples=50_000))
  config.model = config_lib.dit(variant, learn_sigma=False)
  config.optim = config_lib.adam(1e-4, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(400_000)
  config.eval = config_lib.evaluation()
  return config


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
  """Median wall seconds of fn() over repeats (fn blocks until its results are ready)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), times


def _conv_flops(eqn) -> float:
  """2 · output elements · kernel window · input channels per group (torch's FlopCounterMode rule;
  a transposed / dilated-input convolution counts the inserted zeros too)."""
  lhs, rhs = eqn.invars[0].aval, eqn.invars[1].aval
  out = eqn.outvars[0].aval
  dn = eqn.params["dimension_numbers"]
  rhs_spec = dn.rhs_spec  # (out feature dim, in feature dim, spatial dims...)
  window = float(np.prod([rhs.shape[d] for d in rhs_spec[2:]]))
  in_per_group = rhs.shape[rhs_spec[1]]
  del lhs
  return 2.0 * float(np.prod(out.shape)) * window * float(in_per_group)


def _dot_flops(eqn) -> float:
  """2 · batch · M · N · K of a dot_general."""
  (lc, rc), (lb, _) = eqn.params["dimension_numbers"]
  lhs, rhs = eqn.invars[0].aval, eqn.invars[1].aval
  k = float(np.prod([lhs.shape[d] for d in lc]))
  batch = float(np.prod([lhs.shape[d] for d in lb]))
  m = float(np.prod([n for d, n in enumerate(lhs.shape) if d not in lc and d not in lb]))
  n = float(
      np.prod(
          [
              n
              for d, n in enumerate(rhs.shape)
              if d not in rc and d not in eqn.params["dimension_numbers"][1][1]
          ]
      )
  )
  return 2.0 * batch * m * n * k


def jaxpr_flops(jaxpr) -> float:
  """Matmul and convolution FLOPs of a (closed) jaxpr, as torch's FlopCounterMode counts them:
  dot_general and conv_general_dilated, recursing into sub-jaxprs (jit, custom_vjp/jvp, remat);
  a scan body counts `length` times, a cond its most expensive branch, a while body once."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "dot_general":
      total += _dot_flops(eqn)
    elif name == "conv_general_dilated":
      total += _conv_flops(eqn)
    elif name == "scan":
      total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
    elif name == "cond":
      total += max(jaxpr_flops(b) for b in eqn.params["branches"])
    else:
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):  # (Closed)Jaxpr
            total += jaxpr_flops(sub)
  return total


def peak_bytes():
  """Peak bytes in use on device 0 (`memory_stats()`), None where the backend has none."""
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # pylint: disable=broad-except
    return None
  return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def measure_train(
    exp, *, steps_per_jit: int, steps: int, repeats: int, warmup: int, peak_tflops: float
) -> tuple[dict, object]:
  """The "train" row's numbers, and the final state (its EMA parameters feed the samplers)."""
  k, b = int(steps_per_jit), int(exp.config.data.batch_size)
  step_fn = exp.jit_train_step() if k == 1 else exp.jit_train_steps(k)
  batches = [exp.global_batch(i) if k == 1 else exp.global_batches(i * k, k) for i in range(2)]
  state = jax.block_until_ready(jax.jit(exp.init_state, out_shardings=exp.state_sharding)())
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  calls = max(1, steps // k)

  def run(n):
    nonlocal state
    metrics = None
    for i in range(n):
      state, metrics = step_fn(state, batches[i % 2])
    jax.block_until_ready((state, metrics))

  start = time.perf_counter()
  run(1)
  first = time.perf_counter() - start
  run(warmup)
  call_s, times = _median_time(lambda: run(calls), repeats)
  step_s = call_s / (calls * k)
  # FLOPs of one optimiser step, counted on its jaxpr (matmuls and convolutions, forward and
  # backward, as torch's FlopCounterMode counts EDM's step): XLA:GPU's cost analysis leaves out the
  # cuDNN convolutions (it reported 1.66 of 127 GFLOP per image for DDPM++), and needs a compile.
  flops = jaxpr_flops(jax.make_jaxpr(exp.train_step)(state, exp.global_batch(0)))
  row = dict(
      kind="train",
      params=params,
      batch=b,
      steps_per_jit=k,
      images_per_s=b / step_s,
      step_ms=1e3 * step_s,
      step_ms_repeats=[1e3 * t / (calls * k) for t in times],
      first_call_s=first,
      compile_s=first - step_s * k,
      repeats=repeats,
      steps_per_repeat=calls * k,
      flops_per_step=flops,
      flops_source="jaxpr: dot_general + conv_general_dilated",
      flops_per_image=flops / b if flops else None,
      tflops_per_s=flops / step_s / 1e12 if flops else None,
      peak_tflops=peak_tflops,
      mfu=flops / step_s / (peak_tflops * 1e12) if flops else None,
      peak_bytes=peak_bytes(),
  )
  return row, state


def measure_sampler(method, params, name: str, spec: dict, *, num: int, repeats: int) -> dict:
  """The "sample" row of one sampler: `method.sample` at batch `num`."""
  rng = jax.random.PRNGKey(1)
  calls = iter(range(10**6))

  def call():
    jax.block_until_ready(
        method.sample(params, jax.random.fold_in(rng, next(calls)), num, **copy.deepcopy(spec))
    )

  return dict(
      sampler=name,
      solver=spec["solver"],
      num_steps=spec["num_steps"],
      grid=spec["grid"],
      **timed_sample(
          call, num=num, nfe=solvers.nfe(spec["solver"], spec["num_steps"]), repeats=repeats
      ),
      peak_bytes=peak_bytes(),
  )


def timed_sample(call, *, num: int, nfe: int, repeats: int) -> dict:
  """The timing fields of a "sample" row (both frameworks): `call()` draws `num` images with `nfe`
  network evaluations and returns when done; its first call counts compilation, then the median
  of `repeats` calls."""
  start = time.perf_counter()
  call()
  first = time.perf_counter() - start
  call_s, times = _median_time(call, repeats)
  return dict(
      kind="sample",
      nfe=nfe,
      batch=num,
      images_per_s=num / call_s,
      network_images_per_s=num * nfe / call_s,
      call_s=call_s,
      call_s_repeats=times,
      first_call_s=first,
      compile_s=first - call_s,
      repeats=repeats,
  )


def _commit(given: str | None) -> str | None:
  """`--commit` when given (a device's copy of the tree may carry another checkout's .git), else
  `git rev-parse HEAD`."""
  if given:
    return given
  try:
    out = subprocess.run(
        ["git", "-C", REPO, "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return out.stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return given


def emit(row: dict, out: str | None) -> None:
  """Prints `row` as one JSON line and appends it to `out` (JSONL)."""
  line = json.dumps(row, sort_keys=False, default=str)
  print(line, flush=True)
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "a") as f:
      f.write(line + "\n")


def log(msg: str) -> None:
  print(f"[throughput] {msg}", file=sys.stderr, flush=True)


# -- EDM's own PyTorch code (NVlabs/edm), in a subprocess ----------------------------------------

EDM_MODES = {  # autocast bf16, torch.compile, TF32 allowed, EDM's own use_fp16
    "fp32": dict(bf16=False, compile=False, tf32=False, fp16=False),
    "tf32": dict(bf16=False, compile=False, tf32=True, fp16=False),
    "bf16": dict(bf16=True, compile=False, tf32=False, fp16=False),
    "bf16_compile": dict(bf16=True, compile=True, tf32=False, fp16=False),
    "fp16": dict(bf16=False, compile=False, tf32=False, fp16=True),
    "sample": dict(bf16=True),
    "sample_fp32": dict(bf16=False),
}


def _import_edm(edm_dir: str):
  """EDM's `training.networks`, `training.loss`, `training.augment` and `generate` modules."""
  try:
    import distutils.util  # pylint: disable=g-import-not-at-top,unused-import,deprecated-module
  except ImportError:  # Python >= 3.12 without setuptools' shim: dnnlib needs only strtobool
    shim = types.ModuleType("distutils.util")
    shim.strtobool = lambda v: int(str(v).lower() in ("y", "yes", "t", "true", "on", "1"))
    sys.modules.setdefault("distutils", types.ModuleType("distutils")).util = shim
    sys.modules["distutils.util"] = shim
  sys.path.insert(0, os.path.abspath(edm_dir))
  import generate  # pylint: disable=g-import-not-at-top
  from training import augment, loss, networks  # pylint: disable=g-import-not-at-top

  return networks, loss, augment, generate


def edm_worker(opts: dict) -> None:
  """EDM's CIFAR-10 DDPM++ step and sampler in PyTorch; prints one `ROW <json>` line per mode."""
  import torch  # pylint: disable=g-import-not-at-top (optional: only this subprocess needs it)
  import torch.utils.flop_counter  # pylint: disable=g-import-not-at-top

  networks, loss_lib, augment_lib, generate = _import_edm(opts["edm_dir"])
  tiny, batch, device = opts["tiny"], opts["batch"], "cuda" if torch.cuda.is_available() else "cpu"
  res = 8 if tiny else 32
  arch = dict(
      model_type="SongUNet",
      embedding_type="positional",
      encoder_type="standard",
      decoder_type="standard",
      channel_mult_noise=1,
      resample_filter=[1, 1],
      model_channels=128,
      channel_mult=[2, 2, 2],
  )  # train.py, --arch=ddpmpp
  if tiny:  # config_lib.shrink's ddpmpp
    arch.update(model_channels=16, channel_mult=[1], num_blocks=1, attn_resolutions=[])
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  class Float32Out(torch.nn.Module):
    """SongUNet with a float32 output: under autocast its last conv returns bfloat16, and
    EDMPrecond asserts F_x.dtype == float32."""

    def __init__(self, model):
      super().__init__()
      self.model = model

    def forward(self, *args, **kwargs):
      return self.model(*args, **kwargs).to(torch.float32)

  def build(mode):
    torch.manual_seed(0)
    net = networks.EDMPrecond(
        img_resolution=res,
        img_channels=3,
        label_dim=0,
        use_fp16=mode.get("fp16", False),
        augment_dim=9,
        dropout=0.13,
        **arch,
    )
    count = sum(p.numel() for p in net.parameters())
    if mode.get("bf16"):
      net.model = Float32Out(net.model)
    return net.train().requires_grad_(True).to(device), count

  def autocast(mode):
    return torch.autocast(device, dtype=torch.bfloat16, enabled=bool(mode.get("bf16")))

  def row(name, mode, **kw):
    meta = dict(
        framework="edm",
        edm_mode=name,
        autocast_bf16=bool(mode.get("bf16")),
        torch_compile=bool(mode.get("compile")),
        allow_tf32=bool(mode.get("tf32")),
        edm_use_fp16=bool(mode.get("fp16")),
        device_kind=torch.cuda.get_device_name() if device == "cuda" else "cpu",
        platform=device,
        versions=dict(
            torch=torch.__version__, cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version()
        ),
    )
    print("ROW " + json.dumps(dict(meta, **kw)), flush=True)

  for name in opts["modes"]:
    mode = EDM_MODES[name]
    torch.backends.cudnn.benchmark = True  # training_loop.py (cudnn_benchmark=True)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = bool(
        mode.get("tf32")
    )  # training_loop.py turns both off
    if device == "cuda":
      torch.cuda.empty_cache()
      torch.cuda.reset_peak_memory_stats()
    net, count = build(mode)
    images = torch.rand([batch, 3, res, res], device=device) * 2 - 1
    expected = None if tiny else EDM_C10_PARAMS
    common = dict(
        params=count, params_expected=expected, params_match=count == expected if expected else None
    )
    if name.startswith("sample"):
      net.eval().requires_grad_(False)
      num = opts["sample_batch"]
      steps = 2 if tiny else 18
      latents = torch.randn([num, 3, res, res], device=device)

      def sample_once():
        with torch.no_grad(), autocast(mode):
          out = generate.edm_sampler(net, latents, num_steps=steps)
        sync()
        return out

      row(
          name,
          mode,
          sampler="edm_sampler",
          solver="heun",
          num_steps=steps,
          grid="karras",
          **timed_sample(sample_once, num=num, nfe=2 * steps - 1, repeats=opts["sample_repeats"]),
          peak_bytes=torch.cuda.max_memory_allocated() if device == "cuda" else None,
          **common,
      )
    else:
      loss_fn = loss_lib.EDMLoss(P_mean=-1.2, P_std=1.2, sigma_data=0.5)
      pipe = augment_lib.AugmentPipe(
          p=0.12, xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1
      )
      ema = copy.deepcopy(net).eval().requires_grad_(False)
      optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, betas=[0.9, 0.999], eps=1e-8)
      model = torch.compile(net) if mode.get("compile") else net
      nimg = [0]

      def train_step():  # training_loop.py's loop body (one GPU, no accumulation, no stats)
        optimizer.zero_grad(set_to_none=True)
        with autocast(mode):
          loss = loss_fn(net=model, images=images, labels=None, augment_pipe=pipe)
        loss.sum().mul(1.0 / batch).backward()
        for g in optimizer.param_groups:
          g["lr"] = 1e-3 * min(nimg[0] / max(10_000 * 1000, 1e-8), 1)
        for param in net.parameters():
          if param.grad is not None:
            torch.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5, out=param.grad)
        optimizer.step()
        halflife = min(500 * 1000, nimg[0] * 0.05)
        beta = 0.5 ** (batch / max(halflife, 1e-8))
        for p_ema, p_net in zip(ema.parameters(), net.parameters()):
          p_ema.copy_(p_net.detach().lerp(p_ema, beta))
        nimg[0] += batch

      def steps_once():
        for _ in range(opts["steps"]):
          train_step()
        sync()

      start = time.perf_counter()
      train_step()
      sync()
      first = time.perf_counter() - start
      for _ in range(opts["warmup"]):
        train_step()
      sync()
      flops = None
      if not mode.get("compile"):  # matmul/conv FLOPs of one step, PyTorch's own counter
        with torch.utils.flop_counter.FlopCounterMode(display=False) as counter:
          train_step()
        sync()
        flops = float(counter.get_total_flops())
      call_s, times = _median_time(steps_once, opts["repeats"])
      step_s = call_s / opts["steps"]
      peak = opts["peak_tflops"] * 1e12
      row(
          name,
          mode,
          kind="train",
          batch=batch,
          steps_per_jit=1,
          images_per_s=batch / step_s,
          step_ms=1e3 * step_s,
          step_ms_repeats=[1e3 * t / opts["steps"] for t in times],
          first_call_s=first,
          compile_s=first - step_s,
          repeats=opts["repeats"],
          steps_per_repeat=opts["steps"],
          flops_per_step_torch_counter=flops,
          flops_per_image=flops / batch if flops else None,
          mfu=flops / step_s / peak if flops else None,
          peak_tflops=opts["peak_tflops"],
          peak_bytes=torch.cuda.max_memory_allocated() if device == "cuda" else None,
          **common,
      )
      del ema, optimizer, model, loss_fn, pipe
    del net, images
    gc.collect()


def edm_rows(args, base: dict):
  """Runs `edm_worker` (subprocess, or in-process with --edm_inprocess) and emits its rows."""
  opts = dict(
      edm_dir=args.compare_edm,
      tiny=args.tiny,
      modes=args.edm_modes.split(","),
      batch=args.edm_batch or (8 if args.tiny else 512),
      sample_batch=args.sample_batch,
      steps=args.steps,
      repeats=args.repeats,
      warmup=args.warmup,
      sample_repeats=args.sample_repeats,
      peak_tflops=args.peak_tflops,
  )
  for m in opts["modes"]:
    if m not in EDM_MODES:
      raise ValueError(f"--edm_modes: unknown mode {m!r}; known: {sorted(EDM_MODES)}")
  edm_commit = os.path.join(args.compare_edm, "EDM_COMMIT")
  base = dict(
      base,
      name=args.name or "edm",
      framework="edm",
      config="NVlabs/edm train.py --arch=ddpmpp --precond=edm (CIFAR-10)",
      overrides={},
      edm_commit=open(edm_commit).read().strip() if os.path.exists(edm_commit) else None,
  )
  for key in ("versions", "device_kind", "platform", "config_arg", "model", "dtype"):
    base.pop(key, None)

  def handle(line):
    if line.startswith("ROW "):
      row = dict(base, **json.loads(line[4:]))
      emit(row, args.out)
      log(
          f"edm {row['edm_mode']}: {row['images_per_s']:.0f} images/s at batch {row['batch']}, "
          f"compile {row['compile_s']:.1f} s, params {row['params']:,}"
      )
    elif line.strip():
      print(line.rstrip(), file=sys.stderr, flush=True)

  if args.edm_inprocess:
    import contextlib  # pylint: disable=g-import-not-at-top
    import io  # pylint: disable=g-import-not-at-top

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
      edm_worker(opts)
    for line in buf.getvalue().splitlines():
      handle(line)
    return
  cmd = [
      args.edm_python or sys.executable,
      os.path.abspath(__file__),
      "--edm_worker",
      json.dumps(opts),
  ]
  # JAX (imported with this module) stays off the GPU in the worker, which PyTorch has to itself.
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
  timer = threading.Timer(args.edm_timeout, proc.kill) if args.edm_timeout else None
  if timer:
    timer.start()
  for line in proc.stdout:
    handle(line)
  rc = proc.wait()
  if timer:
    timer.cancel()
  if rc:
    log(f"EDM subprocess exited with {rc} (timeout {args.edm_timeout} s?); rows so far kept")


def summarize(path: str) -> None:
  """A fixed-width table of the rows in a JSONL file, then the speed of each diffjax train/heun18
  row relative to the EDM rows of the same kind and network (same parameter count)."""
  rows = [json.loads(line) for line in open(path) if line.strip()]
  fmt = "{:<28} {:<7} {:<6} {:<13} {:>5} {:>9} {:>9} {:>8} {:>6} {:>8} {:>11}"
  print(
      fmt.format(
          "name",
          "fw",
          "kind",
          "mode/sampler",
          "batch",
          "images/s",
          "ms",
          "compile",
          "MFU",
          "peak GiB",
          "params",
      )
  )
  num = lambda v, f: "-" if v is None else format(v, f)
  for r in rows:
    what = r.get("edm_mode") or r.get("sampler") or f"k={r.get('steps_per_jit', 1)}"
    ms = r.get("step_ms") if r["kind"] == "train" else 1e3 * r.get("call_s", 0.0)
    peak = r.get("peak_bytes")
    print(
        fmt.format(
            str(r.get("name"))[:28],
            r.get("framework", ""),
            r["kind"],
            what[:13],
            r.get("batch", ""),
            num(r.get("images_per_s"), ".0f"),
            num(ms, ".1f"),
            num(r.get("compile_s"), ".1f"),
            num(r.get("mfu"), ".3f"),
            num(peak / 2**30 if peak else None, ".1f"),
            num(r.get("params"), ","),
        )
    )
  edm = [r for r in rows if r.get("framework") == "edm"]
  for r in rows:
    if r.get("framework") != "diffjax" or r.get("sampler") not in (None, "heun18"):
      continue
    for e in edm:
      same = e["kind"] == r["kind"] and e.get("params") == r.get("params")
      if same and e.get("images_per_s") and r.get("images_per_s"):
        print(
            f"{r['name']} {r['kind']} / edm {e['edm_mode']}: "
            f"{r['images_per_s'] / e['images_per_s']:.2f}x images/s"
        )


# -- main ------------------------------------------------------------------------------------------


def build_config(args):
  """(config, its path or description, the applied overrides) from the flags."""
  if args.model == "dit":
    config, path = dit_config(args.variant, parse_shape(args.latent)), f"dit:{args.variant}"
  else:
    path = args.config
    file = path if os.path.exists(path) else os.path.join(REPO, path)  # relative to the repo too
    config = config_lib.load(file, args.arg)
  overrides = dict(apply_override(config, item) for item in args.set)
  if args.tiny:
    config_lib.shrink(config)
  return config, path, overrides


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default="configs/edm/cifar10.py")
  p.add_argument("--arg", default=None, help="config arg, as after ':' in --config")
  p.add_argument(
      "--set",
      action="append",
      default=[],
      metavar="KEY=VALUE",
      help="config override, e.g. model.dtype=bfloat16 (repeatable)",
  )
  p.add_argument("--name", default=None, help="row name (default: config and overrides)")
  p.add_argument(
      "--model",
      choices=("config", "dit"),
      default="config",
      help="dit: GaussianDiffusion (EDM) around config_lib.dit(--variant) on latents",
  )
  p.add_argument("--variant", default="B/2")
  p.add_argument("--latent", default="32x32x4", help="DiT latent shape HxWxC")
  p.add_argument("--data_shape", default=None, help="synthetic data shape HxWxC (default: data)")
  p.add_argument("--num_classes", type=int, default=None)
  p.add_argument("--steps_per_jit", type=int, default=1)
  p.add_argument("--steps", type=int, default=10, help="optimiser steps per timed repeat")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--samplers", default="heun18,dpmpp20", help="comma list of SAMPLERS or 'none'")
  p.add_argument("--sample_batch", type=int, default=1024)
  p.add_argument("--sample_repeats", type=int, default=3)
  p.add_argument(
      "--peak_tflops",
      type=float,
      default=989.0,
      help="device peak dense bf16 TFLOP/s for MFU (989: H100/H200 SXM)",
  )
  p.add_argument("--expect_params", type=int, default=None, help="reported beside the count")
  p.add_argument("--out", default=None, help="append the JSON rows here (JSONL)")
  p.add_argument("--commit", default=None, help="used when `git rev-parse HEAD` fails")
  p.add_argument("--tiny", action="store_true", help="CPU smoke sizes")
  p.add_argument(
      "--compare-edm",
      "--compare_edm",
      dest="compare_edm",
      default=None,
      metavar="DIR",
      help="a checkout of NVlabs/edm: also time EDM's PyTorch code",
  )
  p.add_argument("--only_edm", action="store_true", help="with --compare-edm: no diffjax rows")
  p.add_argument("--edm_modes", default="fp32,bf16,sample,bf16_compile")
  p.add_argument("--edm_batch", type=int, default=None, help="default 512 (--tiny: 8)")
  p.add_argument("--edm_python", default=None, help="interpreter with torch (default: this one)")
  p.add_argument("--edm_timeout", type=float, default=None, help="seconds; rows so far are kept")
  p.add_argument("--edm_inprocess", action="store_true", help="no subprocess (tests)")
  p.add_argument("--edm_worker", default=None, help=argparse.SUPPRESS)
  p.add_argument(
      "--summary",
      default=None,
      metavar="JSONL",
      help="only print a table of the rows in this file (and EDM ratios)",
  )
  args = p.parse_args(argv)
  if args.tiny:
    args.steps, args.repeats, args.warmup = 2, 2, 1
    args.sample_batch, args.sample_repeats = 8, 2
  return args


def main(argv=None) -> list[dict]:
  """Runs the benchmark; returns the diffjax rows (the EDM rows are only emitted)."""
  args = parse_args(argv)
  if args.summary:
    summarize(args.summary)
    return []
  if args.edm_worker:
    edm_worker(json.loads(args.edm_worker))
    return []
  config, path, overrides = build_config(args)
  samplers = [] if args.samplers in ("", "none") else args.samplers.split(",")
  for s in samplers:
    if s not in SAMPLERS:
      raise ValueError(f"--samplers: unknown {s!r}; known: {sorted(SAMPLERS)}")
  base = dict(
      name=args.name or path + "".join(f" {k}={v}" for k, v in overrides.items()),
      framework="diffjax",
      commit=_commit(args.commit),
      config=path,
      config_arg=args.arg,
      overrides=overrides,
      tiny=args.tiny,
  )
  if args.compare_edm:  # first: JAX has not reserved the device's memory yet
    edm_rows(args, base)
    if args.only_edm:
      return []
  dev = jax.devices()[0]
  base.update(
      device_kind=dev.device_kind,
      platform=jax.default_backend(),
      versions=dict(
          jax=jax.__version__,
          jaxlib=getattr(jaxlib, "__version__", None),
          flax=flax.__version__,
      ),
      model=str(config.model.kind),
      dtype=str(config.model.get("dtype", "float32")),
      matmul_precision=getattr(jax.config, "jax_default_matmul_precision", None),
      xla_flags=os.environ.get("XLA_FLAGS", ""),  # a row's flag variant (run_throughput_gpu.sh)
      prng_impl=str(jax.config.jax_default_prng_impl),
  )
  log(
      f"{base['name']} on {dev.device_kind}; MFU assumes a peak of {args.peak_tflops} dense bf16 "
      "TFLOP/s (--peak_tflops; 989 = H100/H200 SXM)"
  )
  dataset = synthetic_dataset(
      config, parse_shape(args.data_shape) if args.data_shape else None, args.num_classes
  )
  exp = experiment.Experiment(config, jax.devices()[:1], dataset=dataset)
  expected = None if args.tiny else args.expect_params
  rows = []
  train, state = measure_train(
      exp,
      steps_per_jit=args.steps_per_jit,
      steps=args.steps,
      repeats=args.repeats,
      warmup=args.warmup,
      peak_tflops=args.peak_tflops,
  )
  row = dict(
      base,
      **train,
      params_expected=expected,
      params_match=train["params"] == expected if expected else None,
  )
  emit(row, args.out)
  rows.append(row)
  log(
      f"train: {train['images_per_s']:.0f} images/s, {train['step_ms']:.1f} ms/step, "
      f"compile {train['compile_s']:.1f} s, MFU {train['mfu']}, params {train['params']:,}"
  )
  for s in samplers:
    spec = dict(SAMPLERS[s], num_steps=2 if args.tiny else SAMPLERS[s]["num_steps"])
    r = measure_sampler(
        exp.method, state.ema_params, s, spec, num=args.sample_batch, repeats=args.sample_repeats
    )
    row = dict(base, **r, params=train["params"])
    emit(row, args.out)
    rows.append(row)
    log(
        f"{s}: {r['images_per_s']:.0f} images/s at batch {r['batch']}, "
        f"compile {r['compile_s']:.1f} s"
    )
  return rows


if __name__ == "__main__":
  try:
    main()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
