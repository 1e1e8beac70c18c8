r"""MeanFlow (Geng et al. 2025, arXiv:2505.13447) on Fashion-MNIST, trained from scratch.

  python -m diffjax.main --config=configs/meanflow/fashion_mnist.py --workdir=workdirs/mf_fmnist

The straight path z_t = (1 − t)x + tε, the average-velocity network u_θ(z, t, r) (the twin's small
U-Net with a second time input for t − r), the MeanFlow identity target through `jax.jvp`, the
adaptive weight with the paper's CIFAR-10 constants (logit-normal P_mean = −2.0, P_std = 2.0,
r ≠ t for 75 % of the batch, p = 0.75, c = 1e-3; from third-party notes of the paper's Table,
not re-verified). One network call to sample (`meanflow` chain sampler); FD also at 2 and 4
calls. The twin protocol otherwise.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="rectified_flow", sigma_min=0.0),
      method=config_lib.meanflow(p_mean=-2.0, p_std=2.0, ratio=0.75, norm_p=0.75),
      sample=config_lib.sampler("meanflow", 1, "uniform_t"),
  )
  config.eval.fd_samplers = config_lib.few_step_fd_samplers()
  if arg.smoke:
    config_lib.shrink(config)
  return config
