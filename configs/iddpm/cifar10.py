r"""IDDPM (Nichol & Dhariwal 2021, arXiv:2102.09672) on CIFAR-10 at the paper's settings.

  python -m diffjax.main --config=configs/iddpm/cifar10.py --workdir=gs://BUCKET/iddpm/c10

App. A and the official improved-diffusion CIFAR-10 flags: cosine schedule with T = 4000
(`iddpm_cosine`, s = 0.008, β ≤ 0.999), ε-prediction with learned variance (learn_sigma), L_hybrid
with λ = 0.001 and the VLB's gradient stopped on the mean; U-Net with 128 channels, multipliers
(1, 2, 2, 2), 3 residual blocks, attention at 16×16 and 8×8 (4 heads, improved-diffusion's
default), dropout 0.3; Adam lr 1e-4, batch 128, 500 k steps, EMA 0.9999, no warm-up, no gradient
clipping, no data augmentation.

Evaluation. Sampling with the learned variance on 100 evenly strided steps of the 4000 (the paper's
fast-sampling study, §4, runs 25 ... 4000 steps). Bits/dim: the discrete VLB of the 4000-step chain
on the test set; the paper sums every term, here a stratified estimate with 64 strata (130 network
calls per image; `--config.eval.bpd_kwargs.num_strata=0` sums all 4000). Headline: 2.94 bits/dim
(a third-party summary, PAPERS.md, attributes it to L_vlb training; not verified here). FID protocol
of the paper (not verified here): 50 000 samples against the training set with the Inception network
of their TF evaluation code; FID on fewer samples is biased upwards, so compare only like with like.
Expected: not run here (500 k steps of this U-Net take days on one accelerator).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = dict(name="tfds", tfds_name="cifar10", batch_size=128)
  config.schedule = dict(kind="iddpm_cosine", num_timesteps=4000)
  config.method = config_lib.gaussian("eps", "eps_mse", "uniform")
  config.method.objective = "iddpm_hybrid"
  config.method.objective_kwargs = dict(lambda_vlb=0.001)
  config.model = config_lib.unet(
      ch=128,
      ch_mult=(1, 2, 2, 2),
      num_res_blocks=3,
      attn_resolutions=(16, 8),
      num_heads=4,
      dropout=0.3,
      learn_sigma=True,
  )
  config.optim = config_lib.adam(1e-4, ema=config_lib.ema_constant(0.9999))
  config.train = config_lib.train(
      500_000, log_every_steps=1000, ckpt_every_steps=10_000, sample_every_steps=50_000
  )
  config.sample = config_lib.sampler(
      "iddpm_ancestral",
      100,
      "uniform_t",
      solver_kwargs=dict(clip_x0=True),
      batch_size=500,
      num_samples=50_000,
  )
  config.eval = config_lib.evaluation(num_samples=5000, num_plot=100, bpd_num_examples=10_000)
  config.eval.bpd_kwargs = dict(num_strata=64)
  if arg.smoke:
    config_lib.shrink(config)
    config.eval.bpd_num_examples = 8
    config.eval.bpd_batch_size = 8
    config.eval.bpd_kwargs = dict(num_strata=2)
  return config
