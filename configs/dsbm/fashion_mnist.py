r"""DSBM-IMF (Shi et al. 2023) image-to-image transfer between two Fashion-MNIST class groups.

  python -m diffjax.main --config=configs/dsbm/fashion_mnist.py --workdir=workdirs/dsbm_fmnist

π₀ (t = 0): tops (T-shirt/top, pullover, coat, shirt: classes 0, 2, 4, 6); π₁ (t = 1):
footwear (sandal, sneaker, ankle boot: 5, 7, 9); 32×32, the twin U-Net for each direction (the
network sees 999·t), σ = 1 (Shi et al.'s MNIST ↔ EMNIST transfer uses σ² = 1 on [-1, 1]
pixels). 4 IMF iterations of `steps` steps, couplings simulated with 10 Euler–Maruyama steps per
batch (each training step costs 10 forward passes more). Shi et al. use 30 steps and many more
iterations; this is the short run of experiments/bridges_gpu.sh.
"""

from diffjax import config_lib

TOPS, FOOTWEAR = (0, 2, 4, 6), (5, 7, 9)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False, steps=1500, iterations=4, sigma=1.0, first="ind")
  fmnist = config_lib.fashion_mnist(batch_size=128)
  del fmnist["batch_size"]
  config = config_lib.base()
  config.data = dict(
      name="unpaired", batch_size=128, x=fmnist, y=dict(fmnist), x_classes=TOPS, y_classes=FOOTWEAR
  )
  config.method = config_lib.dsbm(
      arg.sigma, arg.steps, first_coupling=arg.first, num_sim_steps=10, noise_cond_scale=999.0
  )
  config.model = config_lib.small_unet()
  config.optim = config_lib.adam(
      2e-4, warmup_steps=200, grad_clip=1.0, ema=config_lib.ema_constant(0.999)
  )
  config.train = config_lib.train(
      arg.iterations * arg.steps, log_every_steps=200, ckpt_every_steps=arg.steps
  )
  config.sample = config_lib.sampler(
      "dsbm_backward", 30, "uniform_t", batch_size=500, num_samples=2000
  )
  config.eval = config_lib.evaluation(num_samples=500, num_plot=100)
  if arg.smoke:
    config_lib.shrink(config)
    config.method.steps_per_iteration, config.method.num_sim_steps = 1, 2
  return config
