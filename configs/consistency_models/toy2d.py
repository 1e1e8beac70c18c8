r"""Consistency training (Song et al. 2023, arXiv:2303.01469) on a 2-D toy distribution, with an MLP.

  python -m diffjax.main --config=configs/consistency_models/toy2d.py --workdir=workdirs/ct_toy

CT with the paper's adaptive curriculum (s0 = 2, s1 = 150, μ0 = 0.9) and squared L2, σ_data the
data's per-axis standard deviation (as configs/edm/toy2d.py); one network call to sample, sliced
W2 also at 2 and 4 calls (`--config.sample.num_steps`). The cheapest consistency config: the one
the test suite runs end to end.
"""

from diffjax import config_lib

SIGMA_DATA = 2.31  # the checkerboard's per-axis standard deviation (configs/edm/toy2d.py)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  steps = 20_000
  config = config_lib.base()
  config.data = dict(name="checkerboard", batch_size=512)
  config.update(
      config_lib.consistency("ct", total_steps=steps, sigma_data=SIGMA_DATA, s0=2, s1=150, mu0=0.9)
  )
  config.model = config_lib.mlp(width=256, depth=4)
  config.optim = config_lib.adam(1e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(steps, log_every_steps=500, ckpt_every_steps=1000)
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
  return config
