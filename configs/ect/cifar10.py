r"""Easy consistency tuning (ECT, Geng et al. 2024, arXiv:2406.14548) on CIFAR-10.

  python -m diffjax.main --config=configs/ect/cifar10.py --config.init_from=workdirs/edm_c10 \
      --workdir=workdirs/ect_c10

locuslab/ect (main branch, CIFAR-10; run_ecm.sh from memory, not re-verified): initialised from
EDM's DDPM++ checkpoint (here a diffjax EDM run, configs/edm/cifar10.py, same network with
augment_dim = 9), batch 128, Adam lr 1e-4, dropout 0.2, EMA 0.9999, 200k iterations (3.2 M images
per stage: 8 stages of 25k), q = 2, k = 8, b = 1, P_mean = −1.1, P_std = 2.0, c = 0, loss divided
by (t − r). Paper: FID 3.60 (1 step), 2.11 (2 steps) at 200k iterations (not re-verified).
"""

from diffjax import config_lib

STEPS = 200_000


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  config.update(
      config_lib.consistency(
          "ect",
          total_steps=STEPS,
          metric="pseudo_huber",
          huber_c=0.0,
          p_mean=-1.1,
          p_std=2.0,
          q=2.0,
          k=8.0,
          b=1.0,
          double_every_steps=25_000,
      )
  )
  config.sample.update(batch_size=1000, num_samples=50_000)
  config.model = config_lib.song_unet("ddpmpp", dropout=0.2, augment_dim=9)
  config.optim = config_lib.adam(1e-4, warmup_steps=0, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(STEPS, log_every_steps=1000, ckpt_every_steps=10_000)
  config.eval = config_lib.evaluation(fd_samplers=config_lib.few_step_fd_samplers())
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
    config.method.double_every_steps = 1
  return config
