r"""Consistency distillation and training (Song et al. 2023, arXiv:2303.01469) on Fashion-MNIST.

  # CD from an EDM teacher run (configs/edm/fashion_mnist.py, the same small U-Net):
  python -m diffjax.main --config=configs/consistency_models/fashion_mnist.py:variant=cd \
      --config.init_from=workdirs/edm_fmnist --workdir=workdirs/cd_fmnist
  # CT from scratch:
  python -m diffjax.main --config=configs/consistency_models/fashion_mnist.py:variant=ct \
      --workdir=workdirs/ct_fmnist

The paper's CIFAR-10 settings where they carry over (Table 3; official openai/consistency_models):
σ ∈ [0.002, 80], ρ = 7, σ_data = 0.5, uniform loss weight; CD: N = 18 fixed, target EMA μ = 0
(θ⁻ = θ after each step), Heun teacher steps, student initialised from the teacher's EMA; CT:
the adaptive curriculum s0 = 2, s1 = 150, μ0 = 0.9 over the run. LPIPS is unavailable: `metric`
is the paper's squared L2 ("l2", the default) or pseudo-Huber ("pseudo_huber", c = 0.00054·√d).
Sampling: 1 network call (σ = 80); FD-FMNIST also at 2 and 4 calls (CM's multistep sampler on
the ρ-grid, `step<n>`). The shared twin protocol otherwise (batch 256, Adam 2e-4, EMA 0.9995).
Expected: far from the paper's quality at the twin's budget (experiments/results/
fewstep_fashion_mnist.md).
"""

from diffjax import config_lib

SMOKE_ARGS = ("variant=cd,smoke",)
SETTINGS = {
    "cd": dict(s0=18, s1=18, mu0=0.0, adaptive_ema=False, progressive=False, teacher="checkpoint"),
    "ct": dict(s0=2, s1=150, mu0=0.9, adaptive_ema=True, progressive=True),
}


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", variant="cd", metric="l2", smoke=False)
  settings = dict(config_lib.pick(arg.variant, SETTINGS, key="variant"))
  if arg.smoke and arg.variant == "cd":
    settings["teacher"] = "random"  # tests: an untrained teacher (no checkpoint to distil)
  steps = config_lib.TWIN_STEPS[arg.size]
  config = config_lib.fashion_mnist_twin(
      arg.size,
      **config_lib.consistency(arg.variant, total_steps=steps, metric=arg.metric, **settings),
  )
  config.eval.fd_samplers = config_lib.few_step_fd_samplers()
  if arg.smoke:
    config_lib.shrink(config)
    config.method.total_steps = config.train.num_steps
  return config
