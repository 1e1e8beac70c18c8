r"""Shortcut models (Frans et al. 2024, arXiv:2410.12557) on CIFAR-10, unconditional.

  python -m diffjax.main --config=configs/shortcut/cifar10.py --workdir=workdirs/sc_c10

The paper trains a DiT on CelebA-HQ / ImageNet; CIFAR-10 here uses the DDPM-style U-Net (which
takes the second time input d), M = 128, bootstrap fraction ¼, Adam lr 1e-4, EMA 0.999, batch 128
(settings chosen here, not the paper's).
"""

from diffjax import config_lib

STEPS = 400_000


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  config.schedule = dict(kind="rectified_flow", sigma_min=0.0)
  config.method = dict(
      kind="shortcut", time_scale=1000.0, min_steps=128, bootstrap_frac=0.25, bootstrap_ema=0.999
  )
  config.model = config_lib.unet(
      ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,), dropout=0.1
  )
  config.optim = config_lib.adam(1e-4, warmup_steps=5000, ema=config_lib.ema_constant(0.999))
  config.train = config_lib.train(STEPS, log_every_steps=1000, ckpt_every_steps=10_000)
  config.sample = config_lib.sampler(
      "shortcut", 1, "uniform_t", batch_size=1000, num_samples=50_000
  )
  config.eval = config_lib.evaluation(fd_samplers=config_lib.few_step_fd_samplers())
  if arg.smoke:
    config_lib.shrink(config)
  return config
