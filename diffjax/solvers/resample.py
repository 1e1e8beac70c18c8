"""RePaint's resampling (Lugmayr et al. 2022, Alg. 1 with jump length 1) over an ancestral step.

At each step σ → σ' the base step runs `resample` times; between runs the result is noised back
to σ with the forward process, x ← x' + √(σ² - σ'²) z, so the conditioned (e.g. replaced) and
generated parts of the state harmonise before the next step. resample = 1 is the base solver.
Used with `inverse.replace` (replacement inpainting) this is RePaint; the paper's jumps of length
j > 1 (noise back j steps at once) are not implemented.
"""

import jax
import jax.numpy as jnp

from diffjax.solvers import sde
from diffjax.solvers import stepping

BASES = {"ddpm": sde.ddpm, "euler_maruyama": sde.euler_maruyama, "seeds_1": sde.seeds_1}


def repaint(denoiser, x, sigmas, key=None, resample=10, base="ddpm"):
  """`base` ancestral steps with RePaint resampling; resample·N evaluations.

  Args:
    resample: runs of each step (RePaint's U; the paper uses 10).
    base: the one-step ancestral solver (a key of BASES).
  """
  if base not in BASES:
    raise ValueError(f"repaint base={base!r}: expected one of {sorted(BASES)}")
  if key is None:
    raise ValueError("repaint draws noise and needs a key")
  base_fn = BASES[base]

  def step(x, carry, i, sigma, sigma_next, key_i):
    pair = jnp.stack([sigma, sigma_next])

    def one(u, x):
      k = jax.random.fold_in(key_i, u)
      x_next, _ = base_fn(denoiser, x, pair, jax.random.fold_in(k, 0))
      renoise = jnp.sqrt(sigma**2 - sigma_next**2)
      noised = x_next + renoise * jax.random.normal(jax.random.fold_in(k, 1), x.shape, x.dtype)
      return jnp.where(u < resample - 1, noised, x_next)

    return jax.lax.fori_loop(0, resample, one, x), carry

  x, _, nan_step = stepping.run_steps(step, x, sigmas, key=key)
  return x, nan_step
