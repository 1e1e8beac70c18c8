r"""D3PM (Austin et al. 2021, arXiv:2107.03006) on character-level Shakespeare.

  python -m diffjax.main --config=configs/d3pm/shakespeare.py:graph=absorbing --workdir=workdirs/d3pm_abs
  python -m diffjax.main --config=configs/d3pm/shakespeare.py:graph=uniform --workdir=workdirs/d3pm_uni

T = 1000 steps with α_i = 1 − i/T (the absorbing chain is D3PM's β_i = 1/(T − i + 1)); the hybrid
loss L_{i−1} + 0.01·CE (the paper's λ for text); sampling runs the reverse chain over all T steps.
Evaluation: the VLB in bits per character (one uniform step per sequence, unbiased;
`--config.method.bpd_all_steps=True` sums all T terms). Expected (`default`):
experiments/results/discrete_shakespeare.md.
"""

from diffjax import config_lib

SMOKE_ARGS = ("graph=absorbing,smoke", "graph=uniform,smoke")


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False, graph="absorbing")
  config = config_lib.discrete_shakespeare(
      arg.size,
      method=config_lib.discrete_method("d3pm", arg.graph, num_steps=1000, hybrid_lambda=0.01),
      sample=config_lib.sampler("ancestral", 1000, "uniform"),
      schedule=dict(kind="loglinear", eps=0.0),  # the chain ends in the prior
  )
  if arg.smoke:
    config_lib.shrink_text(config)
  return config
