r"""Shortcut models (Frans et al. 2024, arXiv:2410.12557) on a 2-D toy distribution, with an MLP.

  python -m diffjax.main --config=configs/shortcut/toy2d.py --workdir=workdirs/sc_toy

M = 128, bootstrap fraction ¼; one step to sample (`--config.sample.num_steps` for more). The
cheapest shortcut config: the one the test suite runs end to end.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = dict(name="checkerboard", batch_size=512)
  config.schedule = dict(kind="rectified_flow", sigma_min=0.0)
  config.method = dict(
      kind="shortcut", time_scale=1000.0, min_steps=128, bootstrap_frac=0.25, bootstrap_ema=0.999
  )
  config.model = config_lib.mlp(width=256, depth=4, embedding="positional")  # 1000·t input
  config.optim = config_lib.adam(1e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(20_000, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler("shortcut", 1, "uniform_t")
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
