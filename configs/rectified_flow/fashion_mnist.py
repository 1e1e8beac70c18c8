r"""Rectified flow (Liu et al. 2023, arXiv:2209.03003), 1-rectified flow on Fashion-MNIST (32×32).

  python -m diffjax.main --config=configs/rectified_flow/fashion_mnist.py \
      --workdir=workdirs/rf_fmnist
  # Reflow (2-rectified flow): couple noise and 1-RF samples, then retrain on the pairs from 1-RF.
  python -m diffjax.main --config=configs/rectified_flow/fashion_mnist.py \
      --workdir=workdirs/rf_fmnist --mode=pairs --config.sample.num_samples=60000
  python -m diffjax.main \
      --config=configs/rectified_flow/fashion_mnist.py:stage=reflow,init_from=workdirs/rf_fmnist \
      --workdir=workdirs/rf2_fmnist

The straight path z_t = (1 − t)·x + t·ε (σ_min = 0), velocity regression with t ~ U[0, 1]. Liu
et al. put noise at t = 0 and data at t = 1 (π₀ = noise); diffjax puts noise at t = 1 everywhere,
so their v(z, t) is −v(z, 1 − t) here: converted once, by the `flow` schedule/parameterisation.
Sampled as the paper reports its 1-RF FID: an adaptive RK45-type solver (our `adaptive`, diffrax
Dopri5) with rtol = atol = 1e-5, from t = 0.999 (σ = 999 in the σ-frame) to 0. The same network,
optimiser and budget as the other Fashion-MNIST twins; `configs/flow_matching/fashion_mnist.py` is
the same training sampled with Euler steps.

`stage=reflow` (Liu et al. §2.3, "2-rectified flow"): the same loss on fixed couples (ε, x) where x
is 1-RF's ODE solution from ε (`--mode=pairs`; Liu et al. use ≥ 1M pairs on CIFAR-10, 60k here),
initialised from the 1-RF run (`init_from=DIR`, required), another 6000 steps. `pairs` defaults to
the file `--mode=pairs` writes in that run, `DIR/reflow/pairs_<its last step>.npz`. The
straightened flow is meant for few steps: its default sampler is one Euler step (one network
call), FD also at 4 Euler steps and Heun-35. Held-out data for evaluation stay the real test
images (`pairs` source, `reference`).

`sampler=heun35` replaces the adaptive solver by EDM's Heun, 18 steps (35 NFE) on the ρ = 7 grid,
e.g. to write the reflow couples (`--mode=pairs`) at 1/10 of the adaptive solver's cost: on 1-RF it
gives the better FD-FMNIST of the two (experiments/results/fashion_mnist.md), so it solves this ODE
at least as well as the sample quality can tell.
"""

from diffjax import config_lib


def get_config(arg=None):
  arg = config_lib.parse_arg(
      arg, size="default", stage="1rf", smoke=False, sampler="adaptive", pairs="", init_from=""
  )
  config_lib.pick(arg.stage, {"1rf": 0, "reflow": 0}, key="stage")
  if config_lib.pick(arg.sampler, {"adaptive": False, "heun35": True}, key="sampler"):
    sample = config_lib.sampler(**config_lib.HEUN35)
  else:
    sample = config_lib.sampler(
        "adaptive",
        1,
        "uniform_t",
        grid_kwargs=dict(t_max=0.999),
        solver_kwargs=dict(rtol=1e-5, atol=1e-5),
    )
  config = config_lib.fashion_mnist_twin(
      arg.size,
      schedule=dict(kind="rectified_flow"),
      method=config_lib.gaussian("flow", "flow", "uniform"),
      sample=sample,
  )
  # Few-step Euler FDs too: the baseline that reflow's straightening is measured against.
  config.eval.fd_samplers.update(euler1=config_lib.euler_steps(1), euler4=config_lib.euler_steps(4))
  if arg.smoke:
    config_lib.shrink(config)
    # An adaptive solver on an untrained network takes thousands of steps: smoke uses Euler.
    config.sample.solver, config.sample.solver_kwargs = "euler", {}
  if arg.stage == "reflow":
    if not arg.init_from:
      raise ValueError("config arg stage=reflow needs init_from=<the 1-RF run's workdir>")
    # The couples `--mode=pairs` writes from that run's last checkpoint (same size, same budget).
    pairs = arg.pairs or f"{arg.init_from}/reflow/pairs_{config_lib.TWIN_STEPS[arg.size]:08d}.npz"
    config.data = dict(
        name="pairs", path=pairs, batch_size=config.data.batch_size, reference=dict(config.data)
    )
    config.init_from = arg.init_from
    config.sample = config_lib.sampler(
        **config_lib.euler_steps(1),
        batch_size=config.sample.batch_size,
        num_samples=config.sample.num_samples,
    )
    del config.eval.fd_samplers["euler1"]  # = default
  return config
