r"""Shortcut models (Frans et al. 2024, arXiv:2410.12557) on Fashion-MNIST, from scratch.

  python -m diffjax.main --config=configs/shortcut/fashion_mnist.py --workdir=workdirs/sc_fmnist

One network u(z, t, t − d) for every step size (MeanFlow's network, methods/shortcut.py): flow
matching on ¾ of the batch (at the smallest step's input d = 1/M, as the official code), and
self-consistency of two d-steps with one 2d-step on ¼, on the paper's grid of M = 128 steps.
Sampled in 1 step (`shortcut` sampler); FD also at 2 and 4 steps. The twin protocol otherwise.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="rectified_flow", sigma_min=0.0),
      method=dict(
          kind="shortcut",
          time_scale=1000.0,
          min_steps=128,
          bootstrap_frac=0.25,
          bootstrap_ema=0.999,
      ),
      sample=config_lib.sampler("shortcut", 1, "uniform_t"),
  )
  config.eval.fd_samplers = config_lib.few_step_fd_samplers()
  if arg.smoke:
    config_lib.shrink(config)
  return config
