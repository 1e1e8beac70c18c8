r"""DDPM (Ho et al. 2020, arXiv:2006.11239) on a 2-D toy distribution, with an MLP.

  python -m diffjax.main --config=configs/ddpm/toy2d.py --workdir=workdirs/ddpm_toy

ε-prediction with L_simple (unit weight on ‖ε − ε̂‖², t uniform) on the continuous limit of the
linear-β schedule (β from 0.1 to 20, i.e. DDPM's 1e-4…0.02 over T = 1000), sampled ancestrally
(`ddpm`, posterior variance β̃) on 1000 uniform-t steps as in the paper.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, dataset="checkerboard")
  num_steps = config_lib.pick(arg.size, {"default": 20_000, "demo": 3_000})
  config = config_lib.base()
  config.data = dict(name=arg.dataset, batch_size=512)
  config.schedule = dict(kind="linear_beta", beta_min=0.1, beta_max=20.0)
  config.method = config_lib.gaussian("eps", "eps_mse", "uniform")
  config.model = config_lib.mlp(width=256, depth=4, embedding="positional")  # 1000·t input
  config.optim = config_lib.adam(2e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(num_steps, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler("ddpm", 1000, "uniform_t")
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
