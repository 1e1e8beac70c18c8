r"""Flow matching (Lipman et al. 2022, arXiv:2210.02747) / rectified flow on a 2-D toy, with an MLP.

  python -m diffjax.main --config=configs/flow_matching/toy2d.py --workdir=workdirs/fm_toy

Convention: Lipman puts data at τ = 1 and noise at τ = 0; diffjax puts data at t = 0, so t = 1 − τ
(converted once, here: the `flow` schedule is α = 1 − t, σ = σ_min + (1 − σ_min)·t). The network
predicts the velocity and the loss is the conditional flow-matching MSE ‖v − v̂‖², t ~ U[0, 1].
Sampled with Euler on uniform t (the flow ODE's own Euler steps).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, dataset="checkerboard")
  num_steps = config_lib.pick(arg.size, {"default": 20_000, "demo": 3_000})
  config = config_lib.base()
  config.data = dict(name=arg.dataset, batch_size=512)
  config.schedule = dict(kind="flow", sigma_min=0.0)
  config.method = config_lib.gaussian("flow", "flow", "uniform")
  config.model = config_lib.mlp(width=256, depth=4, embedding="positional")  # 1000·t input
  config.optim = config_lib.adam(2e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(num_steps, log_every_steps=500, ckpt_every_steps=1000)
  # Flow σ̃ = t/(1 − t) is infinite at t = 1: start at t = 0.999 (z ≈ 0.999·ε + 0.001·x).
  config.sample = config_lib.sampler("euler", 100, "uniform_t", grid_kwargs=dict(t_max=0.999))
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
