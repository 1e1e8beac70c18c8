r"""Minibatch OT-CFM (Tong et al. 2023) from N(0, I) to a shifted, scaled Gaussian in `dim` dims.

  python -m diffjax.main --config=configs/ot_cfm/gaussian.py:dim=20 --workdir=workdirs/otcfm_g20

Data N(1, 0.5²·I): with the optimal coupling the marginal flow is the straight OT map
x = 1 + 0.5·ε (Tong et al. §3.2: OT-CFM approaches dynamic OT as the batch grows), so one Euler
step should already be accurate; `coupling=independent` is I-CFM for comparison.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, smoke=False, dim=20, coupling="exact")
  config = config_lib.base()
  config.data = config_lib.gaussian_data(arg.dim, 256, mean=1.0, std=0.5)
  config.schedule = dict(kind="flow", sigma_min=0.0)
  config.method = config_lib.ot_cfm(arg.coupling)
  config.model = config_lib.mlp(width=256, depth=3, embedding="positional")  # 1000·t input
  config.optim = config_lib.adam(1e-3, warmup_steps=100, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(5000, log_every_steps=500, ckpt_every_steps=1000)
  config.sample = config_lib.sampler("euler", 20, "uniform_t", grid_kwargs=dict(t_max=0.999))
  config.eval = config_lib.evaluation(num_samples=2000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
