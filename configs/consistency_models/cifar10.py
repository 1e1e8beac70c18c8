r"""Consistency distillation and training (Song et al. 2023, arXiv:2303.01469) on CIFAR-10.

  python -m diffjax.main --config=configs/consistency_models/cifar10.py:variant=cd \
      --config.init_from=workdirs/edm_c10 --workdir=workdirs/cd_c10   # teacher: configs/edm/cifar10.py
  python -m diffjax.main --config=configs/consistency_models/cifar10.py:variant=ct \
      --workdir=workdirs/ct_c10

Paper Table 3 (CIFAR-10; from memory of the paper, not re-verified): batch 512, Adam lr 4e-4,
800k iterations, EMA 0.9999 for evaluation, NCSN++; CD: N = 18, μ = 0, LPIPS (here "l2" or
"pseudo_huber": no LPIPS); CT: s0 = 2, s1 = 150, μ0 = 0.9. The CD teacher is diffjax's EDM
CIFAR-10 run (DDPM++ or NCSN++ with augment_dim = 9, as configs/edm/cifar10.py): the student
shares its network, so `arch` must match the teacher's; no augmentation while distilling.
Paper: 1-step FID 3.55 (CD, LPIPS), 8.70 (CT); 2-step 2.93 / 5.83.
"""

from diffjax import config_lib

SMOKE_ARGS = ("variant=ct,smoke",)
SETTINGS = {
    "cd": dict(s0=18, s1=18, mu0=0.0, adaptive_ema=False, progressive=False, teacher="checkpoint"),
    "ct": dict(s0=2, s1=150, mu0=0.9, adaptive_ema=True, progressive=True),
}
STEPS = 800_000


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, variant="cd", arch="ncsnpp", metric="l2", smoke=False)
  settings = dict(config_lib.pick(arg.variant, SETTINGS, key="variant"))
  if arg.smoke and arg.variant == "cd":
    settings["teacher"] = "random"
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=512)
  config.update(
      config_lib.consistency(arg.variant, total_steps=STEPS, metric=arg.metric, **settings)
  )
  config.sample.update(batch_size=1000, num_samples=50_000)
  config.model = config_lib.song_unet(arg.arch, dropout=0.13, augment_dim=9)
  config.optim = config_lib.adam(4e-4, warmup_steps=0, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(STEPS, log_every_steps=1000, ckpt_every_steps=10_000)
  config.eval = config_lib.evaluation(fd_samplers=config_lib.few_step_fd_samplers())
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
  return config
