r"""MeanFlow (Geng et al. 2025, arXiv:2505.13447) on CIFAR-10, unconditional, from scratch.

  python -m diffjax.main --config=configs/meanflow/cifar10.py --workdir=workdirs/mf_c10

Paper's CIFAR-10 setting (third-party notes of the paper, not re-verified): a U-Net, batch 1024,
~800k iterations, logit-normal P_mean = −2.0, P_std = 2.0, r ≠ t for 75 % of the batch, adaptive
weight p = 0.75; 1-NFE FID 2.92. Here the DDPM-style U-Net (models/unet.py, which takes the second
time input t − r), Adam lr 6e-4 (paper's value not verified), EMA 0.9999.
"""

from diffjax import config_lib

STEPS = 800_000


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=1024)
  config.schedule = dict(kind="rectified_flow", sigma_min=0.0)
  config.method = config_lib.meanflow(p_mean=-2.0, p_std=2.0, ratio=0.75, norm_p=0.75)
  config.model = config_lib.unet(
      ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.2
  )
  config.optim = config_lib.adam(6e-4, warmup_steps=10_000, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(STEPS, log_every_steps=1000, ckpt_every_steps=10_000)
  config.sample = config_lib.sampler(
      "meanflow", 1, "uniform_t", batch_size=1000, num_samples=50_000
  )
  config.eval = config_lib.evaluation(fd_samplers=config_lib.few_step_fd_samplers())
  if arg.smoke:
    config_lib.shrink(config)
  return config
