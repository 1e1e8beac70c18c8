r"""Flow matching (Lipman et al. 2022, arXiv:2210.02747) on Fashion-MNIST (padded to 32×32), small U-Net.

  python -m diffjax.main --config=configs/flow_matching/fashion_mnist.py --workdir=workdirs/fm_fmnist

Lipman's OT path with σ_min = 0 (= rectified flow), written in diffjax time t = 1 − τ (Lipman puts
data at τ = 1): α = 1 − t, σ = t. Velocity prediction, flow-matching MSE, t ~ U[0, 1]; Euler on
uniform t with 100 steps (Heun/adaptive work too: `--config.sample.solver=heun`).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  num_steps = config_lib.pick(arg.size, {"default": 6_000, "long": 40_000})
  config = config_lib.base()
  config.data = config_lib.fashion_mnist(batch_size=256)
  config.schedule = dict(kind="flow", sigma_min=0.0)
  config.method = config_lib.gaussian("flow", "flow", "uniform")
  config.model = config_lib.small_unet(dtype="bfloat16")
  config.optim = config_lib.adam(2e-4, warmup_steps=500, grad_clip=1.0,
                                 ema=config_lib.ema_constant(0.9995))
  config.train = config_lib.train(num_steps, log_every_steps=200, ckpt_every_steps=1000,
                                  sample_every_steps=2000)
  # Flow σ̃ = t/(1 − t) is infinite at t = 1: start at t = 0.999 (z ≈ 0.999·ε + 0.001·x).
  config.sample = config_lib.sampler("euler", 100, "uniform_t", grid_kwargs=dict(t_max=0.999),
                                     batch_size=500, num_samples=10_000)
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100,
                                      fd_samplers={"default": {}, "heun35": config_lib.HEUN35})
  if arg.smoke:
    config_lib.shrink(config)
  return config
