r"""VDM (Kingma et al. 2021, arXiv:2107.00630) on Fashion-MNIST (padded to 32×32), small U-Net.

  python -m diffjax.main --config=configs/vdm/fashion_mnist.py --workdir=workdirs/vdm_fmnist

The Fashion-MNIST twin at the shared budget (6000 steps, batch 256, `config_lib.small_unet()` with
dropout 0.1, as the DDPM and IDDPM twins). VDM: continuous-time ELBO in bits/dim with antithetic
t, VDM's discrete decoder over the 256 pixel values, learned monotone schedule (`LearnedLogSNR`,
1024 features) initialised at γ_min = -13.3, γ_max = 5 (λ ∈ [-5, 13.3]), its end points trained on
the ELBO and its shape on the variance of the diffusion loss (App. I.2; `:schedule=fixed` trains
VDM's fixed linear γ instead, `:variance_minimization=false` the released code's plain ELBO
gradient). ε-prediction on z_t, conditioned on λ at VDM's embedding scale 1000/18.3 per unit of
γ (see diffjax/methods/vdm.py). VDM's network differs: no down-sampling, Fourier-feature inputs,
the "+ z" base measure; the twin uses the shared small U-Net instead.
Optimiser of the official CIFAR-10 config: AdamW lr 2e-4, b1 0.9, b2 0.99, eps 1e-8, weight
decay 0.01, 100 warm-up steps, no gradient clipping; EMA 0.9995 (as the other twins; VDM: 0.9999
over 10 M steps). Sampling: VDM's ancestral sampler, T = 1000 steps of t = i/T on the learned
schedule (`ddpm` with β̃ on 1001 uniform-t levels down to t = 0, then x̂₀), 1001 NFE.
Evaluation: test-set bits/dim (continuous ELBO, one (t, ε) per image, first 10 000 test images).
Activations in float32, while the other twins run bfloat16: the VDM row of
experiments/results/fashion_mnist.md is measured so (VDM's released code also computes in float32).
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg, size="default", schedule="nnet", variance_minimization=True, smoke=False
  )
  config = config_lib.fashion_mnist_twin(
      arg.size,
      # schedule, method: γ ∈ [-13.3, 5] (VDM's official configs/cifar10.py), continuous time.
      **config_lib.vdm(schedule=arg.schedule, variance_minimization=arg.variance_minimization),
      # float32 activations, unlike the other twins: the measured row ran so (see the docstring).
      model=config_lib.small_unet(dropout=0.1, dtype="float32"),
      optim=config_lib.adam(
          2e-4, b2=0.99, weight_decay=0.01, warmup_steps=100, ema=config_lib.ema_constant(0.9995)
      ),
      sample=config_lib.sampler("ddpm", 1001, "uniform_t", grid_kwargs=dict(t_min=0.0)),
      bpd_num_examples=10_000,
  )
  if arg.smoke:
    config_lib.shrink(config)
    config.method.schedule_kwargs.num_features = 16
    config.eval.bpd_num_examples = 8
    config.eval.bpd_batch_size = 8
  return config
