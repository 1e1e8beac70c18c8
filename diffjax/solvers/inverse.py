"""Linear inverse problems over a σ-frame denoiser: measurement operators, replacement (range-space
projection) and DPS.

A measurement is y = A x₀ (+ noise). Each operator is a pytree (its arrays are traced data, its
sizes static) with `apply(x) -> y` and, where it has a cheap one, the pseudo-inverse
`pinv(y) -> x`:
  Mask(mask)          inpainting: A x = m ⊙ x (y keeps x's shape, zeros where unobserved).
  Downsample(factor)  super-resolution: f×f average pooling; A⁺ = nearest-neighbour upsampling.
  Blur(tau)           deblurring: the heat operator F(τ) (`core.heat`, Gaussian blur of std √(2τ)
                      pixels, reflecting borders); no cheap A⁺ (use DPS).

Two ways to condition a denoiser on y (both wrap D and work with every solver):
  * `replace`: D' = D + A⁺(y - A D), the projection of x̂₀ onto {A x = y} (DDNM, Wang et al. 2023,
    Eq. 13). For a mask it is replacement inpainting (Song et al. 2021b, App. I.2; Lugmayr et al.
    2022): observed pixels are y, the rest the model's. With an ancestral solver the observed part
    of the state then follows the forward process from y. RePaint's resampling is the `repaint`
    solver (`solvers.resample`). Noiseless y only.
  * `dps`: D' = D + s σ² ∇ₓ log p̂(y | x) with DPS's likelihood p̂ built on x̂₀ = D(x)
    (Chung et al. 2023, Eq. 16): "gaussian" log p̂ = -‖y - A D(x)‖²/(2 σ_y²) (s = 1 is the
    Tweedie plug-in approximation itself), "norm" log p̂ = -‖y - A D(x)‖ (the official code's
    unsquared norm, step ζ = s). The gradient is per example (each example's norm), not of the
    whole batch's norm as in the official code, so a sample does not depend on its batch mates.
    The official code takes a step ζ ∇ in x after each ancestral step; here the term enters the
    score, so an ancestral step σ → σ' moves x by (σ² - σ'²) s ∇ (the same direction, a σ-dependent
    step size). For a Gaussian prior p̂ drops the posterior covariance A Cov[x₀|x] Aᵀ from the exact
    p(y | x): tests/solvers/test_inverse.py measures what that costs against the exact posterior.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp

from diffjax.core import heat


def _bcast(v, x):
  return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


@flax.struct.dataclass
class Mask:
  """Inpainting: A x = m ⊙ x, m ∈ {0, 1} of x's shape (or broadcastable), 1 = observed."""

  mask: jax.Array

  def apply(self, x):
    return self.mask * x

  def pinv(self, y):
    return self.mask * y


@flax.struct.dataclass
class Downsample:
  """f×f average pooling of [B, H, W, C] images (H, W divisible by f)."""

  factor: int = flax.struct.field(pytree_node=False, default=2)

  def apply(self, x):
    b, h, w, c = x.shape
    f = self.factor
    if h % f or w % f:
      raise ValueError(f"Downsample(factor={f}) needs H, W divisible by {f}, got {(h, w)}")
    return x.reshape(b, h // f, f, w // f, f, c).mean(axis=(2, 4))

  def pinv(self, y):
    f = self.factor
    return jnp.repeat(jnp.repeat(y, f, axis=1), f, axis=2)


@flax.struct.dataclass
class Blur:
  """Gaussian blur by the heat operator F(τ) (std √(2τ) pixels, reflecting borders)."""

  tau: float = flax.struct.field(pytree_node=False, default=1.0)

  def apply(self, x):
    return heat.heat(x, jnp.float32(self.tau))

  def pinv(self, y):
    raise ValueError("Blur has no cheap pseudo-inverse: use inverse kind 'dps' for deblurring")


OPERATORS = {"mask": Mask, "downsample": Downsample, "blur": Blur}


def replace(denoiser, op, y: jax.Array):
  """D' = D + A⁺(y - A D): x̂₀ projected onto the measurement (noiseless y [B, ...])."""

  def den(x, sigma):
    d = denoiser(x, sigma)
    return d + op.pinv(y - op.apply(d)).astype(d.dtype)

  return den


def log_likelihood(op, y, x0, likelihood: str = "gaussian", noise_std: float = 1.0):
  """Per-example log p̂(y | x̂₀) [B] up to a constant: "gaussian" -‖y - A x̂₀‖²/(2σ_y²), "norm"
  -‖y - A x̂₀‖."""
  r = (y - op.apply(x0)).reshape(x0.shape[0], -1)
  if likelihood == "gaussian":
    return -0.5 * jnp.sum(jnp.square(r), axis=1) / noise_std**2
  if likelihood == "norm":
    return -jnp.sqrt(jnp.sum(jnp.square(r), axis=1))
  raise ValueError(f"sample.inverse.likelihood={likelihood!r}: expected 'gaussian' or 'norm'")


def dps_grad(denoiser, op, y, likelihood: str = "gaussian", noise_std: float = 1.0):
  """(D(x, σ), ∇ₓ log p̂(y | x) with p̂ on x̂₀ = D(x, σ)): one forward and one backward pass."""

  def fn(x, sigma):
    def total(v):
      d = denoiser(v, sigma)
      return jnp.sum(log_likelihood(op, y, d, likelihood, noise_std)), d

    (_, d), g = jax.value_and_grad(total, has_aux=True)(x)
    return d, g

  return fn


def dps(
    denoiser,
    op,
    y,
    scale: float = 1.0,
    likelihood: str = "gaussian",
    noise_std: float = 1.0,
    step: str = "score",
):
  """DPS as a denoiser (Chung et al. 2023; module docstring).

  step="score": D + s σ² ∇ₓ log p̂(y | x), the likelihood term added to the score (Bayes' rule,
  exact when p̂ is). step="x0": D + s ∇ₓ log p̂, a σ-independent move of x̂₀: on an ancestral step
  σ → σ' it moves x by (1 - σ'²/σ²) s ∇, about 2 s Δlog σ, a nearly constant step per level on a
  log-spaced grid like the official code's constant ζ (which runs 1000 steps)."""
  if step not in ("score", "x0"):
    raise ValueError(f"sample.inverse.step={step!r}: expected 'score' or 'x0'")
  fn = dps_grad(denoiser, op, y, likelihood, noise_std)

  def den(x, sigma):
    d, g = fn(x, sigma)
    weight = _bcast(sigma**2, x).astype(d.dtype) if step == "score" else 1.0
    return d + scale * weight * g

  return den
