r"""Blurring diffusion (Hoogeboom & Salimans 2023, arXiv:2209.05557) on Fashion-MNIST (padded to
32×32): the small U-Net twin, ε-prediction in pixel space, the paper's cosine base schedule with
λ ∈ [-10, 10], blur up to σ_B,max = 20 px (the paper's CIFAR-10 value) with d_min = 0.001, and its
ancestral sampler with per-frequency α_{t|s}, σ_{t|s} (methods/blurring_diffusion.py).

  python -m diffjax.main --config=configs/blurring_diffusion/fashion_mnist.py --workdir=workdirs/bd

Sampling takes the paper's 1000 uniform steps; fewer under-disperse at first order in 1/T (with the
exact ε̂ too: tests/methods/test_blurring_diffusion.py), `--config.sample.num_steps=250` is 4×
cheaper. First GPU run (~4,000 steps, experiments/corruptions_gpu.sh): FD-FMNIST 37.7 at 250 steps
(experiments/results/corruptions/).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="cosine", truncate_logsnr_min=-10.0, truncate_logsnr_max=10.0),
      method=dict(kind="blurring", blur_sigma_max=20.0, d_min=0.001),
      sample=config_lib.sampler("blurring_ancestral", 1000, "none"),
  )
  config.eval.fd_samplers = {"default": {}}
  if arg.smoke:
    config_lib.shrink(config)
    # No sliced W2 in the smoke run (its FULL_RUN test samples through --mode=sample instead),
    # which keeps the default suite within its time budget.
    config.eval.num_samples = 0
  return config
