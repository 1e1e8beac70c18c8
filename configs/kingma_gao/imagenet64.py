r"""Kingma & Gao 2023 (arXiv:2303.00848) on class-conditional ImageNet-64: sigmoid weighting.

  python -m diffjax.main --config=configs/kingma_gao/imagenet64.py --workdir=workdirs/kg_in64
  python -m diffjax.main --config=configs/kingma_gao/imagenet64.py:param=v,bias=-2.0 ...

The paper's objective: the weighted ELBO ½·E[w(λ)/p(λ)·‖ε − ε̂‖²] with the sigmoid weighting
w(λ) = sigmoid(b − λ) (monotone, so the loss is an ELBO of Gaussian-augmented data) and the
"adaptive noise schedule" p(λ) (importance sampling ∝ the running per-λ loss,
`weighting.make_t_sampler("adaptive")`), on the cosine schedule (λ in [-15, 15]).
Not verified here (no official code; PAPERS.md): the bias (b = −2 with ε-prediction by default,
`:bias=`, `:param=eps|v`), the network (K&G used their own U-Net; here EDM's 296 M ADM) and the
optimiser (here EDM's ImageNet-64 recipe: batch 4096, Adam lr 1e-4 ramped over 10 M images, EMA
half-life 50 M images, dropout 0.1). Sampling: Heun, 18 steps, EDM's ρ = 7 grid on σ ∈ [0.002, 80].
FID protocol: the paper reports FID on 50 k samples vs ImageNet-64 training statistics; its numbers
are not quoted here (not verified).
The adaptive sampler's state (a per-λ-bin EMA of the loss) is carried between steps as
`TrainState.method_state` and saved with every checkpoint.
"""

from diffjax import config_lib

BATCH = 4096


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, param="eps", bias=-2.0, smoke=False)
  config_lib.pick(arg.param, {"eps": 0, "v": 0}, key="param")
  config = config_lib.base()
  config.data = config_lib.imagenet64(batch_size=BATCH)
  config.schedule = dict(kind="cosine")
  config.method = config_lib.gaussian(
      arg.param, "sigmoid", "adaptive", weighting_kwargs=dict(bias=arg.bias), conditional=True
  )
  config.model = config_lib.adm(dropout=0.1, dtype="bfloat16")
  config.optim = config_lib.adam(
      1e-4,
      warmup_steps=config_lib.steps_for_images(10e6, BATCH),
      nan_to_num=True,
      ema=config_lib.ema_halflife(50_000_000, 0.05),
  )
  config.train = config_lib.train(
      config_lib.steps_for_images(2500e6, BATCH),
      log_every_steps=1000,
      ckpt_every_steps=5_000,
      sample_every_steps=50_000,
  )
  config.sample = config_lib.sampler(**config_lib.HEUN35, batch_size=500, num_samples=50_000)
  config.eval = config_lib.evaluation(num_samples=2000, num_plot=100)
  config.eval.split = (
      "validation"  # imagenet2012's labelled held-out split (its "test" has no labels)
  )
  if arg.smoke:
    config_lib.shrink(config)
  return config
