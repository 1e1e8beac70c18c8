r"""The autoregressive baseline of the discrete-diffusion configs, on character-level Shakespeare.

  python -m diffjax.main --config=configs/autoregressive/shakespeare.py --workdir=workdirs/ar_shakespeare

The same token Transformer, causal and without time conditioning, the same data, optimiser and
steps as configs/{d3pm,sedd,mdlm,dfm}/shakespeare.py (equal budget). Its test bits per character
are exact (no bound); samples are drawn left to right. Expected (`default`):
experiments/results/discrete_shakespeare.md.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.discrete_shakespeare(
      arg.size,
      method=dict(kind="autoregressive", vocab_size=config_lib.SHAKESPEARE_VOCAB),
      sample=config_lib.sampler("ancestral", 0, "uniform"),
  )
  if arg.smoke:
    config_lib.shrink_text(config)
  return config
