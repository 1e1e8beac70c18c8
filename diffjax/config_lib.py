"""Shared config builders and the config-arg parser (STYLE.md §2). Configs are data: no jax here.

A config file's `get_config(arg)` receives the text after `:` in `--config=path.py:arg`, e.g.
`smoke`, `variant=paper,smoke` or `default`. `parse_arg` turns it into a ConfigDict of known keys
with typed defaults; an unknown key or a value of the wrong type raises ValueError naming the key.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses `"key=value,flag,..."` against typed defaults.

  A bare word sets a boolean default to True (`smoke`), or, when a `size` key exists, selects that
  size (`default`, `demo`, ...). Values are cast to the default's type.

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
    flatten: bool = False,
    ema: dict | None = None,
) -> dict:
  """Adam(W) with linear warm-up, optional cosine decay, global-norm clipping and EMA.

  `flatten=True` runs the optimizer on one concatenated vector of all parameters (`optax.flatten`):
  the same update (Adam is elementwise; the global norm sums in another order), in a few large
  kernels instead of a few per parameter array, for launch-bound small networks. The optimizer
  state then holds flat vectors, so a run resumes only with the setting it started with.

  `ema` is `dict(kind="constant", decay=0.9999)` or EDM's
  `dict(kind="halflife", halflife_images=500_000, rampup_ratio=0.05)` (Karras et al. 2022,
  App. F.1).
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
      flatten=flatten,
      ema=ema or dict(kind="constant", decay=0.999, halflife_images=0, rampup_ratio=0.0),
  )


def ema_constant(decay: float) -> dict:
  return dict(kind="constant", decay=decay, halflife_images=0, rampup_ratio=0.0)


def optional(kind: type, value=None):
  """A leaf that may be None and still be set from the command line: ml_collections refuses
  `--config.data.path=DIR` on a plain None ("type NoneType ... not supported for overriding"), so
  an unset value is a typed placeholder (None until set)."""
  return config_dict.placeholder(kind) if value is None else value


def ema_halflife(halflife_images: int, rampup_ratio: float = 0.05) -> dict:
  return dict(
      kind="halflife", decay=0.0, halflife_images=halflife_images, rampup_ratio=rampup_ratio
  )


def train(
    num_steps: int,
    *,
    log_every_steps: int = 100,
    ckpt_every_steps: int = 1000,
    keep_checkpoints: int = 3,
    sample_every_steps: int = 0,
    eval_every_steps: int = 0,
    async_checkpoints: bool = True,
    profile_steps: int = 0,
    profile_from_step: int = 100,
    allow_new_config: bool = False,
    steps_per_jit: int = 1,
) -> dict:
  """Loop lengths, all in optimiser steps. 0 disables a periodic hook.

  `profile_steps` > 0 writes a `jax.profiler` trace of that many training steps, from step
  `profile_from_step` on, to `<workdir>/profile` (Perfetto / TensorBoard; not taken when a resumed
  run starts past that step).

  A workdir whose checkpoints were made under another config (model, method, schedule, optim, data,
  seed; diffjax/train/workdir.py lists the keys that may change) is refused. `allow_new_config=True`
  resumes its latest checkpoint under the new config (e.g. another learning rate or EMA rate) and
  keeps the old `config.json` as `config_until_step_<step>.json`; a checkpoint whose shapes do not
  fit the new config is still refused, and nothing is ever moved or deleted for it.

  `steps_per_jit` = k > 1 runs up to k optimiser steps in one jitted `lax.scan` (score_sde's
  `n_jitted_steps`): one dispatch per k steps for small, launch-bound networks. The steps are the
  same (same batches, same randomness; equal to k = 1 up to float rounding, as XLA fuses the
  scanned step differently); a chunk ends early at every checkpoint, log, sample, eval
  or profile step, so those hooks see the same states.
  """
  return dict(
      num_steps=num_steps,
      log_every_steps=log_every_steps,
      ckpt_every_steps=ckpt_every_steps,
      keep_checkpoints=keep_checkpoints,
      sample_every_steps=sample_every_steps,
      eval_every_steps=eval_every_steps,
      async_checkpoints=async_checkpoints,
      profile_steps=profile_steps,
      profile_from_step=profile_from_step,
      allow_new_config=allow_new_config,
      steps_per_jit=steps_per_jit,
  )


def mesh() -> dict:
  """All devices on the `data` axis; `(-1, 2)`, axes `("data", "model")`, would add a model axis."""
  return dict(shape=(-1,), axes=("data",))


def base(seed: int = 0) -> ml_collections.ConfigDict:
  """Sections every config has, so `--config.<section>.<key>` works the same on any config."""
  config = ml_collections.ConfigDict()
  config.seed = seed
  config.init_from = ""  # a checkpoint directory to start from when the workdir has none
  config.mesh = mesh()
  # distributed=True: jax.distributed.initialize(). On SLURM, Open MPI, TPU pods, ... the launcher
  # provides the coordinates; elsewhere give coordinator_address ("host:port", process 0's),
  # num_processes and process_id (one per process). cpu_collectives: the cross-process collectives
  # of the CPU backend ("gloo"; "" keeps JAX's default, which has none).
  config.runtime = dict(
      distributed=False,
      coordinator_address="",
      num_processes=0,
      process_id=-1,
      cpu_collectives="gloo",
  )
  return config


