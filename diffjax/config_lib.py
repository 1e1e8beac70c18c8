"""Shared config builders and the config-arg parser (STYLE.md §2). Configs are data: no jax here.

A config file's `get_config(arg)` receives the text after `:` in `--config=path.py:arg`, e.g.
`smoke`, `variant=paper,smoke` or `default`. `parse_arg` turns it into a ConfigDict of known keys with
typed defaults; an unknown key or a value of the wrong type raises ValueError naming the key.
"""

from __future__ import annotations

import ml_collections


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `"key=value,flag,..."` against typed defaults.

  A bare word sets a boolean default to True (`smoke`), or, when a `size` key exists, selects that size
  (`default`, `demo`, ...). Values are cast to the default's type.

  Args:
    arg: the text after `:` in `--config=file.py:arg`, or None.
    **defaults: the allowed keys and their default values (their types are enforced).

  Returns:
    A locked ConfigDict with one entry per default.
  """
  out = dict(defaults)
  for item in filter(None, (s.strip() for s in (arg or "").split(","))):
    key, eq, value = item.partition("=")
    if not eq:
      if isinstance(defaults.get(key), bool):
        out[key] = True
        continue
      if "size" in defaults:
        key, value = "size", item
      else:
        raise ValueError(f"config arg {item!r}: unknown flag; known keys: {sorted(defaults)}")
    if key not in defaults:
      raise ValueError(f"config arg {key!r}: unknown key; known keys: {sorted(defaults)}")
    kind = type(defaults[key])
    if kind is bool:
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"config arg {key!r}: expected a boolean, got {value!r}")
      out[key] = value.lower() in ("true", "1")
    else:
      try:
        out[key] = kind(value)
      except ValueError as e:
        raise ValueError(f"config arg {key!r}: expected {kind.__name__}, got {value!r}") from e
  return ml_collections.ConfigDict(out)


def pick(size: str, table: dict, key: str = "size"):
  """`table[size]`, or a ValueError naming the config arg and the allowed sizes."""
  if size not in table:
    raise ValueError(f"config arg {key}={size!r}: expected one of {sorted(table)}")
  return table[size]


def adam(
    lr: float,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    warmup_steps: int = 0,
    decay: str = "constant",
    grad_clip: float = 0.0,
    nan_to_num: bool = False,
    ema: dict | None = None,
) -> dict:
  """Adam(W) with linear warm-up, optional cosine decay, global-norm clipping and EMA.

  `ema` is `dict(kind="constant", decay=0.9999)` or EDM's
  `dict(kind="halflife", halflife_images=500_000, rampup_ratio=0.05)` (Karras et al. 2022, App. F.1).
  """
  return dict(
      kind="adamw" if weight_decay else "adam",
      lr=lr,
      b1=b1,
      b2=b2,
      eps=eps,
      weight_decay=weight_decay,
      warmup_steps=warmup_steps,
      decay=decay,
      grad_clip=grad_clip,
      nan_to_num=nan_to_num,
      ema=ema or dict(kind="constant", decay=0.999, halflife_images=0, rampup_ratio=0.0),
  )


def ema_constant(decay: float) -> dict:
  return dict(kind="constant", decay=decay, halflife_images=0, rampup_ratio=0.0)


def ema_halflife(halflife_images: int, rampup_ratio: float = 0.05) -> dict:
  return dict(kind="halflife", decay=0.0, halflife_images=halflife_images, rampup_ratio=rampup_ratio)


def train(
    num_steps: int,
    *,
    log_every_steps: int = 100,
    ckpt_every_steps: int = 1000,
    keep_checkpoints: int = 3,
    sample_every_steps: int = 0,
    eval_every_steps: int = 0,
    async_checkpoints: bool = True,
) -> dict:
  """Loop lengths, all in optimiser steps. 0 disables a periodic hook."""
  return dict(
      num_steps=num_steps,
      log_every_steps=log_every_steps,
      ckpt_every_steps=ckpt_every_steps,
      keep_checkpoints=keep_checkpoints,
      sample_every_steps=sample_every_steps,
      eval_every_steps=eval_every_steps,
      async_checkpoints=async_checkpoints,
  )


def mesh() -> dict:
  """All devices on the `data` axis; `(-1, 2)` with axes `("data", "model")` would add a model axis."""
  return dict(shape=(-1,), axes=("data",))


def base(seed: int = 0) -> ml_collections.ConfigDict:
  """Sections every config has, so `--config.<section>.<key>` works the same on any config."""
  config = ml_collections.ConfigDict()
  config.seed = seed
  config.init_from = ""  # a checkpoint directory to start from when the workdir has none
  config.mesh = mesh()
  config.runtime = dict(distributed=False)  # True: jax.distributed.initialize() (multi-host launchers)
  return config


def shrink(config: ml_collections.ConfigDict, *, num_steps: int = 2, batch_size: int = 8) -> None:
  """Makes a config run in seconds on a CPU (what the tests run): few steps, tiny batch, small net."""
  config.data.batch_size = batch_size
  config.train.num_steps = num_steps
  config.train.log_every_steps = 1
  config.train.ckpt_every_steps = 2
  config.train.sample_every_steps = 0
  config.train.eval_every_steps = 0
  config.train.async_checkpoints = False
  config.optim.warmup_steps = 0
  config.eval.num_samples = 16
  config.sample.num_steps = 2
  config.sample.batch_size = 8
  config.sample.num_samples = 16
  model = config.model
  if model.kind in ("unet", "ddpm"):
    model.ch, model.ch_mult, model.num_res_blocks = 16, (1, 2), 1
    model.attn_resolutions = (4,)
  elif model.kind == "mlp":
    model.width, model.depth = 32, 2


def load(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file at `path`, as `--config=path:arg` would give it."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  if not path.endswith(".py"):
    raise ValueError(f"config path {path!r}: expected a .py file")
  spec = importlib.util.spec_from_file_location("diffjax_config_" + str(abs(hash(path))), path)
  if spec is None:
    raise FileNotFoundError(f"config file {path!r} not found")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def gaussian(
    param: str,
    weighting: str,
    t_sampling: str,
    *,
    param_kwargs: dict | None = None,
    weighting_kwargs: dict | None = None,
    t_sampling_kwargs: dict | None = None,
    conditional: bool = False,
) -> dict:
  """`method` section of a GaussianDiffusion config: the core functions it combines, by name."""
  return dict(
      kind="gaussian",
      param=param,
      param_kwargs=param_kwargs or {},
      weighting=weighting,
      weighting_kwargs=weighting_kwargs or {},
      t_sampling=t_sampling,
      t_sampling_kwargs=t_sampling_kwargs or {},
      conditional=conditional,
  )


def sampler(
    solver: str,
    num_steps: int,
    grid: str,
    *,
    grid_kwargs: dict | None = None,
    solver_kwargs: dict | None = None,
    guidance_scale: float = 1.0,
    batch_size: int = 1000,
    num_samples: int = 10_000,
    seed: int = 0,
) -> dict:
  """`sample` section: the solver, its σ grid, and how many samples `--mode=sample` draws."""
  return dict(
      solver=solver,
      num_steps=num_steps,
      grid=grid,
      grid_kwargs=grid_kwargs or {},
      solver_kwargs=solver_kwargs or {},
      guidance_scale=guidance_scale,
      batch_size=batch_size,
      num_samples=num_samples,
      seed=seed,
  )


def evaluation(num_samples: int = 5000, num_plot: int = 2000, seed: int = 1, num_projections: int = 512,
               *, fd_classifier_dir: str = "", fd_num_samples: int = 10_000,
               fd_samplers: dict | None = None, bpd_num_examples: int = 0, bpd_batch_size: int = 500):
  """`eval` section.

  Always: sliced W2 of `num_samples` generated samples against as many held-out examples.
  FD-FMNIST (experiments/fd_fmnist/results.md) when `fd_classifier_dir` holds the classifier and
  its `test_stats.npz`: `fd_num_samples` samples per entry of `fd_samplers`, a dict
  name -> sample overrides (`{}` = the config's sampler; e.g. `heun35` below).
  Test-set bits/dim of the first `bpd_num_examples` test examples when > 0 and the Method has `bpd`.
  """
  return dict(num_samples=num_samples, num_plot=num_plot, seed=seed, num_projections=num_projections,
              fd_classifier_dir=fd_classifier_dir, fd_num_samples=fd_num_samples,
              fd_samplers=fd_samplers if fd_samplers is not None else {"default": {}},
              bpd_num_examples=bpd_num_examples, bpd_batch_size=bpd_batch_size)


# The fixed second sampler of the Fashion-MNIST table: EDM's Heun, 18 steps (35 NFE), ρ = 7 grid on
# σ ∈ [0.002, 80] for every model (VP and flow models are mapped to the σ-frame by the adapter).
HEUN35 = dict(solver="heun", num_steps=18, grid="karras",
              grid_kwargs=dict(sigma_min=0.002, sigma_max=80.0, rho=7.0))


def mlp(width: int = 256, depth: int = 4, **kwargs) -> dict:
  return dict(kind="mlp", width=width, depth=depth, **kwargs)


def fashion_mnist(batch_size: int, pad_to_32: bool = True, path: str = "/usr/share/datasets/fashion-mnist/"):
  """Fashion-MNIST from Debian's `dataset-fashion-mnist` (`make fashion-mnist`), in [-1, 1]."""
  return dict(name="fashion_mnist", batch_size=batch_size, pad_to_32=pad_to_32, path=path)


def small_unet(ch: int = 64, dropout: float = 0.0, **kwargs) -> dict:
  """A ~6 M-parameter DDPM-style U-Net for 32×32×1 (3 levels, attention at 8×8)."""
  return dict(kind="unet", ch=ch, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(8,),
              dropout=dropout, **kwargs)
