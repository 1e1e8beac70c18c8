r"""DSBM-IMF (Shi et al. 2023, arXiv:2303.16852) between Gaussians: N(−0.1·1, I) → N(0.1·1, I).

  python -m diffjax.main --config=configs/dsbm/gaussian.py:dim=20 --workdir=workdirs/dsbm_g20

Shi et al.'s Gaussian benchmark (d = 5, 20, 50; their DSBM-Gaussian.py: means ∓0.1, identity
covariances, σ² = 1): the Schrödinger bridge has a closed form (Bunne et al. 2023; here
`core/gaussian_sb.py`), e.g. cross-covariance (√5 − 1)/2·I between the two ends. 8 IMF
iterations of `steps` optimiser steps each (`first=ref` starts from the reference coupling, as
DSBM-IPF); experiments/bridges/gaussian_sb.py reports the coupling's errors per iteration.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg, smoke=False, dim=5, sigma=1.0, iterations=8, steps=1000, first="ind"
  )
  config = config_lib.base()
  config.data = dict(
      name="unpaired",
      batch_size=256,
      x=config_lib.gaussian_data(arg.dim, 256, mean=-0.1),
      y=config_lib.gaussian_data(arg.dim, 256, mean=0.1),
  )
  config.method = config_lib.dsbm(arg.sigma, arg.steps, first_coupling=arg.first, num_sim_steps=20)
  config.model = config_lib.mlp(width=128, depth=2)
  config.optim = config_lib.adam(1e-3, warmup_steps=100, ema=config_lib.ema_constant(0.99))
  config.train = config_lib.train(
      arg.iterations * arg.steps, log_every_steps=500, ckpt_every_steps=arg.steps
  )
  config.sample = config_lib.sampler("dsbm_backward", 20, "uniform_t")
  config.eval = config_lib.evaluation(num_samples=2000)
  if arg.smoke:
    config_lib.shrink(config)
    config.method.steps_per_iteration, config.method.num_sim_steps = 1, 2  # every phase runs
  return config
