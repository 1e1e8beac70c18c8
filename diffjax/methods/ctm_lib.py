r"""Pure pieces of consistency trajectory models (CTM; Kim et al. 2023, arXiv:2310.02279; the
Method is methods/ctm.py): the jump parameterisation, the DSM weight, the teacher's Heun steps
along the Karras grid, the soft-consistency estimate and target, and grafting a teacher's
parameters into a network with a second conditioning input (also guided PD's student).
EDM's σ frame (x_σ = x + σ ε); official code sony/ctm `code/cm/karras_diffusion.py`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.methods import consistency_lib as lib

INTERVAL_PREFIX = "interval_"  # the s-embedding layers of models/{unet,song_unet,mlp}.py


def jump(g, x, t, s):
  """G = (s/t) x + (1 − s/t) g (CTM eq. 5); t, s [B]."""
  r = lib.bcast(s / t, x)
  return r * x + (1.0 - r) * g


def dsm_weight(sigma, sigma_data: float):
  """Official "karras_weight" of the DSM term: (σ² + σ_d²)/(σ σ_d)², EDM's λ(σ)."""
  return (jnp.square(sigma) + sigma_data**2) / jnp.square(sigma * sigma_data)


def heun_step_logits(max_n: int, strategy: str) -> np.ndarray:
  """log p(n) of the teacher's step count n = 1 … max_n: ∝ n ("weighted") or uniform."""
  n = np.arange(1, max_n + 1, dtype=np.float64)
  if strategy == "weighted":
    return np.log(n / n.sum()).astype(np.float32)
  if strategy == "uniform":
    return np.full(max_n, -np.log(max_n), np.float32)
  raise ValueError(f"method.heun_step_strategy={strategy!r}: expected 'weighted' or 'uniform'")


def heun_steps(denoiser, x, i, n, level):
  """n teacher Heun steps along the grid, σ_{i+k} → σ_{i+k+1} for k < n; i [B] int, n a scalar
  (may be traced: a while loop), level(index) -> σ."""
  body = lambda k, y: lib.heun_step(denoiser, y, level(i + k), level(i + k + 1))
  return jax.lax.fori_loop(0, n, body, x)


def ctm_estimate(jump_fn, jump_target, x_t, t, s, sigma_min: float):
  """G_{θ⁻}(G_θ(x_t, t, s), s, σ_min) [B, ...]: the student's side of the soft consistency."""
  return jump_target(jump_fn(x_t, t, s), s, jnp.full_like(t, sigma_min))


def ctm_target(jump_sg, jump_target, teacher, x_t, i, n, j, level, sigma_min: float):
  """sg(G_{θ⁻}(G_{sg θ}(x_u, u, s), s, σ_min)) [B, ...], x_u = n teacher Heun steps from
  t = level(i) to u = level(i + n); s = level(j)."""
  u, s = level(i + n), level(j)
  x_u = jax.lax.stop_gradient(heun_steps(teacher, x_t, i, n, level))
  target = jump_target(jump_sg(x_u, u, s), s, jnp.full_like(s, sigma_min))
  return jax.lax.stop_gradient(target)


def ctm_pair(jump_fn, jump_sg, jump_target, teacher, x_t, i, n, j, level, sigma_min: float):
  """(estimate, stop-gradient target) [B, ...] of CTM's soft consistency (module docstring):
  t = level(i), u = level(i + n), s = level(j); the teacher runs n Heun steps t → u."""
  estimate = ctm_estimate(jump_fn, jump_target, x_t, level(i), level(j), sigma_min)
  target = ctm_target(jump_sg, jump_target, teacher, x_t, i, n, j, level, sigma_min)
  return estimate, target


def without_interval(params):
  """The parameters without the s layers: the tree of the EDM teacher."""
  return {k: v for k, v in params.items() if not k.startswith(INTERVAL_PREFIX)}


def graft_interval(teacher, fresh, where: str, what: str):
  """`teacher` plus the second-input layers of `fresh` (a network of the same config with them),
  the last of those zeroed: the result computes exactly the teacher's output. ValueError naming
  `where` when the trees do not match."""
  mine = without_interval(fresh)
  if jax.tree.structure(teacher) != jax.tree.structure(mine) or any(
      a.shape != b.shape for a, b in zip(jax.tree.leaves(teacher), jax.tree.leaves(mine))
  ):
    raise ValueError(
        f"{where}: its network differs from config.model (a {what} is its teacher's network plus "
        "the second-input layers)"
    )
  names = sorted(k for k in fresh if k.startswith(INTERVAL_PREFIX))
  out = dict(jax.tree.map(jnp.copy, teacher))
  for k in names:
    scale = 0.0 if k == names[-1] else 1.0
    out[k] = jax.tree.map(lambda v, a=scale: a * v, fresh[k])
  return out
