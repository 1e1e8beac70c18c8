r"""Minibatch OT-CFM (Tong et al. 2023, arXiv:2302.00482, Alg. 3): flow matching on coupled pairs.

Flow matching / rectified flow (`GaussianDiffusion` on the `flow` schedule, velocity
parameterisation) with the noise of each training batch re-paired to the data by a minibatch
coupling computed inside the jitted step over the GLOBAL batch (`core.couplings.couple`):
"exact" is OT-CFM (optimal assignment for ‖x − ε‖²), "sinkhorn" draws pairs from an entropic
plan, "independent" is I-CFM (= the plain flow-matching config). Everything else — schedule,
loss, sampling with any σ-frame solver, evaluation — is `GaussianDiffusion`'s: the coupled noise
enters the loss through `batch["eps"]`, exactly as the reflow pairs of rectified flow do.

Time: Tong et al. put noise at t = 0 and data at t = 1; diffjax's flow schedule has data at t = 0
(converted once in the flow configs). The coupling is symmetric in time.

Config section read here (besides GaussianDiffusion's):
  method.coupling: dict(solver="exact" | "sinkhorn" | "independent", epsilon=0.05, num_iters=100,
                        normalize_cost=False, per_class=True)
    per_class (conditional models only): noise slot i carries label[i] and pairs never cross
    classes (Tong et al.'s class-conditional OT-CFM).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.core import couplings
from diffjax.methods import base
from diffjax.methods import gaussian

COUPLING_KEYS = ("solver", "epsilon", "num_iters", "normalize_cost", "assignment", "per_class")


def coupling_options(mcfg) -> dict:
  """`method.coupling` as keyword arguments of `couplings.couple` (and `per_class`), checked."""
  opts = dict(mcfg.get("coupling", {}))
  base.check_keys("method.coupling", opts, COUPLING_KEYS)
  opts.setdefault("solver", "exact")
  if opts["solver"] not in couplings.SOLVERS:
    raise ValueError(
        f"method.coupling.solver={opts['solver']!r}: expected one of {couplings.SOLVERS}"
    )
  if opts.get("assignment", "host") not in couplings.ASSIGNMENTS:
    raise ValueError(
        f"method.coupling.assignment={opts['assignment']!r}: expected one of "
        f"{tuple(couplings.ASSIGNMENTS)}"
    )
  if float(opts.get("epsilon", 0.05)) <= 0.0:
    raise ValueError(f"method.coupling.epsilon={opts['epsilon']} must be > 0")
  return opts


class MinibatchOTFlow(gaussian.GaussianDiffusion):
  """GaussianDiffusion whose training noise is coupled to the data by a minibatch plan."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    super().__init__(config, element_shape=element_shape, num_classes=num_classes)
    opts = coupling_options(config.method)
    self.per_class = bool(opts.pop("per_class", True)) and self.conditional
    self.coupling = opts
    if self.random_flip or self.augment:
      raise ValueError(
          "method.kind='ot_cfm' couples noise to the data as drawn: set method.random_flip=False "
          "and method.augment={} (an augmentation after the coupling would undo it)"
      )
    if self.objective != "weighted":
      raise ValueError("method.kind='ot_cfm' needs method.objective='weighted'")

  def couple(self, batch: dict, rng: jax.Array) -> dict:
    """The batch with fresh noise `eps` paired to its data by the configured coupling (rows of x
    and labels re-indexed too when the plan is sampled)."""
    if "eps" in batch:
      raise ValueError("method.kind='ot_cfm' draws and couples its own noise; the batch has 'eps'")
    x = batch["x"]
    eps = jax.random.normal(jax.random.fold_in(rng, 11), x.shape, jnp.float32)
    label = self.labels(batch) if self.per_class else None
    rows, cols = couplings.couple(
        jax.random.fold_in(rng, 12),
        x,
        eps,
        row_labels=label,
        col_labels=label,  # noise slot j carries label[j]
        **self.coupling,
    )
    out = {k: v[rows] for k, v in batch.items()}
    out["eps"] = eps[cols]
    return out

  def loss(self, params, batch: dict, rng: jax.Array, **kwargs):
    """GaussianDiffusion's loss on the coupled batch (`couple`)."""
    return super().loss(params, self.couple(batch, rng), rng, **kwargs)
