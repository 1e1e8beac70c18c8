r"""SEDD (Lou et al. 2023, arXiv:2310.16834) on character-level Shakespeare.

  python -m diffjax.main --config=configs/sedd/shakespeare.py:graph=absorbing --workdir=workdirs/sedd_abs
  python -m diffjax.main --config=configs/sedd/shakespeare.py:graph=uniform --workdir=workdirs/sedd_uni

Denoising score entropy on the absorbing or uniform graph, log-linear noise (eps 1e-3),
`scale_by_sigma`, t ~ U[1e-3, 1]; Euler predictor (SEDD's default; `--config.sample.solver=tweedie`
for Tweedie τ-leaping) with 1000 steps and the final denoising step. Evaluation: the NELBO in bits
per character (uniform graph: + the prior KL). `size=paper`: SEDD-small's network and optimiser.
Expected (`default`): experiments/results/discrete_shakespeare.md.
"""

from diffjax import config_lib

SMOKE_ARGS = ("graph=absorbing,smoke", "graph=uniform,smoke")


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, graph="absorbing")
  config = config_lib.discrete_shakespeare(
      arg.size,
      method=config_lib.discrete_method("sedd", arg.graph, t_min=1e-3, scale_by_sigma=True),
      sample=config_lib.sampler("euler", 1000, "uniform", solver_kwargs=dict(t_end=1e-5)),
  )
  if arg.smoke:
    config_lib.shrink_text(config)
  return config