# Tiny networks for `shrink`, one per model kind: a few CPU-seconds to compile and run. The paper
# U-Nets keep one resolution level and no attention: a second level costs about twice the XLA:CPU
# compile time of the whole smoke run (measured: 27 s vs 12 s of CPU for EDM's DDPM++), and
# resampling and attention are tested in tests/models. ("unet", the Fashion-MNIST twins' kind,
# keeps two levels: at 32×32 one level would put its middle attention on 1024 tokens.) The paper's
# other options (embeddings, resampling filters, augment_dim, class conditioning, learned variance)
# stay as the config sets them.
_TINY_MODELS = {
    # Fashion-MNIST's 32×32 U-Net at one level: CPU compile time grows with the levels (a second one
    # took a smoke run from ~18 to ~30 s); tests/models cover resampling and attention at real sizes.
    "unet": dict(ch=16, ch_mult=(1,), num_res_blocks=1, attn_resolutions=()),
    "ddpm": dict(ch=16, ch_mult=(1,), num_res_blocks=1, attn_resolutions=()),
    "ddpmpp": dict(model_channels=16, channel_mult=(1,), num_blocks=1, attn_resolutions=()),
    "ncsnpp": dict(model_channels=16, channel_mult=(1,), num_blocks=1, attn_resolutions=()),
    "adm": dict(
        model_channels=16, channel_mult=(1,), num_blocks=1, attn_resolutions=(), channels_per_head=8
    ),
    "dit": dict(hidden_size=32, depth=1, num_heads=2, patch_size=2, freq_dim=32),
    "mlp": dict(width=32, depth=2),
    "token_transformer": dict(hidden_size=32, depth=1, num_heads=2, cond_dim=16, freq_dim=32),
}
SMOKE_IMAGE_SIZE = 8  # TFDS image sets are resized to this under `shrink` (STYLE.md §7: 8×8)


