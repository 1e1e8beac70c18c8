r"""Stochastic interpolants (Albergo et al. 2023) on Fashion-MNIST (32×32), twin protocol.

  python -m diffjax.main --config=configs/stochastic_interpolants/fashion_mnist.py:path=trig \
      --workdir=workdirs/si_fmnist

Linear or trigonometric path from N(0, I) (t = 1) to the images (t = 0), γ = sqrt(t(1 − t))·c,
velocity and denoiser heads (U-Net output channels doubled; the network sees 999·t). Sampled
with the SDE (Euler–Maruyama, 100 steps, diffusion 1); the ODE is `sample.solver=interp_heun`.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, path="linear", gamma_scale=1.0)
  config_lib.pick(arg.path, {"linear": 0, "trig": 0}, key="path")
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule={},
      method=config_lib.interpolant(arg.path, "bridge", arg.gamma_scale, noise_cond_scale=999.0),
      sample=config_lib.sampler("interp_sde", 100, "uniform_t", solver_kwargs=dict(diffusion=1.0)),
  )
  config.eval.fd_samplers = {"default": {}, "heun35": dict(solver="interp_heun", num_steps=18)}
  if arg.smoke:
    config_lib.shrink(config)
  return config
