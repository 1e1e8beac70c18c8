r"""Discrete flow matching (Gat et al. 2024, arXiv:2407.15595) on character-level Shakespeare.

  python -m diffjax.main --config=configs/dfm/shakespeare.py:source=mask --workdir=workdirs/dfm_mask
  python -m diffjax.main --config=configs/dfm/shakespeare.py:source=uniform --workdir=workdirs/dfm_uni

Mixture path from a mask (or uniform) source with κ_τ = τ (flow_matching's polynomial scheduler,
n = 1; diffjax's t = 1 − τ), the generalised-KL loss (`MixturePathGeneralizedKL`, an ELBO), the Euler
jump solver with 1000 steps. Evaluation: the NELBO in bits per character. Expected (`default`):
experiments/results/discrete_shakespeare.md.
"""

from diffjax import config_lib

SMOKE_ARGS = ("source=mask,smoke", "source=uniform,smoke")


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, source="mask")
  graph = config_lib.pick(arg.source, {"mask": "absorbing", "uniform": "uniform"}, key="source")
  config = config_lib.discrete_shakespeare(
      arg.size,
      method=config_lib.discrete_method("dfm", graph, t_min=1e-3),
      sample=config_lib.sampler("euler", 1000, "uniform"),
      schedule=dict(kind="polynomial", exponent=1.0),
  )
  if arg.smoke:
    config_lib.shrink_text(config)
  return config
