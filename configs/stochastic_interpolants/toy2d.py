r"""Stochastic interpolants (Albergo, Boffi & Vanden-Eijnden 2023, arXiv:2303.08797) on a 2-D toy.

  python -m diffjax.main --config=configs/stochastic_interpolants/toy2d.py:path=trig \
      --workdir=workdirs/si_toy

z_t = a(t)·x + b(t)·y + γ(t)·ξ from N(0, I) (t = 1) to the data (t = 0): `path=linear`
(a = 1 − t, b = t) or `trig` (a = cos(πt/2), b = sin(πt/2)), γ = c·sqrt(t(1 − t)) with c =
`gamma_scale`; velocity and denoiser heads; sampled with the SDE (Euler–Maruyama, diffusion ε =
`diffusion`; ε = 0 is the probability-flow ODE, also `sample.solver=interp_heun`).
"""

from diffjax import config_lib

SMOKE_ARGS = ("smoke", "path=trig,smoke")


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg,
      size="default",
      smoke=False,
      dataset="checkerboard",
      path="linear",
      gamma_scale=1.0,
      diffusion=1.0,
  )
  config_lib.pick(arg.path, {"linear": 0, "trig": 0}, key="path")
  num_steps = config_lib.pick(arg.size, {"default": 20_000, "demo": 3_000})
  config = config_lib.base()
  config.data = dict(name=arg.dataset, batch_size=512)
  config.method = config_lib.interpolant(arg.path, "bridge", arg.gamma_scale)
  config.model = config_lib.mlp(width=256, depth=4)
  config.optim = config_lib.adam(2e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(num_steps, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler(
      "interp_sde", 200, "uniform_t", solver_kwargs=dict(diffusion=arg.diffusion)
  )
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
