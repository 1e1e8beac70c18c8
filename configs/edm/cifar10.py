r"""EDM (Karras et al. 2022, arXiv:2206.00364) on CIFAR-10: DDPM++ or NCSN++, (un)conditional.

  python -m diffjax.main --config=configs/edm/cifar10.py:arch=ddpmpp,cond=false \
      --workdir=workdirs/edm_c10
  python -m diffjax.main --config=configs/edm/cifar10.py:arch=ncsnpp,cond=true \
      --workdir=workdirs/edm_c10_ncsnpp_cond --mode=sample

NVlabs/edm `train.py` defaults (= the paper's Table 7 CIFAR-10 column): EDM preconditioning and
loss (σ_data = 0.5, ln σ ~ N(-1.2, 1.2²)), batch 512, Adam lr 1e-3 ramped up linearly over 10 M
images, EMA half-life 0.5 M images with ramp-up ratio 0.05, dropout 0.13, 200 M images
(390 625 steps), `nan_to_num` on gradients, no clipping, non-leaky augmentation with p = 0.12
(`AugmentPipe(xflip=1e8, yflip=1, scale=1, rotate_frac=1, aniso=1, translate_frac=1)`) whose
9 labels condition the network (augment_dim = 9), no dataset x-flips; `arch`: DDPM++ (positional
embedding, box resampling) or NCSN++ (Fourier embedding, FIR, residual encoder), width 128, mult
(2, 2, 2), 4 blocks; `cond`: class-conditional on the 10 labels (no label dropout). Sampling:
Heun, 18 steps (35 NFE), σ ∈ [0.002, 80], ρ = 7.
FID protocol: 50 k samples vs NVlabs' CIFAR-10 reference statistics (StyleGAN3 Inception), the
minimum over 3 seed sets (0–49999, 50000–99999, 100000–149999). Paper: FID 1.97 unconditional,
1.79 conditional (DDPM++, "VP"; README); NCSN++ ("VE") 1.98 / 1.79 (Table 2, not re-verified).
Augmentation: `method.augment` holds `diffjax.data.augment.edm_augment`'s arguments; the Method
augments each training batch and feeds the 9 labels to the network (zeros at sampling time).
Differs: the augmentation resamples with cubic B-splines, not EDM's wavelet 2× supersampling
(data/augment.py).
"""

from diffjax import config_lib

SMOKE_ARGS = ("arch=ddpmpp,cond=false,smoke", "arch=ncsnpp,cond=true,smoke")
BATCH = 512


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, arch="ddpmpp", cond=False, smoke=False)
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=BATCH)
  # EDM's preconditioning, loss and sampler (σ_data 0.5, ln σ ~ N(-1.2, 1.2²), Heun-18 on the ρ = 7
  # grid over [0.002, 80]): `config_lib.edm`'s defaults, Table 1.
  config.update(config_lib.edm(conditional=arg.cond, batch_size=1000, num_samples=50_000))
  config.method.augment = config_lib.edm_augment(p=0.12)
  config.model = config_lib.song_unet(arg.arch, dropout=0.13, augment_dim=9)
  config.optim = config_lib.adam(
      1e-3,
      warmup_steps=config_lib.steps_for_images(10e6, BATCH),
      nan_to_num=True,
      ema=config_lib.ema_halflife(500_000, 0.05),
  )
  config.train = config_lib.train(
      config_lib.steps_for_images(200e6, BATCH),
      log_every_steps=1000,
      ckpt_every_steps=10_000,
      sample_every_steps=50_000,
  )
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  if arg.smoke:
    config_lib.shrink(config)
  return config
