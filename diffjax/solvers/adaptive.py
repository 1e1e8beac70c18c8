"""Adaptive embedded Runge–Kutta PF-ODE solver (diffrax), also the reference for the benchmarks.

Only sigmas[0] and sigmas[-1] are used. dx/dσ = (x - D)/σ cannot be evaluated at σ = 0, so a grid
ending in 0 is integrated to `sigma_stop` and finished with D(x, sigma_stop): for smooth data the
ODE solution is x(σ) = x(0) + O(σ²) and so is D(x(σ), σ), an error of O(sigma_stop²).
"""

import diffrax
import jax
import jax.numpy as jnp

from diffjax.solvers import stepping

_METHODS = {"dopri5": diffrax.Dopri5, "tsit5": diffrax.Tsit5, "dopri8": diffrax.Dopri8}


def adaptive(
    denoiser,
    x,
    sigmas,
    key=None,
    rtol=1e-5,
    atol=1e-5,
    method="dopri5",
    sigma_stop=1e-5,
    max_steps=100_000,
    return_stats=False,
):
  """Integrates the PF-ODE from sigmas[0] to sigmas[-1] with step-size control.

  Args:
    denoiser: σ-frame denoiser.
    x: [B, ...] state at sigmas[0].
    sigmas: grid; only its ends are used.
    key: unused.
    rtol, atol: tolerances of the PID controller (diffrax.PIDController).
    method: "dopri5" (Dormand–Prince 5(4)), "tsit5" or "dopri8".
    sigma_stop: where a grid ending in 0 stops before the final denoise.
    max_steps: diffrax step limit.
    return_stats: also return diffrax's stats (num_steps, num_accepted_steps, ...).

  Returns:
    (x, nan_step) with nan_step 0 if the result is not finite else -1, plus the stats dict if
    asked. The number of evaluations is data-dependent (about 6 per accepted step for dopri5).
  """
  del key
  if method not in _METHODS:
    raise ValueError(f"method must be one of {sorted(_METHODS)}, got {method!r}")
  sigma_end = sigmas[-1]
  t1 = jnp.where(sigma_end == 0, jnp.asarray(sigma_stop, sigmas.dtype), sigma_end)

  def vector_field(sigma, y, args):
    return stepping.eps_from(y, stepping.call_denoiser(denoiser, y, sigma), sigma)

  sol = diffrax.diffeqsolve(
      diffrax.ODETerm(vector_field),
      _METHODS[method](),
      t0=sigmas[0],
      t1=t1,
      dt0=None,
      y0=x,
      stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
      max_steps=max_steps,
      saveat=diffrax.SaveAt(t1=True),
      throw=False,
  )
  y = sol.ys[-1]
  y = jax.lax.cond(sigma_end == 0, lambda: stepping.call_denoiser(denoiser, y, t1), lambda: y)
  ok = jnp.all(jnp.isfinite(y)) & (sol.result == diffrax.RESULTS.successful)
  nan_step = jnp.where(ok, -1, 0).astype(jnp.int32)
  if return_stats:
    return y, nan_step, sol.stats
  return y, nan_step
