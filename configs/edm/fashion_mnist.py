r"""EDM (Karras et al. 2022, arXiv:2206.00364) on Fashion-MNIST (padded to 32×32), small U-Net.

  make fashion-mnist   # once: Debian's dataset-fashion-mnist (as root)
  python -m diffjax.main --config=configs/edm/fashion_mnist.py --workdir=workdirs/edm_fmnist
  python -m diffjax.main --config=configs/edm/fashion_mnist.py --workdir=workdirs/edm_fmnist --mode=sample

EDM's CIFAR-10 recipe where it carries over: σ_data = 0.5, P_mean = -1.2, P_std = 1.2, Adam lr 1e-3 with
a ramp-up, EMA half-life in images (EDM: 500 k images over 200 M; here 50 k over ~1.5 M), `nan_to_num`
on gradients, Heun with 18 steps (35 NFE) on the ρ = 7 grid. Unconditional, no augmentation.
Expected: see experiments/results/edm_fashion_mnist.md (H100 run of the `default` size).
`:posthoc_ema` adds EDM2's power-function EMA tracks (σ_rel 0.05 and 0.10, snapshots every 200
steps) for `--mode=reconstruct_ema` (experiments/results/likelihood/posthoc_ema.md).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, posthoc_ema=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      **config_lib.edm(),  # schedule, method, sample: EDM's CIFAR-10 constants (Table 1)
      optim=config_lib.adam(
          1e-3, warmup_steps=500, nan_to_num=True, ema=config_lib.ema_halflife(50_000, 0.05)
      ),
  )
  if arg.posthoc_ema:
    config.optim.posthoc_ema = config_lib.posthoc_ema(reconstruct_sigma_rels=(0.05, 0.10))
  if arg.smoke:
    config_lib.shrink(config)
    if arg.posthoc_ema:
      config.optim.posthoc_ema.snapshot_every_steps = 1
  return config
