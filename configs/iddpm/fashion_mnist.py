r"""IDDPM (Nichol & Dhariwal 2021, arXiv:2102.09672) on Fashion-MNIST (padded to 32×32).

  python -m diffjax.main --config=configs/iddpm/fashion_mnist.py --workdir=workdirs/iddpm_fmnist

The Fashion-MNIST twin: same network (`small_unet`), budget (6000 steps, batch 256) and optimiser
as configs/ddpm/fashion_mnist.py, with what IDDPM changes:
- the cosine schedule as IDDPM's own discrete chain (`iddpm_cosine`, s = 0.008, β ≤ 0.999,
  T = 1000 nodes = the paper's x_1..x_T); the hybrid loss, the sampler and bits/dim all use its
  N = T - 1 transitions, so every node they touch is one of the paper's;
- ε-prediction with a learned variance (`learn_sigma`: v ∈ [-1, 1] interpolates log β and log β̃,
  eq. 15) trained by L_hybrid = L_simple + 0.001 L_vlb, the VLB's gradient stopped on the mean
  (eq. 16);
- sampling with 100 evenly strided steps of the 1000 (§4, the fast-sampling claim), x̂₀ clipped
  to [-1, 1] as in guided-diffusion's image sampler;
- test-set bits/dim of the chain's VLB on 10 000 test images (stratified estimate, 34 network
  calls per image; `--config.eval.bpd_kwargs.num_strata=0` sums all 1000 terms).
Adam lr 2e-4 with DDPM's warm-up and clipping rather than the paper's 1e-4, and bfloat16
activations like the other twins: the twins then differ only in IDDPM's changes
(`--config.optim.lr=1e-4` gives the paper's rate). Dropout 0.1 (paper, CIFAR-10: 0.3 over
500 k steps); EMA 0.9995 rather than 0.9999 for the 6000-step budget, as in the DDPM twin.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", smoke=False)
  method = config_lib.gaussian("eps", "eps_mse", "uniform")
  method.update(objective="iddpm_hybrid", objective_kwargs=dict(lambda_vlb=0.001))
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="iddpm_cosine", num_timesteps=1000),
      method=method,
      model=config_lib.small_unet(dropout=0.1, learn_sigma=True, dtype="bfloat16"),
      # `grid` is unused by iddpm_ancestral (the K steps are nodes of the chain); kept for overrides.
      sample=config_lib.sampler(
          "iddpm_ancestral", 100, "uniform_t", solver_kwargs=dict(clip_x0=True)
      ),
      bpd_num_examples=10_000,
  )
  # var_type named so that `--config.eval.bpd_kwargs.var_type=small|large` can evaluate the same
  # checkpoint with DDPM's fixed variances, isolating what the learned Σ contributes.
  config.eval.bpd_kwargs = dict(var_type="learned_range", num_strata=16)
  if arg.smoke:
    config_lib.shrink(config)
    config.eval.bpd_num_examples = 8
    config.eval.bpd_batch_size = 8
    config.eval.bpd_kwargs = dict(var_type="learned_range", num_strata=2)
  return config
