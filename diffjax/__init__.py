"""diffjax: diffusion and flow generative models in JAX/Flax, one design space (DESIGN.md)."""

__version__ = "0.1.0"
