r"""Minibatch OT-CFM (Tong et al. 2023, arXiv:2302.00482) on a 2-D toy, with an MLP.

  python -m diffjax.main --config=configs/ot_cfm/toy2d.py --workdir=workdirs/otcfm_toy
  python -m diffjax.main --config=configs/ot_cfm/toy2d.py:coupling=independent \
      --workdir=workdirs/icfm_toy   # I-CFM: the same run with the product coupling

Flow matching with σ_min = 0 (configs/flow_matching/toy2d.py: α = 1 − t, σ = t, velocity MSE,
t ~ U[0, 1]; Tong et al.'s time τ = 1 − t) whose noise is re-paired to the data by the optimal
assignment over the global batch of 512 (`coupling=exact`; `sinkhorn` draws pairs from an
entropic plan with ε = 0.05 on the max-normalised cost). torchcfm's 2-D runs: batch 256, MLP
width 64, σ = 0.1 (here σ_min = 0, the OT path of Tong et al.'s image runs). Sampled with
Euler on uniform t, 100 steps.
"""

from diffjax import config_lib

SMOKE_ARGS = ("smoke", "coupling=sinkhorn,smoke")


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg, size="default", smoke=False, dataset="eight_gaussians", coupling="exact"
  )
  num_steps = config_lib.pick(arg.size, {"default": 20_000, "demo": 3_000})
  config = config_lib.base()
  config.data = dict(name=arg.dataset, batch_size=512)
  config.schedule = dict(kind="flow", sigma_min=0.0)
  config.method = config_lib.ot_cfm(arg.coupling, normalize_cost=True)
  config.model = config_lib.mlp(width=256, depth=4, embedding="positional")  # 1000·t input
  config.optim = config_lib.adam(2e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(num_steps, log_every_steps=500, ckpt_every_steps=1000)
  # Flow σ̃ = t/(1 − t) is infinite at t = 1: start at t = 0.999 (z ≈ 0.999·ε + 0.001·x).
  config.sample = config_lib.sampler("euler", 100, "uniform_t", grid_kwargs=dict(t_max=0.999))
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
