r"""SB-CFM (Tong et al. 2023, §3.3) between Gaussians: N(0, I) (t = 1) to N(1, 0.5²·I) (t = 0).

  python -m diffjax.main --config=configs/sb_cfm/gaussian.py:dim=5 --workdir=workdirs/sbcfm_g5

Entropic plan ε = 2σ², Brownian-bridge interpolant, velocity and denoiser heads; sampled with the
SDE (`interp_sde`, diffusion 0.5) to exercise the score head (the ODE: `interp_heun`).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False, dim=5, sigma=1.0)
  config = config_lib.base()
  config.data = config_lib.gaussian_data(arg.dim, 256, mean=1.0, std=0.5)
  config.method = config_lib.sb_cfm(arg.sigma)
  config.model = config_lib.mlp(width=256, depth=3)
  config.optim = config_lib.adam(1e-3, warmup_steps=100, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(5000, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler(
      "interp_sde", 100, "uniform_t", solver_kwargs=dict(diffusion=0.5)
  )
  config.eval = config_lib.evaluation(num_samples=2000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
