r"""Stochastic interpolants (Albergo et al. 2023) from N(0, I) to N(1, 0.5²·I) in `dim` dims.

  python -m diffjax.main --config=configs/stochastic_interpolants/gaussian.py:dim=5 \
      --workdir=workdirs/si_g5

With Gaussian ends the velocity and denoiser are linear in z and known in closed form
(`core.interpolants.gaussian_fields`); tests compare the learned heads with them.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False, dim=5, path="linear", gamma_scale=1.0)
  config_lib.pick(arg.path, {"linear": 0, "trig": 0}, key="path")
  config = config_lib.base()
  config.data = config_lib.gaussian_data(arg.dim, 256, mean=1.0, std=0.5)
  config.method = config_lib.interpolant(arg.path, "bridge", arg.gamma_scale)
  config.model = config_lib.mlp(width=128, depth=2)
  config.optim = config_lib.adam(1e-3, warmup_steps=100, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(4000, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler(
      "interp_sde", 100, "uniform_t", solver_kwargs=dict(diffusion=1.0)
  )
  config.eval = config_lib.evaluation(num_samples=2000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
