r"""Stochastic interpolants (Albergo, Boffi & Vanden-Eijnden 2023, arXiv:2303.08797) in diffjax time.

  z_t = a(t)·x + b(t)·y + γ(t)·ξ,   ξ ~ N(0, I) independent of (x, y),

with x the data at t = 0 and y the other end at t = 1 (noise, or a second data set); (x, y) may
be coupled (SB-CFM's entropic plan, DSBM's iterates). Albergo et al. put the base at t = 0 and the
data at t = 1: their I(τ) with τ = 1 − t, converted here once, so a(t) is their coefficient of
x₁ at τ = 1 − t.

  linear   a = 1 − t,          b = t            (rectified flow / I-CFM path)
  trig     a = cos(πt/2),      b = sin(πt/2)    (their trigonometric interpolant)
  γ(t) = gamma_scale·sqrt(t(1 − t))  ("bridge"; SB-CFM's Brownian bridge with gamma_scale = σ),
  or γ = 0 ("none": a deterministic interpolant).

Two heads (their §3.2, "antithetic"/"denoiser" form that avoids γ̇'s blow-up at the ends):
  velocity v(t, z) = E[a'·x + b'·y | z_t = z]   and   denoiser η(t, z) = E[ξ | z_t = z],
and the fields of the process follow from them:
  drift  u(t, z) = v + γ'·η = d/dt E[z_t | z]  (the ODE velocity: dz/dt = u, t from 1 to 0),
  score  ∇log ρ_t(z) = −η/γ.
The SDE run from t = 1 to t = 0 with a tunable diffusion ε ≥ 0 (their eq. 2.33, forward in τ):
  z_{t−h} = z_t − h·u + h·ε·score + sqrt(2εh)·ζ,  which keeps the marginals ρ_t for every ε.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
PATHS = ("linear", "trig")
GAMMAS = ("none", "bridge")


def _b(s: Array, like: Array) -> Array:
  return jnp.reshape(s, s.shape + (1,) * (like.ndim - s.ndim))


@dataclasses.dataclass(frozen=True)
class Interpolant:
  """The path z_t = a x + b y + γ ξ (module docstring) and its time derivatives."""

  path: str = "linear"
  gamma: str = "none"
  gamma_scale: float = 1.0

  def __post_init__(self):
    if self.path not in PATHS:
      raise ValueError(f"method.path={self.path!r}: expected one of {PATHS}")
    if self.gamma not in GAMMAS:
      raise ValueError(f"method.gamma={self.gamma!r}: expected one of {GAMMAS}")
    if self.gamma == "bridge" and not self.gamma_scale > 0:
      raise ValueError(f"method.gamma_scale={self.gamma_scale} must be > 0 for gamma='bridge'")

  @property
  def stochastic(self) -> bool:
    return self.gamma != "none"

  def coefficients(self, t: Array) -> tuple[Array, Array, Array]:
    """(a, b, γ) at t [B]."""
    if self.path == "linear":
      a, b = 1.0 - t, t
    else:
      a, b = jnp.cos(0.5 * math.pi * t), jnp.sin(0.5 * math.pi * t)
    return a, b, self.gamma_scale * jnp.sqrt(jnp.maximum(t * (1.0 - t), 0.0)) * self.stochastic

  def derivatives(self, t: Array) -> tuple[Array, Array, Array]:
    """(a', b', γ') at t [B]; γ' = c(1 − 2t)/(2 sqrt(t(1 − t))) is infinite at t ∈ {0, 1}."""
    if self.path == "linear":
      da, db = -jnp.ones_like(t), jnp.ones_like(t)
    else:
      h = 0.5 * math.pi
      da, db = -h * jnp.sin(h * t), h * jnp.cos(h * t)
    dg = self.gamma_scale * (1.0 - 2.0 * t) / (2.0 * jnp.sqrt(t * (1.0 - t)))
    return da, db, dg * self.stochastic

  def sample(self, x: Array, y: Array, xi: Array, t: Array) -> tuple[Array, Array]:
    """(z_t, the velocity head's target a'x + b'y), each like x; t [B]."""
    a, b, g = self.coefficients(t)
    da, db, _ = self.derivatives(t)
    z = _b(a, x) * x + _b(b, x) * y + _b(g, x) * xi
    return z, _b(da, x) * x + _b(db, x) * y

  def drift(self, v: Array, eta: Array | None, t: Array) -> Array:
    """u = v + γ'·η for t in (0, 1). At the ends γ' is infinite and η = 0 while their product
    has a finite, nonzero limit (γγ' → ±c²/2): the samplers evaluate the heads at t clipped to
    [T_EDGE, 1 − T_EDGE] (Albergo et al. integrate on [ε, 1 − ε] likewise)."""
    if eta is None or not self.stochastic:
      return v
    _, _, dg = self.derivatives(t)
    return v + _b(dg, v) * eta


def gaussian_fields(path: Interpolant, mean: Array, cov: Array):
  r"""Exact heads for x ~ N(mean, cov) ([d], [d, d]) and y ~ N(0, I) independent of x.

  z = a x + b y + γ ξ is Gaussian: E z = a·m, Σ_z = a²·C + (b² + γ²)·I, and by Gaussian
  conditioning v(z) = a'·m + (a a'·C + b b'·I) Σ_z⁻¹ (z − a m), η(z) = γ Σ_z⁻¹ (z − a m).

  Returns:
    `fields(z [N, d], t [N]) -> (v, η)`, each [N, d], for rows that share one t (as in the
    samplers; t[0] is used).
  """
  mean = jnp.asarray(mean, jnp.float32)
  cov = jnp.asarray(cov, jnp.float32)
  eye = jnp.eye(mean.shape[0])

  def fields(z, t):
    t0 = t[:1]
    (a,), (b,), (g,) = path.coefficients(t0)
    (da,), (db,), _ = path.derivatives(t0)
    prec = jnp.linalg.inv(a * a * cov + (b * b + g * g) * eye)
    centred = z - a * mean
    cross = a * da * cov + b * db * eye
    v = da * mean + centred @ (cross @ prec).T
    return v, (g * centred @ prec.T if path.stochastic else None)

  return fields


# -- samplers: time from t = 1 (y) to t = 0 (x) on a uniform grid --------------------------------

Fields = Callable[[Array, Array], tuple[Array, Array | None]]  # (z, t [B]) -> (v, η or None)


T_EDGE = 1e-3  # the heads are evaluated at t in [T_EDGE, 1 − T_EDGE] (see `Interpolant.drift`)


def _grid(num_steps: int) -> Array:
  return jnp.linspace(1.0, 0.0, int(num_steps) + 1)


def _eval_time(path: Interpolant, t: Array) -> Array:
  return jnp.clip(t, T_EDGE, 1.0 - T_EDGE) if path.stochastic else t


def ode_solve(path: Interpolant, fields: Fields, y: Array, num_steps: int, method: str = "euler"):
  """dz/dt = u(t, z) from z_1 = y to t = 0: "euler" (num_steps NFE) or "heun" (Heun's 2nd-order
  method with an Euler last step, as EDM: 2·num_steps − 1 NFE); heads evaluated at t clipped to
  [T_EDGE, 1 − T_EDGE] when γ ≠ 0."""
  if method not in ("euler", "heun"):
    raise ValueError(f"interpolant ODE method {method!r}: expected 'euler' or 'heun'")
  ts = _grid(num_steps)
  batch = y.shape[0]

  def u(z, t):
    tb = jnp.full((batch,), _eval_time(path, t))
    v, eta = fields(z, tb)
    return path.drift(v, eta, tb)

  def step(z, pair):
    t, t_next = pair
    k1 = u(z, t)
    z_euler = z + (t_next - t) * k1
    if method == "euler":
      return z_euler, None
    k2 = u(z_euler, t_next)
    z_heun = z + (t_next - t) * 0.5 * (k1 + k2)
    return jnp.where(t_next > 0.0, z_heun, z_euler), None

  return jax.lax.scan(step, y, (ts[:-1], ts[1:]))[0]


def sde_solve(
    path: Interpolant,
    fields: Fields,
    y: Array,
    num_steps: int,
    rng: Array,
    diffusion: float,
):
  """Euler–Maruyama of the SDE with diffusion ε = `diffusion` (module docstring) from z_1 = y to
  t = 0, the heads evaluated at t clipped to [T_EDGE, 1 − T_EDGE]; the last step, into t = 0, is
  an ODE step (no noise). Needs the denoiser head (score = −η/γ)."""
  if not path.stochastic:
    raise ValueError("the interpolant SDE needs gamma='bridge' (a denoiser head for the score)")
  ts = _grid(num_steps)
  batch = y.shape[0]

  def step(z, inputs):
    t, t_next, key = inputs
    tb = jnp.full((batch,), _eval_time(path, t))
    v, eta = fields(z, tb)
    h = t - t_next
    _, _, g = path.coefficients(tb)
    eps = jnp.where(t_next > 0.0, diffusion, 0.0)
    score = -eta / _b(jnp.where(g > 0, g, 1.0), z)
    noise = jax.random.normal(key, z.shape, z.dtype)
    z = z - h * path.drift(v, eta, tb) + h * eps * score + jnp.sqrt(2.0 * eps * h) * noise
    return z, None

  keys = jax.random.split(rng, int(num_steps))
  return jax.lax.scan(step, y, (ts[:-1], ts[1:], keys))[0]
