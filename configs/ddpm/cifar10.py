r"""DDPM (Ho et al. 2020, arXiv:2006.11239) on CIFAR-10 at the paper's settings.

  python -m diffjax.main --config=configs/ddpm/cifar10.py --workdir=workdirs/ddpm_c10
  python -m diffjax.main --config=configs/ddpm/cifar10.py --workdir=workdirs/ddpm_c10 --mode=sample

Paper (§4, App. B): T = 1000, β linear from 1e-4 to 0.02, ε-prediction with L_simple, the 35.7 M
U-Net (ch 128, mult (1, 2, 2, 2), 2 res-blocks, attention at 16×16, dropout 0.1), Adam lr 2e-4 with
5000 warm-up steps, batch 128, 800 k steps, EMA 0.9999, gradient clipping at norm 1, random
horizontal flips; ancestral sampling over all 1000 steps (σ² = β̃ here, the paper found β and β̃
alike). FID protocol: 50 k samples against the training set with the TF Inception network,
FID 3.17, IS 9.46 (unconditional).

Here: the discrete chain is the `ddpm` schedule (node i of the chain at t = (i − 1)/999) and the
network sees 999·t = i − 1, the paper's 0-based step index; t is drawn uniformly in [0, 1] rather
than on the 1000 integers (λ is linear between nodes). Sampling visits exactly the 1000 nodes.
Clipping is 1 on the paper's per-pixel-mean loss, i.e. D/2 = 1536 on diffjax's summed, halved loss
(`config_lib.grad_clip_for`). Random left-right flips: `method.random_flip`.
"""

from diffjax import config_lib

SHAPE = (32, 32, 3)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  # The T = 1000 linear-β chain, ε-prediction with L_simple, ancestral sampling over its nodes.
  config.update(config_lib.ddpm(batch_size=1000, num_samples=50_000))
  config.method.random_flip = True  # Ho et al.: random horizontal flips
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
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  # Bits/dim (`eval.bpd_num_examples`) with σ² = β, the official run's `model_var_type='fixedlarge'`.
  config.eval.bpd_kwargs = dict(var_type="large", num_strata=16)
  if arg.smoke:
    config_lib.shrink(config)
  return config
