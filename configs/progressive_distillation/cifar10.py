r"""Progressive distillation (Salimans & Ho 2022, arXiv:2202.00512) on CIFAR-10.

  python -m diffjax.main --config=configs/v_prediction/cifar10.py --workdir=workdirs/v_c10  # teacher
  python -m diffjax.main --config=configs/progressive_distillation/cifar10.py:steps=512 \
      --config.init_from=workdirs/v_c10 --workdir=workdirs/pd512_c10     # then N = 256, ..., 1

Paper (CIFAR-10; from memory, not re-verified): v-prediction teacher on the cosine schedule, student
initialised from the teacher, "SNR + 1" (v-MSE) weighting, 50k updates per halving round at batch
128, Adam lr 1e-4 (5e-5 in the last rounds is not modelled), EMA 0.9999, no dropout while
distilling. Paper: FID 2.57 (8 steps), 3.0 (4), 4.51 (2), 9.12 (1). Network and schedule must be
the teacher's (configs/v_prediction/cifar10.py).
"""

import os

from diffjax import config_lib

TEACHER = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "v_prediction", "cifar10.py"
)
SMOKE_ARGS = ("steps=2,smoke",)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, steps=512, smoke=False)
  teacher = config_lib.load(TEACHER)
  n = int(arg.steps)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  config.schedule = dict(teacher.schedule)
  config.method = dict(teacher.method)
  config.method.update(kind="progressive_distillation", num_student_steps=n, teacher="checkpoint")
  config.model = dict(teacher.model, dropout=0.0)
  config.optim = config_lib.adam(1e-4, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(50_000, log_every_steps=1000, ckpt_every_steps=10_000)
  config.sample = config_lib.sampler(
      "euler",
      n,
      "uniform_t",
      grid_kwargs=config_lib.student_grid(n),
      batch_size=1000,
      num_samples=50_000,
  )
  config.eval = config_lib.evaluation()
  if arg.smoke:
    config_lib.shrink(config)
    config.method.teacher = "random"
    config.sample.grid_kwargs.t_min = 0.5
  return config
