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
"""

from diffjax import config_lib

SMOKE_ARGS = ("steps=2,smoke",)


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, size="default", steps=64, teacher="v", smoke=False)
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
  config.eval.fd_samplers = {
      f"step{k}": dict(num_steps=k, grid_kwargs=config_lib.student_grid(k)) for k in (1, 2, 4)
  }
  if arg.smoke:
    config_lib.shrink(config)
    config.method.teacher = "random"  # tests: an untrained teacher (no checkpoint to distil)
    config.sample.grid_kwargs.t_min = 0.5
  return config
