r"""v-prediction (Salimans & Ho 2022, arXiv:2202.00512) on CIFAR-10: the undistilled teacher.

  python -m diffjax.main --config=configs/v_prediction/cifar10.py --workdir=workdirs/v_c10
  python -m diffjax.main --config=configs/v_prediction/cifar10.py:steps=64 \
      --workdir=workdirs/v_c10 --mode=sample

The paper's parameterisation and schedule: the network predicts v = α·ε − σ·x on the cosine
schedule (Nichol & Dhariwal 2021; λ truncated to [-15, 15] here), loss ‖v − v̂‖² (= "SNR + 1"
weighting of ε-MSE, the paper's §4 choice), t ~ U[0, 1]; sampled with DDIM η = 0 (`euler` in the
σ-frame) on `steps` uniform-t steps. Progressive distillation itself is a separate Method.
Network and optimiser: Ho et al.'s CIFAR-10 recipe (35.7 M DDPM U-Net, dropout 0.1, Adam lr 2e-4,
5000 warm-up steps, batch 128, EMA 0.9999, clipping 1 on the per-pixel-mean loss, 800 k steps);
the paper's exact CIFAR-10 teacher hyper-parameters were not verified here.
FID protocol: 50 k samples vs the training set (TF Inception). Paper (abstract): distilled
students reach FID 3.0 in 4 steps; the teacher's own FID is not quoted here.
Random left-right flips as the DDPM recipe (`method.random_flip`).
"""

from diffjax import config_lib

SHAPE = (32, 32, 3)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, steps=256, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  config.schedule = dict(kind="cosine")
  config.method = config_lib.gaussian("v", "v_mse", "uniform")
  config.method.random_flip = True
  config.model = config_lib.ddpm_unet(dropout=0.1)
  config.optim = config_lib.adam(
      2e-4,
      warmup_steps=5000,
      grad_clip=config_lib.grad_clip_for(1.0, SHAPE, "mean"),
      ema=config_lib.ema_constant(0.9999),
  )
  config.train = config_lib.train(
      800_000, log_every_steps=1000, ckpt_every_steps=10_000, sample_every_steps=50_000
  )
  config.sample = config_lib.sampler(
      "euler", arg.steps, "uniform_t", batch_size=1000, num_samples=50_000
  )
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  if arg.smoke:
    config_lib.shrink(config)
  return config
