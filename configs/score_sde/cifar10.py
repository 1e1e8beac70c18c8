r"""Score SDE (Song et al. 2021, arXiv:2011.13456) on CIFAR-10: VP, sub-VP and VE SDEs.

  python -m diffjax.main --config=configs/score_sde/cifar10.py:variant=vp --workdir=workdirs/sde_vp
  python -m diffjax.main --config=configs/score_sde/cifar10.py:variant=ve --workdir=workdirs/sde_ve

Settings of yang-song/score_sde `configs/{vp,subvp}/cifar10_ddpmpp_continuous.py` and
`configs/ve/cifar10_ncsnpp_continuous.py` (with `default_cifar10_configs.py`): batch 128, Adam
lr 2e-4, 5000 warm-up steps, gradient clipping at 1, 1.3 M steps, dropout 0.1, continuous t,
"likelihood_weighting=False" (the σ²-weighted score loss = ε-MSE, t uniform).
  vp, subvp: β from 0.1 to 20 (`vp` / `sub_vp`, trained on t ∈ [1e-5, 1]), DDPM++ (width 128,
    mult (1, 2, 2, 2), 4 blocks, attention at 16×16, positional embedding of 999·t), EMA 0.9999;
    sampled with the Euler–Maruyama predictor and no corrector over 1000 steps from t = 1 to
    t = 1e-3, then one denoising step (`noise_removal`).
  ve: σ from 0.01 to 50 on data in [0, 1], i.e. σ ∈ [0.02, 100] on diffjax's [-1, 1] data (as EDM's
    VE baseline), NCSN++ (Fourier embedding of log σ, FIR resampling, residual input branch),
    EMA 0.999; the PC sampler (reverse-diffusion predictor + one Langevin corrector step,
    snr 0.16) over 1000 steps (2000 NFE) from t = 1 to 1e-3, then a denoising step.
FID protocol: 50 k samples vs the CIFAR-10 training statistics with the TF-GAN Inception network,
at the checkpoint of lowest FID (checked every 50 k steps). Released checkpoints (README): VE
NCSN++ cont. FID 2.38, VP DDPM++ cont. 2.55, sub-VP DDPM++ cont. 2.61.
Differs: DDPM++/NCSN++ are EDM's re-implementations (models/song_unet.py) with Score SDE's width
and depth; VE's network sees log σ of the [-1, 1] data (Score SDE: of [0, 1] data, a shift by
log 2); VE t is drawn in [0, 1] (Score SDE: [1e-5, 1]; σ(1e-5) = 1.00009·σ_min); the predictors
step in EDM's σ-frame (same marginals, a different discretisation of the VP SDE); clipping is 1
on Score SDE's own loss reduction (`config_lib.grad_clip_for`); random flips as the paper
(`method.random_flip`).
"""

from diffjax import config_lib

SHAPE = (32, 32, 3)
SMOKE_ARGS = ("variant=vp,smoke", "variant=ve,smoke")
T_MIN = 1e-5  # Score SDE's training / likelihood cut-off, built into the `vp`/`sub_vp` schedule
T_SAMPLE = 1e-3  # its sampling cut-off, in the SDE's own time s = T_MIN + (1 - T_MIN)·t


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, variant="vp", smoke=False)
  variant = arg.variant
  config_lib.pick(variant, {"vp": 0, "subvp": 0, "ve": 0}, key="variant")
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  if variant in ("vp", "subvp"):
    config.schedule = dict(
        kind="vp" if variant == "vp" else "sub_vp", beta_min=0.1, beta_max=20.0, t_min=T_MIN
    )
    config.method = config_lib.gaussian(
        "eps", "eps_mse", "uniform", param_kwargs=dict(noise_cond_scale=999.0)
    )
    config.model = config_lib.song_unet("ddpmpp", dropout=0.1, channel_mult=(1, 2, 2, 2))
    clip, ema = config_lib.grad_clip_for(1.0, SHAPE, "mean"), 0.9999  # reduce_mean=True
    t_min = (T_SAMPLE - T_MIN) / (1.0 - T_MIN)
    config.sample = config_lib.sampler(
        "euler_maruyama",
        1000,
        "uniform_t",
        grid_kwargs=dict(t_min=t_min),
        batch_size=1000,
        num_samples=50_000,
    )
  else:
    config.schedule = dict(kind="ve", sigma_min=0.02, sigma_max=100.0)
    # noise_cond = -½·λ = log σ, what NCSN++'s Fourier embedding takes.
    config.method = config_lib.gaussian(
        "eps", "eps_mse", "uniform", param_kwargs=dict(noise_cond="logsnr", noise_cond_scale=-0.5)
    )
    config.model = config_lib.song_unet("ncsnpp", dropout=0.1, channel_mult=(1, 2, 2, 2))
    clip, ema = config_lib.grad_clip_for(1.0, SHAPE, "sum"), 0.999  # reduce_mean=False
    config.sample = config_lib.sampler(
        "pc",
        1000,
        "uniform_t",
        grid_kwargs=dict(t_min=T_SAMPLE),
        solver_kwargs=dict(snr=0.16, n_corrector=1),
        batch_size=1000,
        num_samples=50_000,
    )
  config.method.random_flip = True  # score_sde: random_flip=True
  config.optim = config_lib.adam(
      2e-4, warmup_steps=5000, grad_clip=clip, ema=config_lib.ema_constant(ema)
  )
  config.train = config_lib.train(
      1_300_000, log_every_steps=1000, ckpt_every_steps=10_000, sample_every_steps=50_000
  )
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  if arg.smoke:
    config_lib.shrink(config)
  return config
