"""Linear multistep PF-ODE solvers on ε̂ = (x - D)/σ = dx/dσ: LMS/DEIS, iPNDM, PLMS, PNDM.

In the σ-frame the exponential integrator of DEIS (Zhang & Chen 2023, Eq. 14) has no linear part
left, so x_{i+1} = x_i + Σ_j C_ij ε̂_{i-j} with C_ij = ∫_{σ_i}^{σ_{i+1}} L_j(τ(σ)) dσ, L_j the
Lagrange basis through the previous points in a time variable τ: τ = σ (= ρ) gives ρAB-DEIS and
k-diffusion's `sample_lms`; τ = t of a diffusion schedule gives tAB-DEIS. In the σ-frame PNDM's
transfer φ (a DDIM step with ε) is x + (σ_next - σ) ε, so PNDM/PLMS (Liu et al. 2022) are
Adams–Bashforth methods on dx/dσ = ε̂. Their fixed equal-step weights (PNDM Eq. 12) are these C_ij
with τ = σ only on a grid uniform in σ; elsewhere (Karras ρ = 7, DDPM's uniform t) they leave a
local error O(h³) at every step, so the methods fall to global order 2. diffjax's `pndm`/`plms`
therefore use the variable-step C_ij with τ = σ by default (`equal_steps=True` gives the paper's
weights). iPNDM (Zhang & Chen 2023, App. B) is defined by the equal-step weights and keeps them.
"""

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.solvers import stepping

_call = stepping.call_denoiser

# Equal-step Adams–Bashforth weights, newest first (PNDM Eq. 12, iPNDM App. B).
_AB = (
    (1.0,),
    (1.5, -0.5),
    (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0),
    (55.0 / 24.0, -59.0 / 24.0, 37.0 / 24.0, -9.0 / 24.0),
)
_GAUSS_NODES = 16


def _lagrange_coeffs(sigma, sigma_next, taus, k, time_fn):
  """C_j = ∫_σ^{σ_next} Π_{m≠j} (τ(s) - τ_m)/(τ_j - τ_m) ds for j < k, by 16-point Gauss–Legendre
  (exact for τ = σ and k ≤ 4, where the integrand is a polynomial of degree ≤ 3).

  Args:
    sigma, sigma_next: scalar step ends.
    taus: [order] time values of the current and previous points, newest first.
    k: static number of points used.
    time_fn: σ -> τ.

  Returns:
    [k] coefficients.
  """
  nodes, weights = np.polynomial.legendre.leggauss(_GAUSS_NODES)
  nodes = jnp.asarray(nodes, sigma.dtype)
  weights = jnp.asarray(weights, sigma.dtype)
  half = 0.5 * (sigma_next - sigma)
  s = sigma + half * (nodes + 1.0)  # [Q]
  tau = time_fn(s)
  coeffs = []
  for j in range(k):
    basis = jnp.ones_like(tau)
    for m in range(k):
      if m != j:
        basis = basis * (tau - taus[m]) / (taus[j] - taus[m])
    coeffs.append(half * jnp.sum(weights * basis))
  return jnp.stack(coeffs)


def _lagrange_weights(time_fn):
  """Variable-step weights: C_j = ∫_σ^{σ_next} L_j(τ(s)) ds with L_j the Lagrange basis in τ."""
  return lambda sigma, sigma_next, sigma_hist, k: _lagrange_coeffs(
      sigma, sigma_next, time_fn(sigma_hist), k, time_fn
  )


def _equal_step_weights(sigma, sigma_next, sigma_hist, k):
  """(σ_next - σ) b_j with the k-th order equal-step Adams–Bashforth weights b_j (`_AB`)."""
  del sigma_hist
  return (sigma_next - sigma) * jnp.asarray(_AB[k - 1], sigma.dtype)


def _multistep(denoiser, x, sigmas, order, weights_fn, start=None, start_steps=0):
  """x_{i+1} = x_i + Σ_{j<k} C_ij ε̂_{i-j} with k = min(order, i + 1) (the lower orders are the
  warm-up), except that the first `start_steps` steps are `start(x, ε̂_i, σ_i, σ_{i+1})`.

  Args:
    denoiser: σ-frame denoiser.
    x: [B, ...] state at sigmas[0].
    sigmas: [N + 1] grid.
    order: static maximal number of history points k.
    weights_fn: `(σ_i, σ_{i+1}, [σ_i, σ_{i-1}, ...], k) -> [k]` coefficients C_ij.
    start: one-step method for the first `start_steps` steps; ε̂_i (its first stage) still enters
      the history, so the multistep formula takes over with a full history.
    start_steps: static number of start steps (0 without `start`).

  Returns:
    (x at sigmas[-1], nan_step).
  """
  num_steps = sigmas.shape[0] - 1
  orders = np.minimum(order, np.arange(num_steps) + 1)
  # Branch index: 0 = start (when given), then one branch per k = 1..order.
  offset = 0 if start is None else 1
  index = np.where(np.arange(num_steps) < start_steps, 0, orders - 1 + offset)
  index = jnp.asarray(index, jnp.int32)
  hist0 = (jnp.zeros((order - 1,) + x.shape, x.dtype), jnp.ones((order - 1,), sigmas.dtype))

  def step(x, carry, i, sigma, sigma_next, key_i):
    d_hist, sigma_hist = carry
    d = stepping.eps_from(x, _call(denoiser, x, sigma), sigma)
    ds = jnp.concatenate([d[None], d_hist])
    sigs = jnp.concatenate([sigma[None], sigma_hist])

    def branch(k):
      def f():
        c = weights_fn(sigma, sigma_next, sigs, k).astype(x.dtype)
        return x + jnp.tensordot(c, ds[:k], axes=1)

      return f

    branches = [] if start is None else [lambda: start(x, d, sigma, sigma_next)]
    branches += [branch(k) for k in range(1, order + 1)]
    x_next = jax.lax.switch(index[i], branches)
    return x_next, (ds[:-1], sigs[:-1])

  x, _, nan_step = stepping.run_steps(step, x, sigmas, hist0)
  return x, nan_step


