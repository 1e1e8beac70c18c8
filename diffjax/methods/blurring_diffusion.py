r"""Blurring diffusion (Hoogeboom & Salimans 2023, "Blurring diffusion models", arXiv:2209.05557).

The forward process is Gaussian diffusion in the DCT basis with a per-frequency signal scale
(`core.blurring.BlurringProcess`): u_t = α_t d_t u_0 + σ_t ε per frequency, d_t the heat
dissipation factor of blur std σ_B,max sin²(πt/2). It is not isotropic, so diffjax's σ-frame
solvers (scalar σ) do not apply: the Method runs the paper's ancestral sampler itself.
Loss (paper's listing `loss`): t ~ U[0, 1], ε ~ N(0, I) in pixel space, z_t = `diffuse`(x, t, ε),
  L = mean ‖ε − ε̂(z_t, t)‖²   (ε-prediction in pixel space; the network sees 1000 t).
Sampler (paper's listing `sample` / `denoise`): z_1 ~ N(0, I), then for the T steps t → s = t − 1/T
down to s = 0, z_s = the posterior mean of q(z_s | z_t, x̂₀(ε̂)) + Vᵀ(√Var ⊙ V ξ), per frequency
(`BlurringProcess.posterior_eps`), noise on every step; returns z_0. With ξ drawn in pixel space as
normal(fold_in(key, i)) at step i, σ_B,max = 0 gives exactly diffjax's `ddpm` solver (tests).

Config: schedule = the base (α_t, σ_t), paper: dict(kind="cosine", truncate_logsnr_min=-10,
truncate_logsnr_max=10); method = dict(kind="blurring", blur_sigma_max=20.0, d_min=0.001);
sample = dict(solver="blurring_ancestral", num_steps=T, ...) (T: the paper samples with 1000).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.core import blurring
from diffjax.core import heat
from diffjax.core import schedules
from diffjax.methods import base
from diffjax.solvers import stepping


def ancestral_step(eps_fn, process, z, t, s, xi):
  """One step z_t → z_s: posterior mean from ε̂ = eps_fn(z, t [B]) plus Vᵀ(√Var ⊙ V ξ).

  z, xi [B, H, W, C]; t, s scalars; process a `blurring.BlurringProcess`."""
  tb, sb = jnp.full(z.shape[:1], t), jnp.full(z.shape[:1], s)
  mean, var = process.posterior_eps(z, eps_fn(z, tb).astype(z.dtype), tb, sb)
  return mean + heat.idct(jnp.sqrt(var) * heat.dct(xi))


def sample_chain(eps_fn, process, z_init, num_steps: int, key):
  """T = num_steps ancestral steps on the uniform t grid 1, 1 − 1/T, ..., 0 from z_init; ξ at
  step i is normal(fold_in(key, i)) in pixel space."""

  def step(z, carry, i, t, s, key_i):
    del i
    xi = jax.random.normal(key_i, z.shape, z.dtype)
    return ancestral_step(eps_fn, process, z, t, s, xi), carry

  ts = jnp.linspace(1.0, 0.0, num_steps + 1)
  return stepping.run_steps(step, z_init, ts, key=key)[0]


class BlurringDiffusion(base.Method):
  """method.kind="blurring"."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    mcfg = config.method
    base.check_keys("method", mcfg, ("kind", "conditional", "blur_sigma_max", "d_min"))
    if len(self.element_shape) != 3:
      raise ValueError(f"method.kind='blurring' needs images [H, W, C]; data have {element_shape}")
    blur_sigma_max = float(mcfg.get("blur_sigma_max", 20.0))
    d_min = float(mcfg.get("d_min", 0.001))
    if blur_sigma_max < 0.0:
      raise ValueError(f"method.blur_sigma_max={blur_sigma_max}: expected >= 0")
    if not 0.0 < d_min <= 1.0:
      raise ValueError(f"method.d_min={d_min}: expected 0 < d_min <= 1 (α_t d_t must stay > 0)")
    self._schedule = schedules.make(**config.schedule)
    if getattr(self._schedule, "family", None) != "vp":
      raise ValueError(
          f"schedule.kind={config.schedule.kind!r}: blurring diffusion needs a variance-"
          "preserving base schedule (paper: cosine)"
      )
    self.process = blurring.BlurringProcess(self._schedule, blur_sigma_max, d_min)
    self.chain_samplers = {"blurring_ancestral": self._sample}
    self._chain_jit = jax.jit(self._chain, static_argnums=3)

  def init(self, rng, example_batch):
    return self.init_network(rng, example_batch)

  def eps_fn(self, params, label=None, *, train=False, rng=None):
    """ε̂(z [B, H, W, C], t [B]) of the network (noise_cond = 1000 t)."""
    net = self.network_fn(params, label, train=train, rng=rng)
    return lambda z, t: net(z, 1000.0 * t).astype(z.dtype)

  def loss(self, params, batch, rng):
    rng_t, rng_eps, rng_drop = jax.random.split(rng, 3)
    x = batch["x"]
    t = jax.random.uniform(rng_t, x.shape[:1])
    eps = jax.random.normal(rng_eps, x.shape, x.dtype)
    z = self.process.diffuse(x, t, eps)
    eps_hat = self.eps_fn(params, self.labels(batch), train=True, rng=rng_drop)(z, t)
    mse = jnp.mean(jnp.square(eps - eps_hat))
    return mse, {"eps_mse": mse}

  def _chain(self, params, z_init, key, num_steps, label):
    return sample_chain(self.eps_fn(params, label), self.process, z_init, num_steps, key)

  def _sample(self, params, rng, num, settings, *, label=None, noise=None):
    rng_init, rng_chain = jax.random.split(rng)
    shape = (num,) + self.element_shape
    z_init = noise if noise is not None else jax.random.normal(rng_init, shape)
    return self._chain_jit(params, z_init, rng_chain, int(settings["num_steps"]), label)

  def schedule(self, params=None):
    raise ValueError(
        "method.kind='blurring' has no scalar noise schedule for σ-frame solvers: use "
        "sample.solver='blurring_ancestral'"
    )

  def denoiser(self, params, label=None):
    raise ValueError(
        "method.kind='blurring' has no σ-frame denoiser: use sample.solver='blurring_ancestral'"
    )
