r"""SB-CFM (Tong et al. 2023, §3.3) on Fashion-MNIST (32×32), the twin protocol's network/budget.

  python -m diffjax.main --config=configs/sb_cfm/fashion_mnist.py --workdir=workdirs/sbcfm_fmnist

Pairs from the entropic plan over each global batch of 256 (ε = 2σ² on ‖x − ε‖², σ = 0.1 in
pixel units of [-1, 1]: the cost ‖x − ε‖² is ~2000 here, so σ must be small for the plan to be
more than the product coupling), the Brownian bridge with γ = σ·sqrt(t(1 − t)), velocity and
denoiser heads (the U-Net's output channels doubled). The network sees 999·t. Sampled with the
ODE (Heun, 18 steps = 35 NFE).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, sigma=0.1)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule={},
      method=config_lib.sb_cfm(arg.sigma, noise_cond_scale=999.0),
      sample=config_lib.sampler("interp_heun", 18, "uniform_t"),
  )
  config.eval.fd_samplers = {"default": {}}
  if arg.smoke:
    config_lib.shrink(config)
  return config
