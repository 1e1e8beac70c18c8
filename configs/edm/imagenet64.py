r"""EDM (Karras et al. 2022, arXiv:2206.00364) on class-conditional ImageNet-64 with ADM.

  python -m diffjax.main --config=configs/edm/imagenet64.py --workdir=gs://BUCKET/edm_in64
  python -m diffjax.main --config=configs/edm/imagenet64.py --workdir=gs://BUCKET/edm_in64 \
      --mode=sample

NVlabs/edm README training command for `imagenet-64x64-cond-adm` (32 A100s, ~13 days):
`--cond=1 --arch=adm --duration=2500 --batch=4096 --lr=1e-4 --ema=50 --dropout=0.10 --augment=0
--fp16=1`: EDM preconditioning and loss (σ_data = 0.5, ln σ ~ N(-1.2, 1.2²)), the 296 M ADM
(width 192, mult (1, 2, 3, 4), 3 blocks, attention at 32/16/8 with 64-channel heads) conditioned
on the 1000 classes, batch 4096, Adam lr 1e-4 ramped up over 10 M images, EMA half-life 50 M
images (ramp-up 0.05), dropout 0.1, 2500 M images (610 352 steps), no augmentation; activations in
bfloat16 (EDM: fp16 with loss scaling 100). Sampling: EDM's stochastic sampler (Alg. 2), 256 steps (511 NFE),
S_churn = 40, S_min = 0.05, S_max = 50, S_noise = 1.003, σ ∈ [0.002, 80], ρ = 7.
Data: TFDS `imagenet2012` (manual download), centre-cropped and resized to 64×64 (EDM's
dataset_tool does the same with a Lanczos filter; bicubic here).
FID protocol: 50 k samples vs EDM's `imagenet-64x64.npz` reference statistics, minimum over 3
seed sets. Paper: FID 1.36 (this sampler).
"""

from diffjax import config_lib

BATCH = 4096


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = config_lib.imagenet64(batch_size=BATCH)
  # EDM's preconditioning and loss (Table 1 defaults) with its stochastic sampler (Alg. 2).
  config.update(
      config_lib.edm(
          conditional=True,
          solver="edm_stochastic",
          num_steps=256,
          solver_kwargs=dict(S_churn=40.0, S_tmin=0.05, S_tmax=50.0, S_noise=1.003),
          batch_size=500,
          num_samples=50_000,
      )
  )
  config.model = config_lib.adm(dropout=0.1, dtype="bfloat16")
  config.optim = config_lib.adam(
      1e-4,
      warmup_steps=config_lib.steps_for_images(10e6, BATCH),
      nan_to_num=True,
      ema=config_lib.ema_halflife(50_000_000, 0.05),
  )
  config.train = config_lib.train(
      config_lib.steps_for_images(2500e6, BATCH),
      log_every_steps=1000,
      ckpt_every_steps=5_000,
      sample_every_steps=50_000,
  )
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  config.eval.split = (
      "validation"  # imagenet2012's labelled held-out split (its "test" has no labels)
  )
  if arg.smoke:
    config_lib.shrink(config)
  return config