def shrink(config: ml_collections.ConfigDict, *, num_steps: int = 2, batch_size: int = 8) -> None:
  """Makes a config run in seconds on a CPU (what the tests run): few steps, tiny batch, small net.

  Every model kind gets `_TINY_MODELS[kind]` (the paper's other settings, e.g. embeddings,
  resampling filters, augment_dim, class conditioning, stay); TFDS image sets are resized to 8×8;
  sampling takes 2 steps (an explicit `array` grid keeps its first, middle and final levels).
  """
  config.data.batch_size = batch_size
  if config.data.name == "tfds" or str(config.data.name).startswith("tfds:"):
    config.data.image_size = SMOKE_IMAGE_SIZE
  config.train.num_steps = num_steps
  config.train.log_every_steps = 1
  config.train.ckpt_every_steps = 2
  config.train.sample_every_steps = 0
  config.train.eval_every_steps = 0
  config.train.async_checkpoints = False
  config.optim.warmup_steps = 0
  config.eval.num_samples = 16
  if "fd_num_samples" in config.eval:
    config.eval.fd_num_samples = 16
  if config.eval.get("bpd_num_examples", 0) > 0:
    config.eval.bpd_num_examples, config.eval.bpd_batch_size = 8, 8
  config.sample.batch_size = 8
  config.sample.num_samples = 16
  if config.sample.grid == "array":
    sigmas = list(config.sample.grid_kwargs.sigmas)
    config.sample.grid_kwargs.sigmas = [sigmas[0], sigmas[(len(sigmas) - 1) // 2], sigmas[-1]]
  config.sample.num_steps = 2
  kind = config.model.kind
  if kind not in _TINY_MODELS:
    raise ValueError(f"shrink: model.kind={kind!r} has no tiny size; known: {sorted(_TINY_MODELS)}")
  config.model.update(_TINY_MODELS[kind])
  if "variant" in config.model:  # DiT presets would override the explicit tiny sizes
    del config.model["variant"]


def load_module(path: str):
  """The config file at `path` as a module (its `get_config` and optional `SMOKE_ARGS`)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  if not path.endswith(".py"):
    raise ValueError(f"config path {path!r}: expected a .py file")
  spec = importlib.util.spec_from_file_location("diffjax_config_" + str(abs(hash(path))), path)
  if spec is None:
    raise FileNotFoundError(f"config file {path!r} not found")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def smoke_args(path: str) -> tuple[str, ...]:
  """The args the smoke test runs a config file with: its `SMOKE_ARGS`, else `("smoke",)`.

  A config with variants lists one arg string per variant worth compiling, e.g.
  `SMOKE_ARGS = ("variant=vp,smoke", "variant=ve,smoke")`.
  """
  return tuple(getattr(load_module(path), "SMOKE_ARGS", ("smoke",)))


def load(
    path: str, arg: str | None = None, overrides: dict | None = None
) -> ml_collections.ConfigDict:
  """`get_config(arg)` of the config file at `path`, as `--config=path:arg` would give it, with
  `overrides` {"section.key": value} set as `--config.section.key=value` would set them (a key the
  config does not have raises ValueError naming it)."""
  config = load_module(path).get_config(arg)
  for dotted, value in (overrides or {}).items():
    *parents, name = dotted.split(".")
    node = config
    for part in parents:
      if part not in node:
        raise ValueError(f"config override {dotted!r}: the config has no section {part!r}")
      node = node[part]
    if name not in node:
      raise ValueError(f"config override {dotted!r}: the config has no key {name!r}")
    node[name] = value
  return config


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


def edm(
    *,
    sigma_data: float = 0.5,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    conditional: bool = False,
    solver: str = "heun",
    num_steps: int = 18,
    **sample_kwargs,
) -> dict:
  """EDM's design (Karras et al. 2022, Table 1) as the `schedule`, `method` and `sample` sections.

  Each constant is given once and reaches every section that uses it:
  - σ_data: the preconditioning c_skip, c_out, c_in (Eq. 7) and the loss weight
    λ(σ) = (σ² + σ_data²)/(σ·σ_data)² (`param_kwargs`, `weighting_kwargs`);
  - P_mean, P_std: the training noise distribution ln σ ~ N(P_mean, P_std²) (`t_sampling_kwargs`)
    and the weighting w(λ) = p_EDM(λ)·(e^{-λ} + σ_d²)/σ_d², which carries that density so that the
    importance-weighted loss ½·w/p·‖ε − ε̂‖² is EDM's (`weighting_kwargs`);
  - σ_min, σ_max, ρ: the `edm` schedule σ(t) = (σ_min^{1/ρ} + t(σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ and
    the sampler's `karras` grid (Eq. 5).

  Args:
    sigma_data, p_mean, p_std, sigma_min, sigma_max, rho: EDM's constants (defaults: Table 1).
    conditional: class-conditional Method.
    solver, num_steps: the sampler on the ρ-grid (default: Heun, 18 steps = 35 NFE, Alg. 1).
    **sample_kwargs: the rest of `sampler` (solver_kwargs, batch_size, num_samples, ...).

  Returns:
    dict(schedule=..., method=..., sample=...), e.g. `config.update(config_lib.edm(...))`.
  """
  grid = lambda: dict(sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
  lognormal = lambda: dict(p_mean=p_mean, p_std=p_std)
  return dict(
      schedule=dict(kind="edm", **grid()),
      method=gaussian(
          "edm",
          "edm",
          "edm_lognormal",
          param_kwargs=dict(sigma_data=sigma_data),
          weighting_kwargs=dict(sigma_data=sigma_data, **lognormal()),
          t_sampling_kwargs=lognormal(),
          conditional=conditional,
      ),
      sample=sampler(solver, num_steps, "karras", grid_kwargs=grid(), **sample_kwargs),
  )


# The fixed second sampler of the Fashion-MNIST table: EDM's Heun, 18 steps (35 NFE), ρ = 7 grid on
# σ ∈ [0.002, 80] for every model (VP and flow models are mapped to the σ-frame by the adapter).
HEUN35 = {k: edm()["sample"][k] for k in ("solver", "num_steps", "grid", "grid_kwargs")}


def ddpm(
    *,
    num_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    solver_kwargs: dict | None = None,
    **sample_kwargs,
) -> dict:
  """DDPM's chain (Ho et al. 2020, §4) as the `schedule`, `method` and `sample` sections.

  The discrete `ddpm` schedule of T = num_timesteps steps (β linear from beta_start to beta_end;
  node i at t = (i − 1)/(T − 1)); ε-prediction with L_simple (ε-MSE, t uniform) on a network that
  sees (T − 1)·t = i − 1, the paper's 0-based step index; ancestral sampling (`ddpm`, σ² = β̃)
  over the T nodes: T steps on the uniform-t grid from t = 1 to t = 0, then x̂₀.

  Args:
    num_timesteps, beta_start, beta_end: the chain (defaults: the paper's).
    solver_kwargs: options of the `ddpm` sampler (e.g. clip_denoised).
    **sample_kwargs: the rest of `sampler` (batch_size, num_samples, ...).

  Returns:
    dict(schedule=..., method=..., sample=...).
  """
  t = int(num_timesteps)
  return dict(
      schedule=dict(kind="ddpm", num_timesteps=t, beta_start=beta_start, beta_end=beta_end),
      method=gaussian("eps", "eps_mse", "uniform", param_kwargs=dict(noise_cond_scale=t - 1.0)),
      sample=sampler(
          "ddpm",
          t,
          "uniform_t",
          grid_kwargs=dict(t_min=0.0),
          solver_kwargs=solver_kwargs,
          **sample_kwargs,
      ),
  )


def vdm(
    *,
    schedule: str = "nnet",
    variance_minimization: bool = True,
    gamma_min: float = -13.3,
    gamma_max: float = 5.0,
    num_features: int = 1024,
    num_steps: int = 0,
) -> dict:
  """VDM (Kingma et al. 2021) as the `schedule` and `method` sections (diffjax/methods/vdm.py).

  VDM writes γ = −λ; γ ∈ [gamma_min, gamma_max] (official CIFAR-10 config: [-13.3, 5]) is both the
  fixed linear schedule and the learned schedule's initialisation, and sets the network's noise
  embedding: VDM embeds 1000·(γ − γ_min)/(γ_max − γ_min), here −1000/(γ_max − γ_min)·λ (the offset
  is a phase the next layer absorbs).

  Args:
    schedule: "nnet" (monotone network), "linear" (learnable end points, VDM's
      `learnable_scalar`) or "fixed" (the linear γ, not trained).
    variance_minimization: train the schedule's shape on the variance of the diffusion loss
      (App. I.2); False: the released code's plain ELBO gradient.
    gamma_min, gamma_max: the γ range.
    num_features: width of the monotone network.
    num_steps: 0 for continuous time (VDM's sm_n_timesteps = 0), else the discrete T.

  Returns:
    dict(schedule=..., method=...).
  """
  pick(schedule, {"nnet": 0, "linear": 0, "fixed": 0}, key="schedule")
  return dict(
      schedule=dict(kind="linear_logsnr", logsnr_lo=-gamma_max, logsnr_hi=-gamma_min),
      method=dict(
          kind="vdm",
          learned_schedule=schedule != "fixed",
          variance_minimization=variance_minimization,
          schedule_kwargs=dict(
              init_logsnr_max=-gamma_min,
              init_logsnr_min=-gamma_max,
              num_features=num_features,
              nonlinear=schedule == "nnet",
          ),
          param="eps",
          param_kwargs=dict(
              noise_cond="logsnr", noise_cond_scale=-1000.0 / (gamma_max - gamma_min)
          ),
          num_steps=num_steps,
          decoder="vdm",
          data_grid="ddpm",  # diffjax data are k/127.5 - 1
          num_bins=256,
          low_discrepancy=True,
          conditional=False,
      ),
  )


def evaluation(
    num_samples: int = 5000,
    num_plot: int = 2000,
    seed: int = 1,
    num_projections: int = 512,
    *,
    fd_classifier_dir: str = "",
    fd_num_samples: int = 10_000,
    fd_samplers: dict | None = None,
    bpd_num_examples: int = 0,
    bpd_batch_size: int = 500,
    pfode_bpd_num_examples: int = 0,
    pfode_kwargs: dict | None = None,
    memorization: dict | None = None,
):
  """`eval` section.

  Always: sliced W2 of `num_samples` generated samples against as many held-out examples.
  FD-FMNIST (experiments/fd_fmnist/results.md) when `fd_classifier_dir` holds the classifier and
  its `test_stats.npz`: `fd_num_samples` samples per entry of `fd_samplers`, a dict
  name -> sample overrides (`{}` = the config's sampler; e.g. `heun35` below).
  Test-set bits/dim of the first `bpd_num_examples` test examples when > 0 and the Method has `bpd`.
  PF-ODE bits/dim of the first `pfode_bpd_num_examples` test examples when > 0, options
  `pfode_kwargs` (train/eval_likelihood.py). Memorization metrics when `memorization.num_samples`
  > 0 (train/eval_memorization.py).
  """
  return dict(
      num_samples=num_samples,
      num_plot=num_plot,
      seed=seed,
      num_projections=num_projections,
      fd_classifier_dir=fd_classifier_dir,
      fd_num_samples=fd_num_samples,
      fd_samplers=fd_samplers if fd_samplers is not None else {"default": {}},
      bpd_num_examples=bpd_num_examples,
      bpd_batch_size=bpd_batch_size,
      pfode_bpd_num_examples=pfode_bpd_num_examples,
      pfode_kwargs=dict(pfode_defaults(), **(pfode_kwargs or {})),
      memorization=dict(memorization_defaults(), **(memorization or {})),
  )


def mlp(width: int = 256, depth: int = 4, **kwargs) -> dict:
  """`model` of the residual MLP (models/mlp.py).

  Its default noise embedding, random Fourier features with frequencies ~ N(0, 16²) (NCSN++/EDM),
  suits a noise_cond spanning a few units: EDM's c_noise = ¼ ln σ̃, or t ∈ [0, 1]. A network fed
  1000·t (the "t" noise_cond's default scale, DDPM-style) needs `embedding="positional"`: Fourier
  features of 1000·t turn ~3·10⁴ times over the range, an aliased time input (the I-CFM toy then
  learned a field 10× off its exact one). tests/test_noise_embedding.py checks every shipped
  config.
  """
  return dict(kind="mlp", width=width, depth=depth, **kwargs)


def fashion_mnist(
    batch_size: int, pad_to_32: bool = True, path: str = "/usr/share/datasets/fashion-mnist/"
):
  """Fashion-MNIST from Debian's `dataset-fashion-mnist` (`make fashion-mnist`), in [-1, 1]."""
  return dict(name="fashion_mnist", batch_size=batch_size, pad_to_32=pad_to_32, path=path)


# Image networks run bfloat16 activations by default; parameters, optimiser state, the loss and the
# solvers stay float32 (DESIGN.md, "dtypes"). `--config.model.dtype=float32` runs float32.
# `fused_norm` picks the GroupNorm+SiLU implementation of the U-Nets (models/fused_norm.py): "none"
# (flax GroupNorm, then SiLU), "jnp" (one function, same maths) or "pallas" (a fused GPU kernel).
IMAGE_DTYPE = "bfloat16"


def _image_net(defaults: dict, kwargs: dict, *, group_norm: bool = True) -> dict:
  """A network section: `defaults`, bfloat16 activations (and fused_norm="none" for the U-Nets,
  which use GroupNorm), then the caller's `kwargs` over all of them."""
  out = dict(defaults, dtype=IMAGE_DTYPE)
  if group_norm:
    out["fused_norm"] = "none"
  return {**out, **kwargs}


def unet(**kwargs) -> dict:
  """The DDPM-style U-Net (models/unet.py) with `kwargs` and the image networks' precision."""
  return _image_net(dict(kind="unet"), kwargs)


def small_unet(ch: int = 64, dropout: float = 0.0, **kwargs) -> dict:
  """A ~6 M-parameter DDPM-style U-Net for 32×32×1 (3 levels, attention at 8×8)."""
  return _image_net(
      dict(
          kind="unet",
          ch=ch,
          ch_mult=(1, 2, 2),
          num_res_blocks=2,
          attn_resolutions=(8,),
          dropout=dropout,
      ),
      kwargs,
  )


TWIN_STEPS = {"default": 6_000, "long": 40_000}


def fashion_mnist_twin(
    size: str,
    *,
    schedule: dict,
    method: dict,
    sample: dict,
    model: dict | None = None,
    optim: dict | None = None,
    bpd_num_examples: int = 0,
) -> ml_collections.ConfigDict:
  """A paper's Fashion-MNIST twin under the table's shared protocol
  (experiments/results/fashion_mnist.md).

  What every twin shares:
  - data: Fashion-MNIST padded to 32×32, batch 256;
  - network: `small_unet` with bfloat16 activations;
  - optimiser: Adam lr 2e-4, 500 warm-up steps, gradient clip 1, EMA 0.9995;
  - length: 6000 steps (`size="long"`: 40k); checkpoints every 1000 steps, sample pictures every
    2000;
  - samples: `sample` drawn in batches of 500, 10k of them;
  - evaluation: sliced W2 on 2000 samples, FD-FMNIST with the config's sampler ("default") and
    `HEUN35`, and test bits/dim on `bpd_num_examples` images.

  A twin passes what its paper changes: the schedule, the Method, its sampler, and where the paper
  needs them its own `model` or `optim`.
  """
  config = base()
  config.data = fashion_mnist(batch_size=256)
  config.schedule = schedule
  config.method = method
  config.model = model if model is not None else small_unet(dtype="bfloat16")
  config.optim = (
      optim
      if optim is not None
      else adam(2e-4, warmup_steps=500, grad_clip=1.0, ema=ema_constant(0.9995))
  )
  config.train = train(
      pick(size, TWIN_STEPS), log_every_steps=200, ckpt_every_steps=1000, sample_every_steps=2000
  )
  config.sample = dict(sample, batch_size=500, num_samples=10_000)
  config.eval = evaluation(
      num_samples=2000,
      num_plot=100,
      bpd_num_examples=bpd_num_examples,
      fd_samplers={"default": {}, "heun35": HEUN35},
  )
  return config


# -- Paper-scale image sets and networks (CIFAR-10 / ImageNet-64 configs) ------------------------


def tfds_images(
    tfds_name: str, batch_size: int, *, image_size: int | None = None, path: str | None = None
) -> dict:
  """A TFDS image set read with `tfds.data_source` (array_record; see diffjax/data/tfds_images.py).

  Images in [-1, 1]; `image_size` centre-crops to a square and resizes (PIL bicubic, antialiased).
  """
  return dict(
      name="tfds",
      tfds_name=tfds_name,
      batch_size=batch_size,
      image_size=optional(int, image_size),
      crop="center",
      path=optional(str, path),
  )


def cifar10(batch_size: int, path: str | None = None) -> dict:
  """CIFAR-10 train split, 32×32×3, 10 labels (TFDS `cifar10`)."""
  return tfds_images("cifar10", batch_size, path=path)


def imagenet64(batch_size: int, path: str | None = None) -> dict:
  """ImageNet-1k (TFDS `imagenet2012`, manual download) centre-cropped and resized to 64×64.

  EDM's `dataset_tool.py --transform=center-crop --resolution=64x64` also centre-crops; it resizes
  with PIL's Lanczos filter, here bicubic (tfds_images.py), so pixels differ slightly.
  """
  return tfds_images("imagenet2012", batch_size, image_size=64, path=path)


def ddpm_unet(dropout: float = 0.1, **kwargs) -> dict:
  """Ho et al. 2020's CIFAR-10 U-Net (ch 128, mult (1, 2, 2, 2), 2 blocks, attention at 16×16)."""
  return _image_net(
      dict(
          kind="ddpm",
          ch=128,
          ch_mult=(1, 2, 2, 2),
          num_res_blocks=2,
          attn_resolutions=(16,),
          dropout=dropout,
      ),
      kwargs,
  )


def song_unet(arch: str, *, dropout: float = 0.13, **kwargs) -> dict:
  """DDPM++ / NCSN++ as EDM's train.py builds them for CIFAR-10 (`--arch=ddpmpp|ncsnpp`).

  Width 128, channel_mult (2, 2, 2), 4 blocks per level, attention at 16×16; the kind's defaults
  add the embedding, encoder and resampling filter of each architecture (models/song_unet.py).
  `kwargs` override any of these (Score SDE's own CIFAR-10 runs use channel_mult (1, 2, 2, 2)).
  """
  pick(arch, {"ddpmpp": 0, "ncsnpp": 0}, key="arch")
  return _image_net(
      dict(
          kind=arch,
          model_channels=128,
          channel_mult=(2, 2, 2),
          num_blocks=4,
          attn_resolutions=(16,),
          dropout=dropout,
      ),
      kwargs,
  )


def adm(dropout: float = 0.1, **kwargs) -> dict:
  """ADM as EDM configures it for class-conditional ImageNet-64 (width 192, mult (1, 2, 3, 4))."""
  return _image_net(
      dict(
          kind="adm",
          model_channels=192,
          channel_mult=(1, 2, 3, 4),
          num_blocks=3,
          attn_resolutions=(32, 16, 8),
          channels_per_head=64,
          dropout=dropout,
      ),
      kwargs,
  )


def dit(variant: str, **kwargs) -> dict:
  """DiT (Peebles & Xie 2023) by preset name, "S/2" ... "XL/8"."""
  sizes = ("S", "B", "L", "XL")
  size, _, patch = variant.partition("/")
  if size not in sizes or patch not in ("2", "4", "8"):
    raise ValueError(f"DiT variant={variant!r}: expected one of {sizes} / (2, 4, 8), e.g. 'B/4'")
  return _image_net(dict(kind="dit", variant=variant), kwargs, group_norm=False)


def edm_augment(p: float = 0.12) -> dict:
  """EDM's CIFAR-10 augmentation (train.py: `AugmentPipe(p, xflip=1e8, yflip=1, scale=1,
  rotate_frac=1, aniso=1, translate_frac=1)`, 9 labels): keyword arguments of
  `diffjax.data.augment.edm_augment`, for `config.method.augment`."""
  return dict(p=p, xflip=1e8, yflip=1.0, scale=1.0, rotate_frac=1.0, aniso=1.0, translate_frac=1.0)


def steps_for_images(num_images: float, batch_size: int) -> int:
  """Optimiser steps that show `num_images` images (EDM counts training in images): ⌈n / B⌉."""
  return -(-int(round(num_images)) // int(batch_size))


def grad_clip_for(paper_clip: float, element_shape: tuple[int, ...], paper_loss: str) -> float:
  """The clip threshold on diffjax's loss that equals a paper's clip on its own loss.

  diffjax's per-example loss is ½·w/p·‖ε − ε̂‖² summed over the D = prod(element_shape) values
  (core/losses.py). A paper whose loss is the per-pixel mean of ‖ε − ε̂‖² (`paper_loss="mean"`: Ho
  et al.'s L_simple, Score SDE's `reduce_mean=True`) has gradients D/2 times smaller; one that sums
  without the ½ (`"sum"`: Score SDE VE, `reduce_mean=False`) twice as large. Adam is invariant to
  that scale; global-norm clipping is not, so the threshold scales by the same factor.
  """
  d = 1
  for n in element_shape:
    d *= int(n)
  factor = pick(paper_loss, {"mean": d / 2.0, "sum": 0.5}, key="paper_loss")
  return float(paper_clip) * factor


def ddim_sampler(num_steps: int, skip: str = "uniform", **kwargs) -> dict:
  """`sample` section: DDIM η = 0 (Song et al. 2021a, Eq. 12) on its S-step sub-sequence of the
  model's discrete chain (grid `ddim`, `skip` "uniform" or "quadratic"); num_steps is S."""
  pick(skip, {"uniform": 0, "quadratic": 0}, key="skip")
  return sampler(
      "ddim", num_steps, "ddim", grid_kwargs=dict(skip=skip), solver_kwargs=dict(eta=0.0), **kwargs
  )


def posthoc_ema(
    sigma_rels: tuple[float, ...] = (0.05, 0.10),
    snapshot_every_steps: int = 200,
    *,
    reconstruct_sigma_rels: tuple[float, ...] = (),
    reconstruct_step: int = 0,
    gram: str = "discrete",
) -> dict:
  """`optim.posthoc_ema` (EDM2's post-hoc EMA, diffjax/train/posthoc_ema.py): power-function EMA
  tracks of the given σ_rel (EDM2 tracks 0.05 and 0.10), snapshots every `snapshot_every_steps` and
  at the end; `--mode=reconstruct_ema` builds the EMA of each `reconstruct_sigma_rels` at step
  `reconstruct_step` (0: the last snapshot) from them, with the "discrete" or "continuous" Gram
  matrix of the profiles."""
  return dict(
      sigma_rels=tuple(sigma_rels),
      snapshot_every_steps=snapshot_every_steps,
      reconstruct_sigma_rels=tuple(reconstruct_sigma_rels),
      reconstruct_step=reconstruct_step,
      gram=gram,
  )


def memorization_defaults() -> dict:
  """`eval.memorization` (train/eval_memorization.py): off (num_samples 0), all keys present so that
  `--config.eval.memorization.<key>=...` works."""
  return dict(
      num_samples=0,
      num_train=0,
      threshold=1.0 / 3.0,
      loss_num_examples=500,
      loss_sigmas=(0.02, 0.1, 0.5, 2.0, 10.0),
      num_plot=16,
  )


def pfode_defaults() -> dict:
  """`eval.pfode_kwargs` (train/eval_likelihood.py): 32 RK4 steps in log σ (128 evaluations), one
  Rademacher probe, σ range 0 = the schedule's within [0.002, 80], prior N(0, σ_max² + 0.25),
  uniform dequantisation on the k/127.5 - 1 grid, batches of 250."""
  return dict(
      num_steps=32,
      method="rk4",
      divergence="rademacher",
      sigma_min=0.0,
      sigma_max=0.0,
      data_var=0.25,
      dequantize=True,
      grid="ddpm",
      batch_size=250,
  )


# -- Discrete diffusion on character-level Shakespeare (configs/{d3pm,sedd,mdlm,dfm,autoregressive}) --

SHAKESPEARE_VOCAB = 96  # diffjax.data.text.VOCAB_SIZE: newline + printable ASCII (a test checks it)
# size -> data, network, optimiser and length. "default": the equal-budget comparison of
# experiments/results/discrete_shakespeare.md (minutes on one GPU); "paper": SEDD-small's network
# (hidden 768, 12 blocks, 12 heads, cond 128, dropout 0.1) and optimiser (AdamW 3e-4, 2500 warm-up
# steps, clip 1, EMA 0.9999), on 256-character windows.
DISCRETE_SIZES = {
    "default": dict(
        seq_len=128,
        batch_size=128,
        num_steps=3000,
        model=dict(hidden_size=256, depth=4, num_heads=4, dropout=0.0),
        lr=1e-3,
        warmup_steps=200,
        ema=0.998,
    ),
    "paper": dict(
        seq_len=256,
        batch_size=512,
        num_steps=400_000,
        model=dict(hidden_size=768, depth=12, num_heads=12, dropout=0.1),
        lr=3e-4,
        warmup_steps=2500,
        ema=0.9999,
    ),
}


def token_transformer(**kwargs) -> dict:
  """The token Transformer (models/token_transformer.py), bfloat16 activations; vocabulary sizes
  are set by the Method."""
  return {**dict(kind="token_transformer", dtype="bfloat16", cond_dim=128), **kwargs}


def discrete_method(process: str, graph: str = "absorbing", **kwargs) -> dict:
  """`method` section of the discrete family (methods/discrete.py) on Shakespeare's vocabulary."""
  return dict(kind="discrete", process=process, graph=graph, vocab_size=SHAKESPEARE_VOCAB, **kwargs)


def discrete_shakespeare(
    size: str, *, method: dict, sample: dict, schedule: dict | None = None
) -> ml_collections.ConfigDict:
  """A discrete-diffusion (or autoregressive) config on character-level Shakespeare
  (data/text.py: train = first 90 % of the corpus, test = the last 10 %, the validation split).

  `size` picks `DISCRETE_SIZES`; evaluation is the test-set NELBO in bits per character
  (`eval.bpd_num_examples`, the `bpd` evaluator; no sliced W2 on tokens)."""
  s = pick(size, DISCRETE_SIZES)
  config = base()
  config.data = dict(
      name="shakespeare", batch_size=s["batch_size"], seq_len=s["seq_len"], path=optional(str)
  )
  config.schedule = schedule or dict(kind="loglinear", eps=1e-3)
  config.method = method
  config.model = token_transformer(**s["model"])
  config.optim = adam(
      s["lr"], warmup_steps=s["warmup_steps"], grad_clip=1.0, ema=ema_constant(s["ema"])
  )
  config.train = train(s["num_steps"], log_every_steps=100, ckpt_every_steps=1000)
  config.sample = dict(sample, batch_size=64, num_samples=256)
  config.eval = evaluation(num_samples=0, num_plot=0, bpd_num_examples=2048, bpd_batch_size=256)
  return config


def shrink_text(config: ml_collections.ConfigDict) -> None:
  """`shrink` for the Shakespeare configs: 16-character windows, the tiny network, 2 steps."""
  config.data.seq_len = 16
  shrink(config)
  config.eval.num_samples = 0  # no sliced W2 on token ids


# -- Few-step generation (consistency models) ---------------------------------------------------


def consistency(
    variant: str,
    *,
    total_steps: int,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    sigma_data: float = 0.5,
    metric: str = "l2",
    huber_c: float = -1.0,
    num_steps: int = 1,
    conditional: bool = False,
    **variant_kwargs,
) -> dict:
  """`schedule`, `method` and `sample` sections of a consistency model (methods/consistency.py):
  EDM's σ range as the schedule, CM's multistep sampler (`consistency` solver) with `num_steps`
  network calls on the ρ-grid from σ_max down to σ_min (σ_min itself is not evaluated)."""
  grid = dict(sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
  return dict(
      schedule=dict(kind="edm", **grid),
      method=dict(
          kind="consistency",
          variant=variant,
          sigma_data=sigma_data,
          metric=metric,
          huber_c=huber_c,
          total_steps=total_steps,
          conditional=conditional,
          **grid,
          **variant_kwargs,
      ),
      sample=sampler(
          "consistency",
          num_steps,
          "karras",
          grid_kwargs=dict(grid, append_zero=False),
          solver_kwargs=dict(sigma_min=sigma_min),
      ),
  )


def few_step_fd_samplers(steps=(1, 2, 4)) -> dict:
  """eval.fd_samplers of the few-step tables: `step<n>` = the config's sampler with n calls."""
  return {f"step{n}": dict(num_steps=n) for n in steps}


def ctm_fd_samplers(config: ml_collections.ConfigDict, steps=(1, 2, 4)) -> dict:
  """`few_step_fd_samplers` of a CTM config plus `step<n>_on_grid` (1 < n < N): the same n jumps with
  the inner levels on the N training levels (`karras_subset`) instead of the sampler's default
  n + 1-point Karras grid, whose inner levels fall between them (experiments/results/
  fewstep_toy.md: the student's jumps from off-grid levels are 5-7x less accurate)."""
  num_levels = int(config.method.num_scales)
  on_grid = dict(config.sample.grid_kwargs, num_levels=num_levels)
  out = few_step_fd_samplers(steps)
  for n in steps:
    if 1 < n < num_levels:  # n jumps take n + 1 of the N levels
      out[f"step{n}_on_grid"] = dict(num_steps=n, grid="karras_subset", grid_kwargs=on_grid)
  return out


def meanflow(
    *,
    p_mean: float = -0.4,
    p_std: float = 1.0,
    ratio: float = 0.25,
    norm_p: float = 1.0,
    norm_eps: float = 1e-3,
    time_scale: float = 1000.0,
    conditional: bool = False,
) -> dict:
  """`method` section of MeanFlow (methods/meanflow.py); defaults: the paper's ImageNet values."""
  return dict(
      kind="meanflow",
      p_mean=p_mean,
      p_std=p_std,
      ratio=ratio,
      norm_p=norm_p,
      norm_eps=norm_eps,
      time_scale=time_scale,
      conditional=conditional,
  )


# -- Flows and bridges: couplings, stochastic interpolants, DSBM (configs/{ot_cfm,sb_cfm,...}) --


def coupling(
    solver: str = "independent",
    *,
    epsilon: float = 0.05,
    num_iters: int = 100,
    normalize_cost: bool = False,
    assignment: str = "host",
    per_class: bool = True,
) -> dict:
  """`method.coupling`: the minibatch coupling over the global batch (core/couplings.py)."""
  pick(solver, {"independent": 0, "exact": 0, "sinkhorn": 0}, key="coupling")
  return dict(
      solver=solver,
      epsilon=epsilon,
      num_iters=num_iters,
      normalize_cost=normalize_cost,
      assignment=assignment,
      per_class=per_class,
  )


def ot_cfm(solver: str = "exact", **coupling_kwargs) -> dict:
  """`method` of minibatch OT-CFM (Tong et al. 2023): flow matching (flow schedule, velocity,
  uniform t) whose noise is coupled to the data (methods/ot_cfm.py)."""
  return dict(
      gaussian("flow", "flow", "uniform"),
      kind="ot_cfm",
      coupling=coupling(solver, **coupling_kwargs),
  )


def interpolant(
    path: str = "linear",
    gamma: str = "bridge",
    gamma_scale: float = 1.0,
    *,
    source: str = "noise",
    noise_cond_scale: float = 1.0,
    coupling_kwargs: dict | None = None,
) -> dict:
  """`method` of a stochastic interpolant / SB-CFM (methods/interpolant.py)."""
  return dict(
      kind="interpolant",
      path=path,
      gamma=gamma,
      gamma_scale=gamma_scale,
      source=source,
      noise_cond_scale=noise_cond_scale,
      coupling=coupling(**(coupling_kwargs or {})),
      conditional=False,
  )


def sb_cfm(sigma: float = 1.0, *, num_iters: int = 100, **kwargs) -> dict:
  """SB-CFM (Tong et al. 2023, §3.3): the Brownian-bridge interpolant γ = σ·sqrt(t(1 − t)) on
  pairs from the entropic plan with ε = 2σ² on ‖x − y‖² (torchcfm's `reg=2σ²`)."""
  return interpolant(
      "linear",
      "bridge",
      sigma,
      coupling_kwargs=dict(solver="sinkhorn", epsilon=2.0 * sigma**2, num_iters=num_iters),
      **kwargs,
  )


def dsbm(
    sigma: float,
    steps_per_iteration: int,
    *,
    first_coupling: str = "ind",
    num_sim_steps: int = 20,
    t_epsilon: float = 1e-3,
    noise_cond_scale: float = 1.0,
) -> dict:
  """`method` of DSBM / IMF (Shi et al. 2023; methods/dsbm.py)."""
  pick(first_coupling, {"ind": 0, "ref": 0}, key="first_coupling")
  return dict(
      kind="dsbm",
      sigma=sigma,
      steps_per_iteration=steps_per_iteration,
      first_coupling=first_coupling,
      num_sim_steps=num_sim_steps,
      t_epsilon=t_epsilon,
      noise_cond_scale=noise_cond_scale,
      conditional=False,
  )


def gaussian_data(dim: int, batch_size: int, mean: float = 0.0, std: float = 1.0) -> dict:
  """N(mean·1, std²·I) in `dim` dimensions (the `gmm` source with one component)."""
  return dict(
      name="gmm",
      batch_size=batch_size,
      dim=dim,
      weights=[1.0],
      means=[[float(mean)] * dim],
      covs=[[float(std) ** 2] * dim],
  )


def noisy_classifier(
    schedule: dict,
    data: dict,
    *,
    num_steps: int = 2000,
    ch: int = 32,
    ch_mult: tuple[int, ...] = (1, 2, 2),
    lr: float = 1e-3,
) -> ml_collections.ConfigDict:
  """A noise-conditional classifier (`methods.classifier`) for classifier guidance of a model
  trained on `schedule` (pass the guided model's `schedule` section): Adam, no EMA-based eval,
  no sampling (the loop's sample/eval hooks stay off)."""
  config = base()
  config.data = data
  config.schedule = schedule
  config.method = dict(kind="noisy_classifier", t_sampling="uniform", noise_cond="logsnr")
  config.model = dict(
      kind="noisy_classifier", ch=ch, ch_mult=ch_mult, num_res_blocks=1, dtype="float32"
  )
  config.optim = adam(lr, warmup_steps=100, grad_clip=1.0, ema=ema_constant(0.999))
  config.train = train(num_steps, log_every_steps=200, ckpt_every_steps=num_steps)
  config.eval = evaluation(num_samples=0)
  config.sample = dict(batch_size=256)
  return config


def euler_steps(num_steps: int, t_max: float = 0.999) -> dict:
  """A sample/fd_samplers entry: `num_steps` Euler steps on t uniform from t_max to 0, the few-step
  grid of rectified flow and flow matching (t = t_max·i/N, i = N … 1, then 0).

  `uniform_t`'s default t_min = 10⁻³ instead puts the last of N levels at t = 10⁻³, so the last
  step (10⁻³ → 0) is nearly wasted and "4 steps" move like 3 (the session-6 to -9 `euler4` rows).
  """
  return dict(
      solver="euler",
      num_steps=num_steps,
      grid="uniform_t",
      grid_kwargs=dict(t_max=t_max, t_min=_last_uniform_level(num_steps, t_max)),
  )


def _last_uniform_level(num_steps: int, t_max: float) -> float:
  """`uniform_t`'s t_min for N equal steps of t from t_max down to 0: the last level t_max/N (with
  N = 1 the grid is [t_max, 0] and t_min only has to lie below t_max)."""
  return t_max / num_steps if num_steps > 1 else t_max / 2


def student_grid(num_steps: int) -> dict:
  """`uniform_t` grid_kwargs of a progressive-distillation student: t = i/N, i = N … 1, then 0
  (t_min = 1/N; with N = 1 the grid is [t = 1, 0] and t_min only has to lie below t_max)."""
  return dict(t_min=_last_uniform_level(num_steps, 1.0))


def ctm(
    *,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    sigma_data: float = 0.5,
    num_scales: int = 18,
    max_heun_steps: int = 17,
    num_steps: int = 1,
    gamma: float = 0.0,
    sample_grid: str = "karras",
    **method_kwargs,
) -> dict:
  """`schedule`, `method` and `sample` sections of CTM (methods/ctm.py), the official CIFAR-10
  defaults (N = 18 levels, up to 17 teacher Heun steps); γ-sampling with `num_steps` jumps on the
  ρ-grid from σ_max to σ_min: its own `num_steps` + 1 levels (`sample_grid="karras"`) or levels of
  the N training levels (`"training"`: grid `karras_subset`, ctm_fd_samplers)."""
  grid = dict(sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
  pick(sample_grid, {"karras": 0, "training": 0}, key="sample_grid")
  # One value for method.num_scales and the training-level grid's num_levels: setting either
  # (a smoke config, `--config.method.num_scales=...`) sets both.
  levels = config_dict.FieldReference(num_scales)
  grid_name, grid_kwargs = "karras", dict(grid, append_zero=False)
  if sample_grid == "training":
    grid_name, grid_kwargs = "karras_subset", dict(grid_kwargs, num_levels=levels)
  return dict(
      schedule=dict(kind="edm", **grid),
      method=dict(
          kind="ctm",
          sigma_data=sigma_data,
          num_scales=levels,
          max_heun_steps=max_heun_steps,
          **grid,
          **method_kwargs,
      ),
      sample=sampler(
          "ctm_gamma",
          num_steps,
          grid_name,
          grid_kwargs=grid_kwargs,
          solver_kwargs=dict(gamma=gamma),
      ),
  )
