r"""Improved consistency training (iCT, Song & Dhariwal 2023, arXiv:2310.14189) on Fashion-MNIST.

  python -m diffjax.main --config=configs/ict/fashion_mnist.py --workdir=workdirs/ict_fmnist

iCT's recipe: no EMA target (θ⁻ = sg(θ)), pseudo-Huber loss with c = 0.00054·√d (d = 1024 here:
c = 0.0173), ln σ of the pair drawn from the lognormal (P_mean = −1.1, P_std = 2.0) discretised on
the Karras grid, weight 1/(σ_{i+1} − σ_i), N(k) = min(s0·2^⌊k/K'⌋, s1) + 1 with s0 = 10,
s1 = 1280 over the run (K = train.num_steps). σ ∈ [0.002, 80], ρ = 7, σ_data = 0.5.
One network call to sample; FD also at 2 and 4 calls. The twin protocol otherwise.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  steps = config_lib.TWIN_STEPS[arg.size]
  config = config_lib.fashion_mnist_twin(
      arg.size,
      **config_lib.consistency(
          "ict", total_steps=steps, metric="pseudo_huber", s0=10, s1=1280, p_mean=-1.1, p_std=2.0
      ),
  )
  config.eval.fd_samplers = config_lib.few_step_fd_samplers()
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
  return config
