r"""DSBM-IMF (Shi et al. 2023, arXiv:2303.16852) between two 2-D toys (moons ↔ 8 Gaussians).

  python -m diffjax.main --config=configs/dsbm/toy2d.py --workdir=workdirs/dsbm_toy

π₀ (t = 0) = `x_data`, π₁ (t = 1) = `y_data`, σ = 1 as in the paper's 2-D runs; forward and
backward MLPs, 6 IMF iterations of 2000 steps, couplings simulated with 20 Euler–Maruyama steps.
`sample.solver=dsbm_backward` maps π₁ points (the `noise` override) to π₀, `dsbm_forward` back.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg, smoke=False, x_data="two_moons", y_data="eight_gaussians", sigma=1.0, first="ind"
  )
  steps = 2000
  config = config_lib.base()
  config.data = dict(
      name="unpaired", batch_size=256, x=dict(name=arg.x_data), y=dict(name=arg.y_data)
  )
  config.method = config_lib.dsbm(arg.sigma, steps, first_coupling=arg.first)
  config.model = config_lib.mlp(width=128, depth=3)
  config.optim = config_lib.adam(1e-3, warmup_steps=100, ema=config_lib.ema_constant(0.99))
  config.train = config_lib.train(6 * steps, log_every_steps=500, ckpt_every_steps=steps)
  config.sample = config_lib.sampler("dsbm_backward", 50, "uniform_t")
  config.eval = config_lib.evaluation(num_samples=2000)
  if arg.smoke:
    config_lib.shrink(config)
    config.method.steps_per_iteration, config.method.num_sim_steps = 1, 2
  return config
