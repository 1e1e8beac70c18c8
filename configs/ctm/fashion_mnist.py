r"""Consistency trajectory models (CTM; Kim et al. 2023, arXiv:2310.02279) on Fashion-MNIST.

  # from an EDM teacher run (configs/edm/fashion_mnist.py, the same small U-Net):
  python -m diffjax.main --config=configs/ctm/fashion_mnist.py \
      --config.init_from=workdirs/edm_fmnist --workdir=workdirs/ctm_fmnist

The official sony/ctm CIFAR-10 defaults (methods/ctm.py): N = 18 Karras levels on [0.002, 80],
ρ = 7, up to 17 teacher Heun steps with p(n) ∝ n, θ⁻ EMA 0.999, DSM term with the adaptive weight
at the last layer (`conv_out`), σ_data = 0.5; squared L2 instead of LPIPS; no GAN term. The
twin's small U-Net with the second time input for s; the twin protocol otherwise. Sampling:
γ-sampling with γ = 0 (deterministic jumps), 1 jump; FD-FMNIST also at 2 and 4 jumps, on the
default Karras grid (`step<n>`) and on the N training levels (`step<n>_on_grid`,
config_lib.ctm_fd_samplers); `:grid=training` samples on the training levels by default.
Expected: far from the paper's quality at the twin's budget (experiments/results/
fewstep_fashion_mnist.md).
"""

from diffjax import config_lib

SMOKE_ARGS = ("smoke",)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", gamma=0.0, grid="karras", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      **config_lib.ctm(
          gamma=float(arg.gamma),
          sample_grid=arg.grid,
          teacher="random" if arg.smoke else "checkpoint",  # smoke: no checkpoint to distil
          dsm_layer="conv_out",
      ),
  )
  if arg.smoke:
    config_lib.shrink(config)
    # Tests: a fixed DSM weight (the adaptive one is tested in tests/methods/test_ctm.py).
    config.method.update(num_scales=4, max_heun_steps=2, dsm_weight=1.0)
  config.eval.fd_samplers = config_lib.ctm_fd_samplers(config)  # after num_scales is final
  return config
