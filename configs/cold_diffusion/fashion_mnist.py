r"""Cold Diffusion (Bansal et al. 2023, arXiv:2208.09392) on Fashion-MNIST (padded to 32×32):
deblurring (default) or demasking, small U-Net, L1 restoration loss, the improved sampler.

  python -m diffjax.main --config=configs/cold_diffusion/fashion_mnist.py --workdir=workdirs/cold_fmnist
  python -m diffjax.main --config=configs/cold_diffusion/fashion_mnist.py:degradation=mask ...

50 levels (the paper's CIFAR-10 blur uses 50 steps); blur by the heat operator up to σ_B = 32 px;
generation from a constant image drawn from N(-0.56, 0.19²) per channel: the mean and spread of
Fashion-MNIST's per-image means in [-1, 1] with the -1 padding (measured on the 60k training
images: -0.562 ± 0.193; unpadded 28×28 they are -0.428 ± 0.252); a Gaussian in place of the
paper's GMM, plus a per-pixel perturbation of std 0.002 that the result loses again (the official
generation code's; methods/cold.py). `--config.sample.solver=cold_naive` runs Alg. 1. First GPU
run (~4,000 steps, before the perturbation): FD-FMNIST 379, the samples reached few modes from
the constant start (experiments/results/corruptions/).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, degradation="blur")
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="edm"),  # unused by the Method (no noise); kept for the twins' sections
      method=dict(
          kind="cold",
          degradation=arg.degradation,
          num_levels=50,
          blur_sigma_max=32.0,
          prior_mean=-0.56,
          prior_std=0.19,
          prior_pixel_std=0.002,  # the official generation code's symmetry breaker
      ),
      sample=config_lib.sampler("cold_improved", 50, "none"),
  )
  config.eval.fd_samplers = {"default": {}, "naive": dict(solver="cold_naive")}
  if arg.smoke:
    config_lib.shrink(config)
  return config
