r"""SD3 timestep sampling (Esser et al. 2024, arXiv:2403.03206), class-conditional ImageNet-64.

  python -m diffjax.main --config=configs/sd3_timesteps/imagenet64.py --workdir=workdirs/sd3_in64
  python -m diffjax.main --config=configs/sd3_timesteps/imagenet64.py:shift=3.0,variant=XL/4 ...

The paper's recipe: rectified flow z_t = (1 − t)·x + t·ε (noise at t = 1, SD3's own convention and
diffjax's), velocity prediction with the flow-matching loss, t drawn logit-normal(m = 0, s = 1)
(§3.1, eq. 19; its best "rf/lognorm(0.00, 1.00)"), and the resolution shift
t' = s·t / (1 + (s − 1)·t) (eq. 23) with s = `shift`: SD3 uses s = 3 at 1024² (s = sqrt(m/n) of
the pixel counts relative to its 256² base). At 64×64×3 pixels (12 288 values, about the 32×32×16
latents of SD3's 256² base) the default is s = 1 (no shift). Class-conditional with
classifier-free guidance: 10 % label dropout, guidance scale 1.5 at sampling (DiT's FID setting).
Network: DiT (Peebles & Xie 2023; SD3's MMDiT needs text) without the learned-variance head;
`variant` B/4 by default (16×16 = 256 tokens, as DiT/2 on 32×32 latents). Optimiser: DiT's
recipe (AdamW lr 1e-4, no weight decay, batch 256, EMA 0.9999, 400 k steps); the paper's own
ImageNet settings were not verified here. Sampling: Euler, 50 uniform-t steps from t = 0.999.
Data: TFDS `imagenet2012` centre-cropped and resized to 64×64.
FID protocol: the paper reports validation loss, CLIP score and FID of its text-to-image models
(no ImageNet-64 number to compare with); DiT uses ADM's TF evaluator on 50 k samples.
"""

from diffjax import config_lib

SMOKE_ARGS = ("smoke",)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, variant="B/4", shift=1.0, guidance=1.5, smoke=False)
  config = config_lib.base()
  config.data = config_lib.imagenet64(batch_size=256)
  config.schedule = dict(kind="shifted_flow", shift=arg.shift)
  config.method = config_lib.gaussian(
      "flow", "flow", "logit_normal", t_sampling_kwargs=dict(m=0.0, s=1.0), conditional=True
  )
  config.model = config_lib.dit(arg.variant, learn_sigma=False, label_dropout=0.1)
  config.optim = config_lib.adam(1e-4, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(
      400_000, log_every_steps=1000, ckpt_every_steps=10_000, sample_every_steps=50_000
  )
  config.sample = config_lib.sampler(
      "euler",
      50,
      "uniform_t",
      grid_kwargs=dict(t_max=0.999),
      guidance_scale=arg.guidance,
      batch_size=500,
      num_samples=50_000,
  )
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  config.eval.split = (
      "validation"  # imagenet2012's labelled held-out split (its "test" has no labels)
  )
  if arg.smoke:
    config_lib.shrink(config)
  return config
