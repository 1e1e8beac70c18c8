"""2-D toy distributions of FFJORD (Grathwohl et al. 2019, arXiv:1810.01367, `lib/toy_data.py`).

Same shapes and scales as the FFJORD toys that torchcfm and most flow/diffusion papers plot (points
mostly within [-4, 4]², standard deviation about 1.5 to 2.3 per axis), drawn per point rather than
in FFJORD's equal-size blocks (FFJORD's `rings` and `pinwheel` split a batch evenly between rings
or arms and space ring angles on a grid; here ring/arm and angle are i.i.d. uniform, the same
distribution in the limit). Each sampler maps (numpy Generator, n) -> float32 [n, 2].
"""

from __future__ import annotations

import math

import numpy as np


def checkerboard(rng: np.random.Generator, n: int) -> np.ndarray:
  """Uniform on the 8 "black" 2x2 squares of a 4x4 checkerboard over [-4, 4)².

  FFJORD: x1 ~ U[-2, 2), x2 = U[0, 1) - 2·Bernoulli(½) + (floor(x1) mod 2), both times 2; so
  floor(x1/2) + floor(x2/2) is even for every point and each marginal is U[-4, 4).
  """
  x1 = rng.uniform(-2.0, 2.0, n)
  x2 = rng.uniform(0.0, 1.0, n) - 2.0 * rng.integers(0, 2, n) + np.mod(np.floor(x1), 2.0)
  return (2.0 * np.stack([x1, x2], axis=1)).astype(np.float32)


EIGHT_GAUSSIANS_RADIUS = 4.0 / 1.414  # FFJORD: centres at radius 4, then all divided by 1.414
EIGHT_GAUSSIANS_STD = 0.5 / 1.414


def eight_gaussians_means() -> np.ndarray:
  """The 8 mode centres, float64 [8, 2], at angles k·π/4 (k = 0..7) and radius 4/1.414."""
  angles = np.arange(8) * (math.pi / 4.0)
  return EIGHT_GAUSSIANS_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def eight_gaussians(rng: np.random.Generator, n: int) -> np.ndarray:
  """Equal mixture of 8 isotropic Gaussians (std 0.5/1.414) on a circle of radius 4/1.414."""
  centres = eight_gaussians_means()[rng.integers(0, 8, n)]
  return (centres + EIGHT_GAUSSIANS_STD * rng.standard_normal((n, 2))).astype(np.float32)


TWO_MOONS_NOISE = 0.1


def two_moons(rng: np.random.Generator, n: int) -> np.ndarray:
  """sklearn `make_moons(noise=0.1)` (angles i.i.d. U[0, π]) times 2, shifted by (-1, -0.2).

  Upper moon (cos θ, sin θ), lower moon (1 - cos θ, ½ - sin θ), each with probability ½.
  """
  theta = rng.uniform(0.0, math.pi, n)
  upper = rng.integers(0, 2, n).astype(bool)
  x = np.where(upper, np.cos(theta), 1.0 - np.cos(theta))
  y = np.where(upper, np.sin(theta), 0.5 - np.sin(theta))
  pts = np.stack([x, y], axis=1) + TWO_MOONS_NOISE * rng.standard_normal((n, 2))
  return (2.0 * pts + np.array([-1.0, -0.2])).astype(np.float32)


SWISS_ROLL_NOISE = 1.0


def swiss_roll(rng: np.random.Generator, n: int) -> np.ndarray:
  """sklearn `make_swiss_roll(noise=1.0)` projected on its (x, z) plane and divided by 5.

  s ~ U[1.5π, 4.5π]; point (s cos s, s sin s) + N(0, I), then / 5.
  """
  s = 1.5 * math.pi * (1.0 + 2.0 * rng.uniform(0.0, 1.0, n))
  pts = np.stack([s * np.cos(s), s * np.sin(s)], axis=1)
  pts = pts + SWISS_ROLL_NOISE * rng.standard_normal((n, 2))
  return (pts / 5.0).astype(np.float32)


RINGS_RADII = (3.0, 2.25, 1.5, 0.75)  # FFJORD: radii 1, 0.75, 0.5, 0.25 times 3
RINGS_NOISE = 0.08


def rings(rng: np.random.Generator, n: int) -> np.ndarray:
  """4 concentric circles (radii 3, 2.25, 1.5, 0.75, each with probability ¼) + N(0, 0.08² I)."""
  radius = np.asarray(RINGS_RADII)[rng.integers(0, 4, n)]
  angle = rng.uniform(0.0, 2.0 * math.pi, n)
  pts = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
  return (pts + RINGS_NOISE * rng.standard_normal((n, 2))).astype(np.float32)


PINWHEEL_ARMS, PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD, PINWHEEL_RATE = 5, 0.3, 0.1, 0.25


def pinwheel(rng: np.random.Generator, n: int) -> np.ndarray:
  """5-armed pinwheel (FFJORD, from Johnson et al. 2016 "Composing graphical models...").

  f = (1 + 0.3·ξ₁, 0.1·ξ₂) is rotated by the angle 2πk/5 + 0.25·exp(f₁) of a uniform arm k
  (row vector times [[cos, -sin], [sin, cos]], as FFJORD does), then scaled by 2; so |x| = 2|f|.
  """
  f = rng.standard_normal((n, 2)) * np.array([PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD])
  f[:, 0] += 1.0
  arm = rng.integers(0, PINWHEEL_ARMS, n)
  angle = 2.0 * math.pi * arm / PINWHEEL_ARMS + PINWHEEL_RATE * np.exp(f[:, 0])
  c, s = np.cos(angle), np.sin(angle)
  pts = np.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], axis=1)
  return (2.0 * pts).astype(np.float32)


SAMPLERS = {
    "checkerboard": checkerboard,
    "eight_gaussians": eight_gaussians,
    "two_moons": two_moons,
    "swiss_roll": swiss_roll,
    "rings": rings,
    "pinwheel": pinwheel,
}
