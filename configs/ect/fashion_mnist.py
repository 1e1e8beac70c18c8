r"""Easy consistency tuning (ECT, Geng et al. 2024, arXiv:2406.14548) on Fashion-MNIST.

  python -m diffjax.main --config=configs/ect/fashion_mnist.py \
      --config.init_from=workdirs/edm_fmnist --workdir=workdirs/ect_fmnist

Starts from a diffjax EDM run of the same network (`init_from`, configs/edm/fashion_mnist.py);
without it the run trains from scratch (not ECT). locuslab/ect `training/loss.py`: t ~ lognormal
(P_mean = −1.1, P_std = 2.0), r = t·(1 − q^{−(stage+1)}(1 + k·sigmoid(−b t))) with q = 2, k = 8,
b = 1, the stage advancing every `double_every_steps` (ECT's CIFAR-10 run: 8 stages over the run);
the two network calls share one dropout key; loss (√(‖·‖² + c²) − c)/(t − r) with loss.py's
default c = 0; target x where r = 0; EDM's preconditioning. The twin protocol otherwise.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  steps = config_lib.TWIN_STEPS[arg.size]
  config = config_lib.fashion_mnist_twin(
      arg.size,
      **config_lib.consistency(
          "ect",
          total_steps=steps,
          metric="pseudo_huber",
          huber_c=0.0,
          p_mean=-1.1,
          p_std=2.0,
          q=2.0,
          k=8.0,
          b=1.0,
          double_every_steps=max(steps // 8, 1),
      ),
  )
  config.eval.fd_samplers = config_lib.few_step_fd_samplers()
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
  return config
