"""How a sample call is conditioned, between the Method's σ-frame denoiser and the solver.

`conditioned_denoiser` wraps `method.denoiser` in this order: classifier-free guidance or
autoguidance (`guided_denoiser`), x̂₀ clipping, classifier guidance (ADM's condition_score as a
denoiser wrapper, or condition_mean as the `ddpm` solver's `mean_guidance`), then measurement
conditioning for inverse problems (replacement / DDNM or DPS, `solvers.inverse`). SDEdit's start
(`start_sigma`, `truncated`) and the checks of these `sample` settings (`check_settings`) live here
too; `methods/sampling.py` reads the config and runs the solver.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax import solvers

INVERSE_KINDS = ("replace", "dps")
INVERSE_DEFAULTS = dict(
    kind="replace", scale=1.0, likelihood="gaussian", noise_std=1.0, step="score"
)


def check_settings(out: dict) -> None:
  """Normalises and checks the conditioning keys of a `sampling.settings` dict in place."""
  if out["guidance_interval"] is not None:
    out["guidance_interval"] = tuple(float(v) for v in out["guidance_interval"])
    if len(out["guidance_interval"]) != 2:
      raise ValueError(f"sample.guidance_interval={out['guidance_interval']}: expected (lo, hi)")
  if out["classifier_mode"] not in ("score", "mean"):
    raise ValueError(
        f"sample.classifier_mode={out['classifier_mode']!r}: expected 'score' or 'mean'"
    )
  inverse_cfg = dict(out["inverse"])
  unknown = set(inverse_cfg) - set(INVERSE_DEFAULTS)
  if unknown:
    raise ValueError(f"sample.inverse keys {sorted(unknown)}: expected {sorted(INVERSE_DEFAULTS)}")
  out["inverse"] = {**INVERSE_DEFAULTS, **inverse_cfg}
  if out["inverse"]["kind"] not in INVERSE_KINDS:
    raise ValueError(f"sample.inverse.kind={out['inverse']['kind']!r}: expected {INVERSE_KINDS}")
  if not 0.0 < out["start_t"] <= 1.0:
    raise ValueError(f"sample.start_t={out['start_t']}: expected 0 < start_t <= 1")


def start_sigma(method, params, start_t: float) -> float:
  """σ̃(t0) = exp(-λ(t0)/2) of the Method's schedule: where SDEdit starts."""
  with jax.ensure_compile_time_eval():
    lam = float(method.schedule(params).logsnr(jnp.float32(start_t)))
  return float(np.exp(-0.5 * lam))


def truncated(grid: np.ndarray, sigma_start: float) -> np.ndarray:
  """σ_start followed by the levels of `grid` below it (SDEdit runs only the last part)."""
  grid = np.asarray(grid, np.float64)
  return np.concatenate([[sigma_start], grid[grid < sigma_start]])


def guided_denoiser(
    method,
    params,
    label=None,
    guidance_scale: float = 1.0,
    clip_denoised: bool = False,
    *,
    guidance_interval=None,
    guide=None,
):
  """The Method's σ-frame denoiser, classifier-free guided (Ho & Salimans 2022, eq. 6, with the
  null class `method.null_label`) when `label` is given and the scale ≠ 1, and with x̂₀ clipped
  to [-1, 1] when `clip_denoised`.

  `guide` = (Method, params): autoguidance (Karras et al. 2024): that model, with the same label,
  replaces the null-label model. `guidance_interval` = (σ_lo, σ_hi) limits the guidance to
  σ_lo < σ ≤ σ_hi (`solvers.guidance.cfg`)."""
  den = method.denoiser(params, label)
  # A Python 1.0 is no guidance; a traced scale (one compiled sampler for every scale) guides.
  unguided = isinstance(guidance_scale, (int, float)) and guidance_scale == 1.0
  if not unguided and (label is not None or guide is not None):
    if guide is not None:
      guide_method, guide_params = guide
      weak = guide_method.denoiser(guide_params, label if guide_method.conditional else None)
    else:
      weak = method.denoiser(params, method.null_label(label))
    den = solvers.guidance.cfg(den, weak, guidance_scale, guidance_interval)
  if clip_denoised:
    unclipped = den
    den = lambda x, sigma: jnp.clip(unclipped(x, sigma), -1.0, 1.0)  # pylint: disable=g-long-lambda
  return den


def conditioned_denoiser(
    method, params, label, data, cond, guide_method, classifier_method, clip_denoised
):
  """(denoiser, extra solver kwargs) of one sample call (module docstring), inside `_solve`'s jit.

  `data` holds the traced per-call inputs (guidance_scale, guide_params, classifier_params,
  classifier_scale, measurement, inverse_scale); `cond` the static settings (guided,
  guidance_interval, classifier_mode, inverse)."""
  net_label = label if method.conditional else None
  solver_kwargs = {}
  guide = None if guide_method is None else (guide_method, data["guide_params"])
  den = guided_denoiser(
      method,
      params,
      net_label,
      data["guidance_scale"] if cond["guided"] else 1.0,
      clip_denoised,
      guidance_interval=cond["guidance_interval"],
      guide=guide,
  )
  if classifier_method is not None:
    log_prob = classifier_method.log_prob_fn(data["classifier_params"], label)
    if cond["classifier_mode"] == "score":
      den = solvers.guidance.classifier(den, log_prob, data["classifier_scale"])
    else:
      solver_kwargs["mean_guidance"] = solvers.guidance.classifier_grad(
          log_prob, data["classifier_scale"]
      )
  if "measurement" in data:
    op, y = data["measurement"]
    inv = dict(cond["inverse"])
    if inv["kind"] == "replace":
      den = solvers.inverse.replace(den, op, y)
    else:
      den = solvers.inverse.dps(
          den,
          op,
          y,
          data["inverse_scale"],
          inv["likelihood"],
          float(inv["noise_std"]),
          inv["step"],
      )
  return den, solver_kwargs
