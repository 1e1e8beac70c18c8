r"""Post-hoc EMA (Karras et al. 2024, "Analyzing and Improving the Training Dynamics of Diffusion
Models", EDM2, arXiv:2312.02696, §3 and App. C): power-function EMA tracks and their reconstruction.

A power-function EMA with exponent γ averages the parameters θ_τ of every step so far with weight
∝ τ^γ. Updating after optimiser step t (1-based; t·batch images, whose batch size cancels) with

    θ̂ ← β(t) θ̂ + (1 - β(t)) θ_t,   β(t) = (1 - 1/t)^(γ+1)                       (EDM2, eq. 3)

gives exactly the discrete profile w_T(τ) = (τ/T)^(γ+1) - ((τ-1)/T)^(γ+1), τ = 1..T, after T steps
(the product of β telescopes); its continuous limit is p_{T,γ}(τ) = (γ+1) τ^γ / T^(γ+1) on [0, T].
Its width relative to its length is σ_rel = sqrt((γ+1) / ((γ+2)² (γ+3))) (EDM2, eq. 4; γ = 16.97 is
σ_rel = 0.05, γ = 6.94 is σ_rel = 0.10); the inverse is the largest real root of
γ³ + 7γ² + (16 - σ_rel⁻²)γ + (12 - σ_rel⁻²) = 0.

Reconstruction (EDM2, App. C.2): snapshots θ̂_i of tracks with profiles w_i (times T_i, exponents
γ_i) are combined, θ̂ = Σ_i x_i θ̂_i, with x minimising ‖Σ_i x_i w_i - w_target‖², i.e. A x = b with
the Gram matrix A_ij = ⟨w_i, w_j⟩ and b_i = ⟨w_i, w_target⟩. Because an EMA is linear in the
trajectory, Σ x_i θ̂_i = Σ_τ (Σ_i x_i w_i(τ)) θ_τ: the reconstruction is the EMA of the fitted
profile. Inner products: "discrete" sums over the steps τ = 1..max T (exact for the tracks above);
"continuous" is the closed form of ⟨p_a, p_b⟩ over [0, min(T_a, T_b)] (EDM2's).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

GRAMS = ("discrete", "continuous")


def gamma_to_sigma_rel(gamma) -> np.ndarray:
  """σ_rel of the power-function profile with exponent γ (EDM2, eq. 4)."""
  g = np.asarray(gamma, np.float64)
  return np.sqrt((g + 1.0) / ((g + 2.0) ** 2 * (g + 3.0)))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
  """γ with `gamma_to_sigma_rel(γ) = sigma_rel`: the cubic's largest real root. σ_rel in
  (0, sqrt(1/12)) (γ > -1)."""
  s = float(sigma_rel)
  if not 0.0 < s < np.sqrt(1.0 / 12.0):
    raise ValueError(f"sigma_rel must be in (0, {np.sqrt(1 / 12):.4f}); got {sigma_rel}")
  t = s**-2
  roots = np.roots([1.0, 7.0, 16.0 - t, 12.0 - t])
  return float(np.max(roots[np.abs(roots.imag) < 1e-9].real))


# ------------------------------------------------------------------------------------------------
# Tracks in the train state (jittable).


def init_tracks(params, num: int) -> tuple:
  """`num` power-function EMA tracks, each a copy of `params` (overwritten at step 1: β(1) = 0)."""
  return tuple(jax.tree.map(jnp.copy, params) for _ in range(num))


def _log_decay(gamma: float, t: jax.Array) -> jax.Array:
  """log β(t) = (γ+1) log(1 - 1/t), -inf at t = 1; log1p keeps it accurate in float32 at large t
  (1 - 1/t itself rounds to a float32 spacing of 6e-8, a 6 % error in 1 - β at t = 10⁶)."""
  t = jnp.asarray(t, jnp.float32)
  return (gamma + 1.0) * jnp.log1p(-1.0 / t)


def track_decay(gamma: float, t: jax.Array) -> jax.Array:
  """β(t) = (1 - 1/t)^(γ+1) of the update after optimiser step t ≥ 1 (int or float)."""
  return jnp.exp(_log_decay(gamma, t))


def update_tracks(tracks: tuple, params, t: jax.Array, gammas: Sequence[float]) -> tuple:
  """Each track ← β(t) track + (1 - β(t)) params, with t the 1-based step just taken; 1 - β by
  expm1, accurate when β is close to 1."""
  out = []
  for track, gamma in zip(tracks, gammas):
    log_b = _log_decay(gamma, t)
    b, one_minus_b = jnp.exp(log_b), -jnp.expm1(log_b)
    out.append(jax.tree.map(lambda e, p, b=b, c=one_minus_b: b * e + c * p, track, params))
  return tuple(out)


# ------------------------------------------------------------------------------------------------
# Profiles, Gram matrix, coefficients (host, float64).


def discrete_profile(t_end: int, gamma: float, length: int | None = None) -> np.ndarray:
  """w(τ) = (τ/T)^(γ+1) - ((τ-1)/T)^(γ+1) for τ = 1..length (0 beyond T = t_end), [length]."""
  length = int(t_end) if length is None else int(length)
  tau = np.arange(1, length + 1, dtype=np.float64)
  w = (np.minimum(tau, t_end) / t_end) ** (gamma + 1.0) - (
      (np.minimum(tau, t_end) - 1.0) / t_end
  ) ** (gamma + 1.0)
  return np.where(tau <= t_end, w, 0.0)


def _continuous_dot(ta, ga, tb, gb) -> np.ndarray:
  """⟨p_{ta,ga}, p_{tb,gb}⟩ = (ga+1)(gb+1) m^(ga+gb+1) / ((ga+gb+1) ta^(ga+1) tb^(gb+1)), m = min,
  written as ratios ≤ 1 so that large γ does not overflow."""
  ta, ga, tb, gb = (np.asarray(v, np.float64) for v in (ta, ga, tb, gb))
  m = np.minimum(ta, tb)
  return (ga + 1) * (gb + 1) / (ga + gb + 1) * (m / ta) ** (ga + 1) * (m / tb) ** (gb + 1) / m


def gram(ts: Sequence[int], gammas: Sequence[float], kind: str = "discrete", chunk: int = 65536):
  """Gram matrix [K, K] of the profiles (ts[i], gammas[i])."""
  ts, gammas = np.asarray(ts, np.float64), np.asarray(gammas, np.float64)
  if kind == "continuous":
    return _continuous_dot(ts[:, None], gammas[:, None], ts[None], gammas[None])
  if kind != "discrete":
    raise ValueError(f"gram kind must be one of {GRAMS}; got {kind!r}")
  length = int(ts.max())
  out = np.zeros((len(ts), len(ts)))
  for lo in range(0, length, chunk):  # Σ over τ in chunks: [K, chunk] at a time
    tau = np.arange(lo + 1, min(lo + chunk, length) + 1, dtype=np.float64)[None]
    t, g = ts[:, None], gammas[:, None]
    tc = np.minimum(tau, t)
    w = np.where(tau <= t, (tc / t) ** (g + 1) - ((tc - 1) / t) ** (g + 1), 0.0)
    out += w @ w.T
  return out


def coefficients(
    ts: Sequence[int],
    gammas: Sequence[float],
    target_t: int,
    target_gamma: float,
    kind: str = "discrete",
) -> np.ndarray:
  """x [K] minimising ‖Σ_i x_i w_i - w_target‖² (least squares on the Gram matrix)."""
  all_t = np.concatenate([np.asarray(ts, np.float64), [target_t]])
  all_g = np.concatenate([np.asarray(gammas, np.float64), [target_gamma]])
  full = gram(all_t, all_g, kind)
  a, b = full[:-1, :-1], full[:-1, -1]
  # A is nearly singular when snapshots are close; lstsq returns the minimum-norm solution.
  return np.linalg.lstsq(a, b, rcond=1e-12)[0]


def combine(snapshots: Sequence[Any], coeffs: np.ndarray):
  """Σ_i coeffs[i] · snapshots[i] of parameter trees, in float64 on the host, cast back."""
  leaves = [jax.tree.leaves(s) for s in snapshots]
  treedef = jax.tree.structure(snapshots[0])
  out = []
  for parts in zip(*leaves):
    acc = sum(float(c) * np.asarray(p, np.float64) for c, p in zip(coeffs, parts))
    out.append(acc.astype(np.asarray(parts[0]).dtype))
  return jax.tree.unflatten(treedef, out)


def options(optim) -> dict:
  """`optim.posthoc_ema` with its defaults (absent or empty `sigma_rels`: no tracks)."""
  cfg = dict(optim.get("posthoc_ema", None) or {})
  out = dict(
      sigma_rels=(),
      snapshot_every_steps=0,
      reconstruct_sigma_rels=(),
      reconstruct_step=0,
      gram="discrete",
  )
  unknown = sorted(set(cfg) - set(out))
  if unknown:
    raise ValueError(f"optim.posthoc_ema: unknown keys {unknown}; expected some of {sorted(out)}")
  out.update(cfg)
  if out["sigma_rels"] and int(out["snapshot_every_steps"]) <= 0:
    raise ValueError(
        "optim.posthoc_ema.sigma_rels is set but snapshot_every_steps is "
        f"{out['snapshot_every_steps']}: snapshots are what the reconstruction reads; set it > 0"
    )
  if out["gram"] not in GRAMS:
    raise ValueError(f"optim.posthoc_ema.gram must be one of {GRAMS}; got {out['gram']!r}")
  return out


def gammas_of(optim) -> tuple[float, ...]:
  """γ of each `optim.posthoc_ema.sigma_rels` entry (empty: no tracks)."""
  return tuple(sigma_rel_to_gamma(s) for s in options(optim)["sigma_rels"])
