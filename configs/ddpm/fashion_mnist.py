r"""DDPM (Ho et al. 2020, arXiv:2006.11239) on Fashion-MNIST (padded to 32×32), small U-Net.

  python -m diffjax.main --config=configs/ddpm/fashion_mnist.py --workdir=workdirs/ddpm_fmnist

The paper's chain as in `configs/ddpm/cifar10.py`: the discrete `ddpm` schedule (T = 1000, β linear
1e-4 → 0.02, node i at t = (i − 1)/999, the network sees 999·t), L_simple (ε-MSE, t uniform), Adam
lr 2e-4 (paper: 5000 warm-up steps, here 500), EMA 0.9995, dropout 0.1, gradient clip 1 (the
paper's CIFAR-10 settings, shorter). Sampled ancestrally (`ddpm`, β̃) over the 1000 nodes with x̂₀
clipping; test bits/dim from the discrete VLB of that chain with σ² = β ("large"), the variance of
the official CIFAR-10 run (`model_var_type='fixedlarge'` in its run_cifar.py).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      # The paper's chain; x̂₀ clipped to [-1, 1] at every step, as the official sampler
      # (`clip_denoised=True`).
      **config_lib.ddpm(solver_kwargs=dict(clip_denoised=True)),
      model=config_lib.small_unet(dropout=0.1, dtype="bfloat16"),
      # Test bits/dim: the discrete VLB of the chain (x_1..x_1000) with σ² = β ("large") reverse
      # variances, stratified estimate (methods/gaussian.py `bpd`), on all 10k test images.
      bpd_num_examples=10_000,
  )
  config.eval.bpd_kwargs = dict(var_type="large", num_strata=16)
  if arg.smoke:
    config_lib.shrink(config)
    config.eval.bpd_num_examples, config.eval.bpd_batch_size = 8, 8
    config.eval.bpd_kwargs = dict(var_type="large", num_strata=2)
  return config
