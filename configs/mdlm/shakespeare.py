r"""MDLM (Sahoo et al. 2024, arXiv:2406.07524) on character-level Shakespeare.

  python -m diffjax.main --config=configs/mdlm/shakespeare.py --workdir=workdirs/mdlm_shakespeare
  python -m diffjax.main --config=configs/mdlm/shakespeare.py:size=paper --workdir=...

Absorbing graph, log-linear schedule (eps 1e-3), SUBS parameterisation, Rao-Blackwellised
continuous-time ELBO with antithetic t ∈ [1e-3, 1], no time conditioning (MDLM's defaults), the
cached ancestral sampler (`ddpm_cache`) with 1000 steps. Evaluation: test-set NELBO in bits per
character. Expected (`default`): experiments/results/discrete_shakespeare.md.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  config = config_lib.discrete_shakespeare(
      arg.size,
      method=config_lib.discrete_method(
          "mdlm", t_min=1e-3, antithetic=True, time_conditioning=False
      ),
      sample=config_lib.sampler("ancestral", 1000, "uniform"),
  )
  if arg.smoke:
    config_lib.shrink_text(config)
  return config
