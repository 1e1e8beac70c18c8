"""The Gaussian diffusion design space as pure functions (DESIGN.md, "The core").

Modules: `schedules` (t -> λ, α, σ), `parameterization` (raw output <-> x̂₀, ε̂), `weighting`
(w(λ) and p(λ) samplers), `losses` (the unified weighted loss), `likelihood` (VDM ELBO, DDPM
VLB, IDDPM hybrid), `gaussian_reference` (closed forms for Gaussian data), `learned` (VDM's
learned schedule, a Flax module).
"""
