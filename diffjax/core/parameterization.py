r"""Parameterisations: what the network's raw output means, how its input is scaled, and what
noise level it is conditioned on.

Every parameterisation is affine in the raw output, ε̂ = a·z + b·raw, so that
‖ε - ε̂‖² = b²·‖raw - raw_target‖² exactly (`eps_scale` returns b). Losses use that identity to
regress in the network's own space, which is what each paper writes and is numerically safer
than forming ε̂ where σ → 0.

Data shapes: z, x, eps, raw are [B, ...]; alpha, sigma, t are [B].

Noise conditioning (`noise_cond`, the [B] value passed to the network):
  "t"      noise_cond_scale · t            (DDPM/IDDPM feed the step index, i.e. scale 1000)
  "logsnr" noise_cond_scale · λ
  "edm"    ¼ log σ̃ with σ̃ = σ/α            (Karras et al. 2022, Table 1, c_noise)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array
NOISE_CONDS = ("t", "logsnr", "edm")


def bcast(scalar: Array, like: Array) -> Array:
  """Reshapes a per-example [B] array to broadcast against data [B, ...]."""
  scalar = jnp.asarray(scalar)
  if scalar.ndim != 1 or scalar.shape[0] != like.shape[0]:
    raise ValueError(
        f"per-example scalars must have shape [{like.shape[0]}] to match data of "
        f"shape {like.shape}; got shape {scalar.shape}."
    )
  return scalar.reshape(scalar.shape + (1,) * (like.ndim - 1))


@dataclasses.dataclass(frozen=True)
class Parameterization:
  """Base: subclasses define `x0_eps`, `raw_target` and `eps_scale`."""

  noise_cond: str = "t"
  noise_cond_scale: float = 1000.0
  normalize_input: bool = False

  def __post_init__(self):
    if self.noise_cond not in NOISE_CONDS:
      raise ValueError(f"noise_cond must be one of {NOISE_CONDS}; got {self.noise_cond!r}.")

  # -- network input -------------------------------------------------------------------------------
  def input_scale(self, alpha: Array, sigma: Array) -> Array:
    """c_in [B]: z_in = c_in · z. 1, or 1/sqrt(α² + σ²) with normalize_input (unit variance for
    unit-variance data on any schedule)."""
    if self.normalize_input:
      return jax.lax.rsqrt(jnp.square(alpha) + jnp.square(sigma))
    return jnp.ones_like(alpha)

  def noise_cond_value(self, t: Array, alpha: Array, sigma: Array) -> Array:
    """The [B] noise level the network is conditioned on (see module docstring)."""
    if self.noise_cond == "t":
      return self.noise_cond_scale * jnp.asarray(t, jnp.float32)
    if self.noise_cond == "logsnr":
      return self.noise_cond_scale * (2.0 * jnp.log(alpha) - 2.0 * jnp.log(sigma))
    return 0.25 * (jnp.log(sigma) - jnp.log(alpha))

  def net_inputs(self, z: Array, t: Array, alpha: Array, sigma: Array) -> tuple[Array, Array]:
    """(z_in [B, ...], noise_cond [B]): what the network is called with."""
    return bcast(self.input_scale(alpha, sigma), z) * z, self.noise_cond_value(t, alpha, sigma)

  def t_from_noise_cond(self, noise_cond: Array, schedule: Any) -> Array:
    """Inverse of `noise_cond_value` under `schedule` (for adapters and exact-denoiser tests)."""
    nc = jnp.asarray(noise_cond, jnp.float32)
    if self.noise_cond == "t":
      return nc / self.noise_cond_scale
    if self.noise_cond == "logsnr":
      return schedule.t_from_logsnr(nc / self.noise_cond_scale)
    return schedule.t_from_logsnr(-8.0 * nc)  # λ = -2 log σ̃ = -8 c_noise

  # -- output ------------------------------------------------------------------------------------
  def x0_eps(self, raw: Array, z: Array, alpha: Array, sigma: Array) -> tuple[Array, Array]:
    """Raw network output [B, ...] -> (x̂₀, ε̂), each [B, ...]."""
    raise NotImplementedError

  def raw_target(self, x: Array, eps: Array, alpha: Array, sigma: Array) -> Array:
    """The raw output that reproduces (x, ε) exactly: the regression target [B, ...]."""
    raise NotImplementedError

  def eps_scale(self, alpha: Array, sigma: Array) -> Array:
    """b = ∂ε̂/∂raw [B], so ‖ε - ε̂‖² = b² ‖raw - raw_target‖²."""
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Eps(Parameterization):
  """ε-prediction (Ho et al. 2020, eq. 11): ε̂ = raw, x̂₀ = (z - σ ε̂)/α."""

  def x0_eps(self, raw, z, alpha, sigma):
    return (z - bcast(sigma, z) * raw) / bcast(alpha, z), raw

  def raw_target(self, x, eps, alpha, sigma):
    return eps

  def eps_scale(self, alpha, sigma):
    return jnp.ones_like(alpha)


@dataclasses.dataclass(frozen=True)
class X0(Parameterization):
  """x₀-prediction: x̂₀ = raw, ε̂ = (z - α x̂₀)/σ."""

  def x0_eps(self, raw, z, alpha, sigma):
    return raw, (z - bcast(alpha, z) * raw) / bcast(sigma, z)

  def raw_target(self, x, eps, alpha, sigma):
    return x

  def eps_scale(self, alpha, sigma):
    return -alpha / sigma


@dataclasses.dataclass(frozen=True)
class V(Parameterization):
  r"""v-prediction (Salimans & Ho 2022, §4): v = α̂ ε - σ̂ x with α̂, σ̂ = (α, σ)/sqrt(α² + σ²).

  For variance-preserving schedules α̂ = α. With ẑ = z / sqrt(α² + σ²):
  x̂₀ = α̂ ẑ - σ̂ v̂, ε̂ = σ̂ ẑ + α̂ v̂.
  """

  def _unit(self, alpha, sigma):
    norm = jax.lax.rsqrt(jnp.square(alpha) + jnp.square(sigma))
    return alpha * norm, sigma * norm, norm

  def x0_eps(self, raw, z, alpha, sigma):
    a, s, norm = (bcast(u, z) for u in self._unit(alpha, sigma))
    zn = z * norm
    return a * zn - s * raw, s * zn + a * raw

  def raw_target(self, x, eps, alpha, sigma):
    a, s, _ = (bcast(u, x) for u in self._unit(alpha, sigma))
    return a * eps - s * x

  def eps_scale(self, alpha, sigma):
    return self._unit(alpha, sigma)[0]


@dataclasses.dataclass(frozen=True)
class Flow(Parameterization):
  r"""Velocity u = (1 - σ_min) ε - x: the flow-matching target (rectified flow, Liu et al. 2022, and
  SD3, Esser et al. 2024, eq. 2-3, with σ_min = 0; Lipman et al. 2023's OT path, §4.1, σ_min > 0).

  On the flow schedule with the same σ_min (α = 1 - t, σ = σ_min + (1 - σ_min) t) u = dz/dt =
  α'x + σ'ε. Lipman's conditional OT velocity x_1 - (1 - σ_min) x_0 (their eq. 23; x_1 data, x_0
  noise, time τ = 1 - t) is -u: the same field, read in the opposite time direction. With
  c = 1 - σ_min, z = αx + σε and u give x̂₀ = (c z - σ û)/(c α + σ), ε̂ = (z + α û)/(c α + σ),
  valid on any schedule with c α + σ > 0; u is the path's velocity only when σ_min is the
  schedule's, so set both (`param_kwargs=dict(sigma_min=...)` next to the schedule's).

  Attributes:
    sigma_min: the flow schedule's σ_min, in [0, 1). 0 gives u = ε - x.
  """

  sigma_min: float = 0.0

  def __post_init__(self):
    super().__post_init__()
    if not 0.0 <= self.sigma_min < 1.0:
      raise ValueError(f"sigma_min must lie in [0, 1); got {self.sigma_min}.")

  def x0_eps(self, raw, z, alpha, sigma):
    c = 1.0 - self.sigma_min  # exactly 1.0 for σ_min = 0: the products below are then exact
    a, s = bcast(alpha, z), bcast(sigma, z)
    denom = c * a + s
    return (c * z - s * raw) / denom, (z + a * raw) / denom

  def raw_target(self, x, eps, alpha, sigma):
    return (1.0 - self.sigma_min) * eps - x

  def eps_scale(self, alpha, sigma):
    return alpha / ((1.0 - self.sigma_min) * alpha + sigma)


@dataclasses.dataclass(frozen=True)
class EDM(Parameterization):
  r"""EDM preconditioning (Karras et al. 2022, Table 1, eq. 7) in the σ-frame x̃ = z/α, σ̃ = σ/α.

  D(x̃; σ̃) = c_skip x̃ + c_out F(c_in x̃; c_noise) with c_skip = σ_d²/(σ̃² + σ_d²),
  c_out = σ̃ σ_d / sqrt(σ̃² + σ_d²), c_in = 1/sqrt(σ̃² + σ_d²), c_noise = ¼ ln σ̃. The training
  target of F is (x - c_skip x̃)/c_out (eq. 8). σ_data = 0.5 by default.
  """

  sigma_data: float = 0.5
  noise_cond: str = "edm"

  def coefficients(self, alpha, sigma):
    """(c_skip, c_out, c_in, c_noise), each [B]; c_in acts on x̃ = z/α."""
    st = sigma / alpha
    sd = self.sigma_data
    denom = jnp.square(st) + sd**2
    c_skip = sd**2 / denom
    c_out = st * sd * jax.lax.rsqrt(denom)
    c_in = jax.lax.rsqrt(denom)
    return c_skip, c_out, c_in, 0.25 * jnp.log(st)

  def input_scale(self, alpha, sigma):
    return self.coefficients(alpha, sigma)[2] / alpha  # c_in · x̃ = (c_in/α) · z

  def x0_eps(self, raw, z, alpha, sigma):
    c_skip, c_out, _, _ = self.coefficients(alpha, sigma)
    x_tilde = z / bcast(alpha, z)
    x0 = bcast(c_skip, z) * x_tilde + bcast(c_out, z) * raw
    return x0, (x_tilde - x0) / bcast(sigma / alpha, z)

  def raw_target(self, x, eps, alpha, sigma):
    c_skip, c_out, _, _ = self.coefficients(alpha, sigma)
    x_tilde = x + bcast(sigma / alpha, x) * eps
    return (x - bcast(c_skip, x) * x_tilde) / bcast(c_out, x)

  def eps_scale(self, alpha, sigma):
    c_out = self.coefficients(alpha, sigma)[1]
    return -c_out * alpha / sigma


PARAMETERIZATIONS = {"eps": Eps, "x0": X0, "v": V, "edm": EDM, "flow": Flow}


def make(kind: str, **kwargs) -> Parameterization:
  """Builds a parameterisation by name ("eps", "x0", "v", "edm", "flow").

  Raises:
    ValueError: naming `kind` if unknown, or the bad keyword argument.
  """
  if kind not in PARAMETERIZATIONS:
    raise ValueError(f"Unknown parameterization kind {kind!r}; known: {sorted(PARAMETERIZATIONS)}.")
  try:
    return PARAMETERIZATIONS[kind](**kwargs)
  except TypeError as e:
    raise ValueError(f"Bad keyword argument for parameterization {kind!r}: {e}") from e


def denoise(param: Parameterization, raw_fn, z: Array, t: Array, schedule) -> tuple[Array, Array]:
  """(x̂₀, ε̂) of a model `raw_fn(z_in, noise_cond)` at (z, t) under `schedule`."""
  alpha, sigma = schedule.alpha_sigma(t)
  raw = raw_fn(*param.net_inputs(z, t, alpha, sigma))
  return param.x0_eps(raw, z, alpha, sigma)
