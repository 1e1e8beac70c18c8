r"""DDIM (Song et al. 2021, arXiv:2010.02502) on CIFAR-10: the DDPM model, sampled in S steps.

  python -m diffjax.main --config=configs/ddpm/cifar10.py --workdir=workdirs/ddpm_c10
  python -m diffjax.main --config=configs/ddim/cifar10.py:steps=100 --workdir=workdirs/ddpm_c10 \
      --mode=sample
  python -m diffjax.main --config=configs/ddim/cifar10.py:steps=10,skip=uniform ...

DDIM trains nothing new: it is the DDPM model (configs/ddpm/cifar10.py, loaded here unchanged)
sampled with the η = 0 update (Eq. 12) on a sub-sequence τ of the 1000 DDPM steps. `skip` picks the
paper's "uniform" (τ_i = (i − 1)·⌊1000/S⌋ + 1) or "quadratic" (τ_i = ⌊800·((i − 1)/(S − 1))²⌋ + 1)
sub-sequence (App. D.2; the paper reports CIFAR-10 with the quadratic one; not re-verified here),
S = `steps` ∈ {10, 20, 50, 100} in its Table 1 (`sample.num_steps`). The σ grid (`ddim`) is
those nodes' exact σ̃ = sqrt((1 − ᾱ_τ)/ᾱ_τ) on the DDPM model's chain plus a final step to 0
(= DDIM's last step to x̂₀); the quadratic sub-sequence repeats small steps for S ≥ 50, kept once
(S = 100: 96 steps).
FID protocol: as DDPM (50 k samples vs the training set, TF Inception); headline η = 0, S = 100:
FID 4.16 (PAPERS.md, third-party listing).
"""

import os

from diffjax import config_lib

DDPM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ddpm", "cifar10.py")


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, steps=100, skip="quadratic", smoke=False)
  config = config_lib.load(DDPM)
  config.sample = config_lib.ddim_sampler(arg.steps, arg.skip, batch_size=1000, num_samples=50_000)
  if arg.smoke:
    config_lib.shrink(config)
  return config
