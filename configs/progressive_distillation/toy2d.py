r"""Progressive distillation (Salimans & Ho 2022, arXiv:2202.00512) of the EDM toy model.

  python -m diffjax.main --config=configs/edm/toy2d.py --workdir=workdirs/edm_toy   # teacher
  python -m diffjax.main --config=configs/progressive_distillation/toy2d.py:steps=8 \
      --config.init_from=workdirs/edm_toy --workdir=workdirs/pd8_toy   # then 4, 2, 1

EDM's schedule, preconditioning and MLP as configs/edm/toy2d.py (t uniform = the ρ = 7 grid); the
student of `steps` DDIM steps matches two of its teacher's. The cheapest PD config: the one the
test suite runs end to end (with an untrained teacher).
"""

import os

from diffjax import config_lib

EDM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "edm", "toy2d.py")


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, steps=8, smoke=False)
  config = config_lib.load(EDM)
  n = int(arg.steps)
  config.method.update(kind="progressive_distillation", num_student_steps=n, teacher="checkpoint")
  config.train.num_steps = 5000
  config.sample = config_lib.sampler(
      "euler", n, "uniform_t", grid_kwargs=config_lib.student_grid(n)
  )
  if arg.smoke:
    config_lib.shrink(config)
    config.method.teacher = "random"
    config.sample.grid_kwargs.t_min = 0.5
  return config
