r"""v-prediction (Salimans & Ho 2022, arXiv:2202.00512) on Fashion-MNIST (padded to 32×32), small U-Net.

  python -m diffjax.main --config=configs/v_prediction/fashion_mnist.py --workdir=workdirs/v_fmnist

The network predicts v = α·ε − σ·x on the cosine schedule (Nichol & Dhariwal 2021, λ truncated to
[-15, 15]) with the v-MSE loss ‖v − v̂‖² (= SNR+1-weighted ε-MSE in the Kingma & Gao view), t ~ U[0, 1];
sampled with DDIM η = 0 (`euler` in the σ-frame) on 100 uniform-t steps, as the paper's undistilled
teacher. Progressive distillation itself is a separate Method.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="cosine"),
      method=config_lib.gaussian("v", "v_mse", "uniform"),
      sample=config_lib.sampler("euler", 100, "uniform_t"),
  )
  if arg.smoke:
    config_lib.shrink(config)
  return config
