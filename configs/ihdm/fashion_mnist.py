r"""Inverse heat dissipation (IHDM; Rissanen, Heinonen & Solin 2023, arXiv:2206.13397) on
Fashion-MNIST (padded to 32×32): the small U-Net twin predicts the residual to the less-blurred
image, K = 100 heat levels with blur stds log-spaced from 0.5 to 20 px (the official MNIST config),
training noise σ = 0.02 and sampling noise δ = 0.025 (the official σ = 0.01, δ ≈ 1.25σ on [0, 1]
images, doubled for diffjax's [-1, 1]).

  python -m diffjax.main --config=configs/ihdm/fashion_mnist.py --workdir=workdirs/ihdm_fmnist

Generation starts from a heavily blurred Gaussian image whose mean is N(-0.56, 0.19²) (Fashion-
MNIST's per-image mean in [-1, 1] with the -1 padding, measured on 5000 training images;
methods/ihdm.py); `--config.method.
sample_noise_std=...` sweeps δ. First GPU run (~4,000 steps, experiments/corruptions_gpu.sh):
FD-FMNIST 74.6 (experiments/results/corruptions/).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="edm"),  # unused by the Method (no noise schedule); kept for the twins
      method=dict(
          kind="ihdm",
          num_levels=100,
          blur_sigma_min=0.5,
          blur_sigma_max=20.0,
          train_noise_std=0.02,
          sample_noise_std=0.025,
          prior_mean=-0.56,
          prior_std=0.19,
      ),
      sample=config_lib.sampler("ihdm", 100, "none"),
  )
  config.eval.fd_samplers = {"default": {}}
  if arg.smoke:
    config_lib.shrink(config)
    config.method.num_levels = 4
    # No sliced W2 in the smoke run (its FULL_RUN test samples through --mode=sample instead),
    # which keeps the default suite within its time budget.
    config.eval.num_samples = 0
  return config
