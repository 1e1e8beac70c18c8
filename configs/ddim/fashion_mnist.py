r"""DDIM (Song et al. 2021, arXiv:2010.02502) on Fashion-MNIST: the DDPM twin, sampled in S steps.

  python -m diffjax.main --config=configs/ddpm/fashion_mnist.py --workdir=workdirs/ddpm_fmnist
  python -m diffjax.main --config=configs/ddim/fashion_mnist.py:steps=50 \
      --workdir=workdirs/ddpm_fmnist --mode=sample

Training is configs/ddpm/fashion_mnist.py unchanged (loaded here, same `size`), so a DDPM workdir
can be sampled with DDIM directly. Sampling: η = 0 on the paper's "uniform" or "quadratic"
sub-sequence (`skip`) of the T = 1000 linear-β chain, S = `steps`, at the chain's exact noise levels
σ̃_τ (grid `ddim`, see configs/ddim/cifar10.py). The DDPM twin trains on that chain (`ddpm`
schedule), so every σ̃_τ is one of its trained nodes. As the official DDIM code, no x̂₀ clipping.

Evaluation (the same checkpoint as the DDPM row, so no bits/dim here): FD-FMNIST of four
deterministic samplers, to separate the solver from x̂₀ clipping: DDIM (default) and Heun-35
(`config_lib.HEUN35`), each without and with x̂₀ clipped to [-1, 1] before every update
(`clip_denoised`, what DDPM's ancestral sampler does).
"""

import os

from diffjax import config_lib

DDPM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "ddpm", "fashion_mnist.py")


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", steps=100, skip="quadratic", smoke=False)
  # The DDPM twin's smoke variant also shrinks its own evaluation (bits/dim on 8 images).
  config = config_lib.load(DDPM, arg.size + (",smoke" if arg.smoke else ""))
  config.sample = config_lib.ddim_sampler(arg.steps, arg.skip, batch_size=500, num_samples=10_000)
  if arg.smoke:
    config_lib.shrink(config)
  config.eval.bpd_num_examples = 0  # bits/dim: the DDPM row measures this same model
  clip = dict(clip_denoised=True)
  config.eval.fd_samplers = dict(
      default={},
      default_clip=dict(solver_kwargs=dict(config.sample.solver_kwargs, **clip)),
      heun35=config_lib.HEUN35,
      heun35_clip=dict(config_lib.HEUN35, solver_kwargs=clip),
  )
  return config
