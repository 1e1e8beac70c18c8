r"""Consistency trajectory models (CTM; Kim et al. 2023, arXiv:2310.02279) on a 2-D toy, with an MLP.

  python -m diffjax.main --config=configs/ctm/toy2d.py \
      --config.init_from=workdirs/edm_toy --workdir=workdirs/ctm_toy   # teacher: configs/edm/toy2d.py

methods/ctm.py with the official CIFAR-10 constants (N = 18, up to 17 Heun steps, θ⁻ EMA 0.999,
adaptive DSM weight at the MLP's last layer), σ_data the checkerboard's per-axis standard
deviation (as configs/edm/toy2d.py, whose MLP the student shares). The cheapest CTM config: the
one the test suite runs end to end (with an untrained teacher and a fixed DSM weight).
"""

from diffjax import config_lib

SMOKE_ARGS = ("smoke", "grid=training,smoke")  # the second: sampling on the training levels
SIGMA_DATA = 2.31  # the checkerboard's per-axis standard deviation (configs/edm/toy2d.py)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, grid="karras", smoke=False)
  steps = 20_000
  config = config_lib.base()
  config.data = dict(name="checkerboard", batch_size=512)
  config.update(
      config_lib.ctm(
          sigma_data=SIGMA_DATA,
          sample_grid=arg.grid,
          teacher="random" if arg.smoke else "checkpoint",
          dsm_layer="out_dense",
      )
  )
  config.model = config_lib.mlp(width=256, depth=4)
  config.optim = config_lib.adam(1e-3, warmup_steps=200, ema=config_lib.ema_constant(0.995))
  config.train = config_lib.train(steps, log_every_steps=500, ckpt_every_steps=1000)
  config.eval = config_lib.evaluation(num_samples=5000)
  if arg.smoke:
    config_lib.shrink(config)
    # Tests: a fixed DSM weight (the adaptive one is tested in tests/methods/test_ctm.py).
    config.method.update(num_scales=4, max_heun_steps=2, dsm_weight=1.0)
  return config
