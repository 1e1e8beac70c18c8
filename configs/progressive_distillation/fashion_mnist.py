r"""Progressive distillation (Salimans & Ho 2022, arXiv:2202.00512) on Fashion-MNIST.

  # The teacher: v-prediction on the cosine schedule (configs/v_prediction/fashion_mnist.py).
  python -m diffjax.main --config=configs/v_prediction/fashion_mnist.py --workdir=workdirs/v_fmnist
  # Round 1 (64 student steps from the teacher), then halve N from the previous round:
  python -m diffjax.main --config=configs/progressive_distillation/fashion_mnist.py:steps=64 \
      --config.init_from=workdirs/v_fmnist --workdir=workdirs/pd64_fmnist
  python -m diffjax.main --config=configs/progressive_distillation/fashion_mnist.py:steps=32 \
      --config.init_from=workdirs/pd64_fmnist --workdir=workdirs/pd32_fmnist   # ... down to 1

`steps` = N, the student's DDIM steps (its teacher takes 2N). Each round trains from the previous
round's EMA (the student starts as its teacher), with the paper's "SNR + 1" weighting and t = i/N.
`teacher=edm` distils an EDM run (configs/edm/fashion_mnist.py) instead, on EDM's schedule (t
uniform = the ρ = 7 grid) and preconditioning: what experiments/fewstep_gpu.sh runs, from the
same teacher as CD and ECT. Sampling: DDIM (`euler`) on the N uniform-t steps; FD also at 1, 2
and 4 steps of the same sampler. The twin protocol otherwise (paper CIFAR-10: 50k updates per
round; here `size` sets the twin's length).

Guided distillation (Meng et al. 2023; methods/progressive.py), class-conditional:
  # The teacher: a class-conditional EDM run with 10 % label dropout (classifier-free guidance).
  python -m diffjax.main --config=configs/edm/fashion_mnist.py --config.method.conditional=True \
      --config.model.label_dropout=0.1 --workdir=workdirs/edm_cond_fmnist
  # Stage one: the guided teacher into a w-conditioned student (sampled with 64 DDIM steps):
  python -m diffjax.main --config=configs/progressive_distillation/fashion_mnist.py:teacher=edm,\
guided=guide --config.init_from=workdirs/edm_cond_fmnist --workdir=workdirs/gpd_fmnist
  # Stage two: halving rounds as above, w kept as input (steps=32 from stage one, then 16, ...):
  python -m diffjax.main --config=configs/progressive_distillation/fashion_mnist.py:teacher=edm,\
guided=halve,steps=32 --config.init_from=workdirs/gpd_fmnist --workdir=workdirs/gpd32_fmnist
w ~ U[0, 4] in training (Meng et al.'s range as we recall it, not verified: no official code);
samples and FDs at the fixed `w` (arg, default 1: ε̃ = 2ε_c − ε_∅).
"""

from diffjax import config_lib

SMOKE_ARGS = ("steps=2,smoke", "steps=2,guided=guide,smoke")


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg, size="default", steps=64, teacher="v", guided="", w=1.0, smoke=False
  )
  if arg.teacher == "v":
    sections = dict(
        schedule=dict(kind="cosine"), method=config_lib.gaussian("v", "v_mse", "uniform")
    )
  else:
    config_lib.pick(arg.teacher, {"v": 0, "edm": 0}, key="teacher")
    sections = {k: v for k, v in config_lib.edm().items() if k != "sample"}
  n = int(arg.steps)
  sample = config_lib.sampler("euler", n, "uniform_t", grid_kwargs=config_lib.student_grid(n))
  config = config_lib.fashion_mnist_twin(arg.size, sample=sample, **sections)
  config.method.update(kind="progressive_distillation", num_student_steps=n, teacher="checkpoint")
  if arg.guided:
    config_lib.pick(arg.guided, {"guide": 0, "halve": 0}, key="guided")
    config.method.update(
        conditional=True,
        guided=dict(stage=arg.guided, w_min=0.0, w_max=4.0, w=float(arg.w)),
    )
    config.model.label_dropout = 0.0  # the student learns the guided model: no null labels
  config.eval.fd_samplers = {
      f"step{k}": dict(num_steps=k, grid_kwargs=config_lib.student_grid(k)) for k in (1, 2, 4)
  }
  if arg.smoke:
    config_lib.shrink(config)
    config.method.teacher = "random"  # tests: an untrained teacher (no checkpoint to distil)
    config.sample.grid_kwargs.t_min = 0.5
  return config
