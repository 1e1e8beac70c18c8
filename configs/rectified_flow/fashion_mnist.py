r"""Rectified flow (Liu et al. 2023, arXiv:2209.03003), 1-rectified flow on Fashion-MNIST (32×32).

  python -m diffjax.main --config=configs/rectified_flow/fashion_mnist.py --workdir=workdirs/rf_fmnist

The straight path z_t = (1 − t)·x + t·ε (σ_min = 0), velocity regression with t ~ U[0, 1]. Liu et al.
put noise at t = 0 and data at t = 1 (π₀ = noise); diffjax puts noise at t = 1 everywhere, so their
v(z, t) is −v(z, 1 − t) here: converted once, by the `flow` schedule/parameterisation. Sampled as the
paper reports its 1-RF FID: an adaptive RK45-type solver (our `adaptive`, diffrax Dopri5) with
rtol = atol = 1e-5, from t = 0.999 (σ = 999 in the σ-frame) to 0. The same network, optimiser and
budget as the other Fashion-MNIST twins; `configs/flow_matching/fashion_mnist.py` is the same
training sampled with Euler steps.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  num_steps = config_lib.pick(arg.size, {"default": 6_000, "long": 40_000})
  config = config_lib.base()
  config.data = config_lib.fashion_mnist(batch_size=256)
  config.schedule = dict(kind="rectified_flow")
  config.method = config_lib.gaussian("flow", "flow", "uniform")
  config.model = config_lib.small_unet(dtype="bfloat16")
  config.optim = config_lib.adam(2e-4, warmup_steps=500, grad_clip=1.0,
                                 ema=config_lib.ema_constant(0.9995))
  config.train = config_lib.train(num_steps, log_every_steps=200, ckpt_every_steps=1000,
                                  sample_every_steps=2000)
  config.sample = config_lib.sampler("adaptive", 1, "uniform_t", grid_kwargs=dict(t_max=0.999),
                                     solver_kwargs=dict(rtol=1e-5, atol=1e-5),
                                     batch_size=500, num_samples=10_000)
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100,
                                      fd_samplers={"default": {}, "heun35": config_lib.HEUN35})
  if arg.smoke:
    config_lib.shrink(config)
  return config
