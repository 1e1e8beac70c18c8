r"""MeanFlow (Geng et al. 2025, arXiv:2505.13447) on a 2-D toy distribution, with an MLP.

  python -m diffjax.main --config=configs/meanflow/toy2d.py --workdir=workdirs/mf_toy

The paper's ImageNet constants (logit-normal −0.4/1.0, r ≠ t for 25 %, p = 1); one network call to
sample (sliced W2 also with `--config.sample.num_steps=2|4`). The cheapest MeanFlow config: the one
the test suite runs end to end.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False)
  config = config_lib.base()
  config.data = dict(name="checkerboard", batch_size=512)
  config.schedule = dict(kind="rectified_flow", sigma_min=0.0)
  config.method = config_lib.meanflow()
  config.model = config_lib.mlp(width=256, depth=4, embedding="positional")  # 1000·t input
  config.optim = config_lib.adam(1e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(20_000, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler("meanflow", 1, "uniform_t")
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
