r"""Improved consistency training (iCT, Song & Dhariwal 2023, arXiv:2310.14189) on CIFAR-10.

  python -m diffjax.main --config=configs/ict/cifar10.py --workdir=workdirs/ict_c10

Paper (CIFAR-10; from memory, not re-verified): NCSN++ with dropout 0.3, batch 1024, Adam lr 1e-4,
400k iterations, EMA 0.99993 for evaluation, no EMA target, pseudo-Huber c = 0.03
(0.00054·√3072), lognormal pair sampling (P_mean = −1.1, P_std = 2.0), weight 1/(σ_{i+1} − σ_i),
N doubling from s0 = 10 to s1 = 1280. Paper: FID 2.83 (1 step), 2.46 (2 steps).
"""

from diffjax import config_lib

STEPS = 400_000


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=1024)
  config.update(
      config_lib.consistency(
          "ict", total_steps=STEPS, metric="pseudo_huber", s0=10, s1=1280, p_mean=-1.1, p_std=2.0
      )
  )
  config.sample.update(batch_size=1000, num_samples=50_000)
  config.model = config_lib.song_unet("ncsnpp", dropout=0.3)
  config.optim = config_lib.adam(1e-4, warmup_steps=0, ema=config_lib.ema_constant(0.99993))
  config.train = config_lib.train(STEPS, log_every_steps=1000, ckpt_every_steps=10_000)
  config.eval = config_lib.evaluation(fd_samplers=config_lib.few_step_fd_samplers())
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
  return config