def lms(denoiser, x, sigmas, key=None, order=4):
  """Linear multistep in σ (k-diffusion `sample_lms`; = ρAB-DEIS), orders 1..4. N evaluations.

  The polynomial step also covers a final step to σ = 0 (ε̂ is only evaluated at σ_i > 0).
  """
  del key
  if order not in (1, 2, 3, 4):
    raise ValueError(f"order must be 1..4, got {order}")
  return _multistep(denoiser, x, sigmas, order, _lagrange_weights(lambda s: s))


def deis(denoiser, x, sigmas, key=None, order=3, schedule=None):
  """DEIS (Zhang & Chen 2023): tAB-DEIS in a schedule's t, or ρAB-DEIS (τ = σ) without one.

  Args:
    order: 1..3 (the paper's tAB orders).
    schedule: a diffjax schedule; the time variable is t(σ) = t_from_logsnr(-2 log σ). None gives
      ρAB-DEIS, polynomial in σ itself.

  Returns:
    (x, nan_step); N evaluations.
  """
  del key
  if order not in (1, 2, 3):
    raise ValueError(f"order must be 1, 2 or 3, got {order}")
  if schedule is None:
    time_fn = lambda s: s
  else:
    # log σ at the σ = 0 end of a grid is never evaluated: Gauss nodes are interior.
    time_fn = lambda s: schedule.t_from_logsnr(-2.0 * jnp.log(s))
  return _multistep(denoiser, x, sigmas, order, _lagrange_weights(time_fn))


def _ab_weights(equal_steps):
  """PNDM/PLMS weights: variable-step in τ = σ (default) or the paper's equal-step ones."""
  return _equal_step_weights if equal_steps else _lagrange_weights(lambda s: s)


def ipndm(denoiser, x, sigmas, key=None, order=4):
  """iPNDM (Zhang & Chen 2023, App. B): Euler, then equal-step AB2, AB3, AB4 on ε̂. N evaluations.

  The fixed weights are iPNDM's definition. On a grid not uniform in σ they cost the formulas their
  order above 2, but the Euler start already limits the asymptotic global order to 2, which iPNDM
  keeps on any grid (tests/solvers/test_solvers_order.py, Karras grid).
  """
  del key
  if order not in (1, 2, 3, 4):
    raise ValueError(f"order must be 1..4, got {order}")
  return _multistep(denoiser, x, sigmas, order, _equal_step_weights)


def plms(denoiser, x, sigmas, key=None, equal_steps=False):
  """PLMS (Liu et al. 2022; diffusers `step_plms`): a pseudo improved-Euler first step
  ε' = (ε̂(x_0) + ε̂(x_0 + Δσ ε̂(x_0)))/2, then AB2, AB3, AB4. N + 1 evaluations (N if N = 1 and
  the grid ends in 0, where the first step is Euler). Global order 3 (the Heun start's).

  Args:
    equal_steps: False (default) integrates the Lagrange interpolant of the ε̂ history over
      [σ_i, σ_{i+1}] (variable-step Adams–Bashforth, the weights of `lms`), which reduce to the
      paper's on a grid uniform in σ and keep order 3 on any grid. True uses the paper's fixed
      equal-step weights (PNDM Eq. 12) on every grid, as the official code does on its time
      grid: exact only for equal σ steps, globally second order otherwise (e.g. Karras ρ = 7).
  """
  del key

  def first(x, d, sigma, sigma_next):
    x_pred = x + (sigma_next - sigma) * d

    def improved():
      d_pred = stepping.eps_from(x_pred, _call(denoiser, x_pred, sigma_next), sigma_next)
      return x + (sigma_next - sigma) * 0.5 * (d + d_pred)

    return stepping.if_final(sigma_next, lambda: x_pred, improved)

  return _multistep(denoiser, x, sigmas, 4, _ab_weights(equal_steps), first, start_steps=1)


def pndm(denoiser, x, sigmas, key=None, equal_steps=False):
  """F-PNDM (Liu et al. 2022, Alg. 2): three pseudo Runge–Kutta steps, then PLMS (AB4).

  In the σ-frame the pseudo-RK step with the σ midpoint is classical RK4 on dx/dσ = ε̂; the ε̂ at
  each grid point enters the multistep history. A pseudo-RK step to σ = 0 falls back to Euler.
  Evaluations: 4 per RK step, 1 per later step. Global order 4.

  Args:
    equal_steps: as for `plms`: False (default) uses variable-step AB4 weights (order 4 on any
      grid); True the paper's equal-step AB4 weights (second order on grids not uniform in σ).
  """
  del key

  def rk4_start(x, d, sigma, sigma_next):
    dsig = sigma_next - sigma

    def rk4():
      mid = sigma + 0.5 * dsig
      x1 = x + 0.5 * dsig * d
      d2 = stepping.eps_from(x1, _call(denoiser, x1, mid), mid)
      x2 = x + 0.5 * dsig * d2
      d3 = stepping.eps_from(x2, _call(denoiser, x2, mid), mid)
      x3 = x + dsig * d3
      d4 = stepping.eps_from(x3, _call(denoiser, x3, sigma_next), sigma_next)
      return x + dsig * (d + 2.0 * d2 + 2.0 * d3 + d4) / 6.0

    return stepping.if_final(sigma_next, lambda: x + dsig * d, rk4)

  return _multistep(denoiser, x, sigmas, 4, _ab_weights(equal_steps), rk4_start, start_steps=3)
