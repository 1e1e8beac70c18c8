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
  num_steps = config_lib.pick(arg.size, {"default": 6_000, "long": 40_000})
  config = config_lib.base()
  config.data = config_lib.fashion_mnist(batch_size=256)
  config.schedule = dict(kind="cosine")
  config.method = config_lib.gaussian("v", "v_mse", "uniform")
  config.model = config_lib.small_unet(dtype="bfloat16")
  config.optim = config_lib.adam(2e-4, warmup_steps=500, grad_clip=1.0,
                                 ema=config_lib.ema_constant(0.9995))
  config.train = config_lib.train(num_steps, log_every_steps=200, ckpt_every_steps=1000,
                                  sample_every_steps=2000)
  config.sample = config_lib.sampler("euler", 100, "uniform_t", batch_size=500, num_samples=10_000)
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100,
                                      fd_samplers={"default": {}, "heun35": config_lib.HEUN35})
  if arg.smoke:
    config_lib.shrink(config)
  return config
