r"""SB-CFM (Tong et al. 2023, arXiv:2302.00482, §3.3) on a 2-D toy, with an MLP.

  python -m diffjax.main --config=configs/sb_cfm/toy2d.py --workdir=workdirs/sbcfm_toy

The Schrödinger bridge from N(0, I) (diffjax t = 1) to the data (t = 0) for the reference σ·W:
pairs drawn from the entropic OT plan of each global batch with ε = 2σ² on ‖x − y‖² (Sinkhorn,
100 iterations), the Brownian bridge z_t = (1 − t)x + t·y + σ·sqrt(t(1 − t))·ξ, velocity and
denoiser heads (methods/interpolant.py). torchcfm's SB-CFM default σ = 1.0; here σ = 0.5
(`sigma=`). Sampled with the probability-flow ODE (Euler, 100 steps); `interp_sde` with
`sample.solver_kwargs.diffusion` runs the SDE.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, dataset="eight_gaussians", sigma=0.5)
  num_steps = config_lib.pick(arg.size, {"default": 20_000, "demo": 3_000})
  config = config_lib.base()
  config.data = dict(name=arg.dataset, batch_size=512)
  config.method = config_lib.sb_cfm(arg.sigma)
  config.model = config_lib.mlp(width=256, depth=4)
  config.optim = config_lib.adam(2e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(num_steps, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler("interp_euler", 100, "uniform_t")
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
