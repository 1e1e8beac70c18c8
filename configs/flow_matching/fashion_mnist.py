r"""Flow matching (Lipman et al. 2022, arXiv:2210.02747) on Fashion-MNIST (padded to 32×32), small U-Net.

  python -m diffjax.main --config=configs/flow_matching/fashion_mnist.py --workdir=workdirs/fm_fmnist

Lipman's OT path with σ_min = 0 (= rectified flow), written in diffjax time t = 1 − τ (Lipman puts
data at τ = 1): α = 1 − t, σ = t. Velocity prediction, flow-matching MSE, t ~ U[0, 1]; Euler on
uniform t with 100 steps (Heun/adaptive work too: `--config.sample.solver=heun`).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="flow", sigma_min=0.0),
      method=config_lib.gaussian("flow", "flow", "uniform"),
      # Flow σ̃ = t/(1 − t) is infinite at t = 1: start at t = 0.999 (z ≈ 0.999·ε + 0.001·x).
      sample=config_lib.sampler("euler", 100, "uniform_t", grid_kwargs=dict(t_max=0.999)),
  )
  if arg.smoke:
    config_lib.shrink(config)
  return config
