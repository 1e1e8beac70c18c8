"""Samplers over a σ-frame denoiser D(x, σ) -> x̂₀ (x = x₀ + σ ε), grids, adapters and guidance.

sigmas = solvers.grid("karras", num_steps, schedule=schedule, sigma_min=0.002, sigma_max=80.0)
x0 = solvers.solve("heun", denoiser, x_init, sigmas, key=None, **options)
n = solvers.nfe("heun", num_steps, **options)
denoiser = solvers.adapters.from_raw(raw_fn, schedule, param)
"""

from diffjax.solvers import adapters
from diffjax.solvers import guidance
from diffjax.solvers import inverse
from diffjax.solvers import testing
from diffjax.solvers.api import SOLVERS, nfe, solve
from diffjax.solvers.grids import GRIDS, grid

__all__ = ["adapters", "guidance", "inverse", "testing", "SOLVERS", "GRIDS", "nfe", "solve", "grid"]
