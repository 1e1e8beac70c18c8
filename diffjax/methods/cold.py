"""ColdDiffusion: deterministic degradations and a learned restoration (Bansal et al. 2023,
"Cold Diffusion", arXiv:2208.09392), blur and masking.

A degradation D(x, t), t ∈ [0, 1], D(x, 0) = x, is undone by a network R(D(x, t), t) ≈ x trained
with the L1 loss ‖R(D(x, t), t) - x‖₁ (paper §3.1) on T levels t = i/T, i ∈ {1..T}. Degradations:
  blur: D(x, t) = F(τ(t)) x, the heat operator (`core.heat`; Gaussian blur of std σ_B = t σ_B,max
        pixels with reflecting borders, τ = σ_B²/2) in place of the paper's iterated Gaussian
        kernels; at t = 1 (σ_B,max = 32 px on 32×32) an image is nearly its mean.
  mask: D(x, t) = x with the first ⌊t·H·W⌋ pixels of a fixed random order (seed 0) set to 0.
Samplers (`sample.solver`), from t = 1 down the T levels, x̂₀ = R(x_t, t):
  cold_naive:    x_s = D(x̂₀, s)                             (paper Alg. 1)
  cold_improved: x_s = x_t - D(x̂₀, t) + D(x̂₀, s)            (paper Alg. 2)
For a linear D and an estimate with a fixed error e, Alg. 1 ends at x₀ + e and Alg. 2 at
x₀ + e - D(e, 1): it removes the error's part that survives full degradation (tests/methods/
test_cold.py). Generation starts from x_1: for blur a constant image whose value is drawn from
N(method.prior_mean, method.prior_std²) per channel (the paper fits a GMM to the channel means;
a Gaussian here) plus a per-pixel perturbation n ~ N(0, prior_pixel_std²), subtracted again from
the result (the official generation code: n of std 0.001-0.004 on [-1, 1] images, to break the
symmetry of a constant start; without it each sample has one degree of freedom per channel and
the deterministic chain reaches few modes: FD-FMNIST ~380 in experiments/results/corruptions/);
for mask all zeros (so masked generation is deterministic, as in the paper).

Config: method = dict(kind="cold", degradation="blur"|"mask", num_levels=50, blur_sigma_max=32.0,
prior_mean=0.0, prior_std=0.5, prior_pixel_std=0.002); sample = dict(solver="cold_improved" |
"cold_naive", ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import heat
from diffjax.methods import base

DEGRADATIONS = ("blur", "mask")


def blur(x, t, sigma_max):
  return heat.heat(x, heat.tau_from_blur_std(t * sigma_max))


def mask(x, t, order):
  """x with pixels whose rank in `order` ([H, W] permutation of 0..HW-1) is < t·HW set to 0."""
  hw = order.size
  keep = order[None, :, :, None] >= jnp.floor(jnp.reshape(t, (-1, 1, 1, 1)) * hw)
  return jnp.where(keep, x, 0.0)


def cold_sample(restore_fn, degrade_fn, x_init, levels, improved: bool):
  """Runs Alg. 1 (naive) or Alg. 2 (improved) from x_init at levels[0] down to levels[-1] = 0.

  restore_fn(x [B, ...], t [B]) -> x̂₀; degrade_fn(x, t [B]) -> D(x, t); levels [N+1] decreasing.
  """
  b = x_init.shape[0]

  def step(x, pair):
    t, s = jnp.full((b,), pair[0]), jnp.full((b,), pair[1])
    x0 = restore_fn(x, t)
    if improved:
      return x - degrade_fn(x0, t) + degrade_fn(x0, s), None
    return degrade_fn(x0, s), None

  return jax.lax.scan(step, x_init, (levels[:-1], levels[1:]))[0]


class ColdDiffusion(base.Method):
  """method.kind="cold"."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    mcfg = config.method
    self.degradation = mcfg.get("degradation", "blur")
    if self.degradation not in DEGRADATIONS:
      raise ValueError(f"method.degradation={self.degradation!r}: expected one of {DEGRADATIONS}")
    if len(self.element_shape) != 3:
      raise ValueError(f"method.kind='cold' needs images [H, W, C]; data have {element_shape}")
    self.num_levels = int(mcfg.get("num_levels", 50))
    self.blur_sigma_max = float(mcfg.get("blur_sigma_max", 32.0))
    self.prior_mean = float(mcfg.get("prior_mean", 0.0))
    self.prior_std = float(mcfg.get("prior_std", 0.5))
    self.prior_pixel_std = float(mcfg.get("prior_pixel_std", 0.002))
    if self.prior_pixel_std < 0:
      raise ValueError(f"method.prior_pixel_std={self.prior_pixel_std}: must be >= 0")
    h, w = self.element_shape[:2]
    self.order = np.random.default_rng(0).permutation(h * w).reshape(h, w)
    self.chain_samplers = {
        "cold_naive": lambda *a, **k: self._sample(*a, improved=False, **k),
        "cold_improved": lambda *a, **k: self._sample(*a, improved=True, **k),
    }

  def degrade(self, x, t):
    """D(x, t) for x [B, H, W, C], t [B]."""
    if self.degradation == "blur":
      return blur(x, t, self.blur_sigma_max)
    return mask(x, t, jnp.asarray(self.order))

  def init(self, rng, example_batch):
    return self.init_network(rng, example_batch)

  def restore_fn(self, params, label=None, *, train=False, rng=None):
    net = self.network_fn(params, label, train=train, rng=rng)
    return lambda x, t: net(x, 1000.0 * t).astype(x.dtype)

  def loss(self, params, batch, rng):
    rng_t, rng_drop = jax.random.split(rng)
    x = batch["x"]
    i = jax.random.randint(rng_t, x.shape[:1], 1, self.num_levels + 1)
    t = i.astype(jnp.float32) / self.num_levels
    x0 = self.restore_fn(params, self.labels(batch), train=True, rng=rng_drop)(
        self.degrade(x, t), t
    )
    l1 = jnp.mean(jnp.abs(x0 - x))
    return l1, {"l1": l1}

  def _sample(self, params, rng, num, settings, *, label=None, noise=None, improved=True):
    """`sample.num_steps` uniform levels from t = 1 to 0 (the training levels when it equals
    `method.num_levels`, as in Bansal et al.; fewer trade quality for speed)."""
    shape = (num,) + self.element_shape
    perturbation = jnp.zeros(shape)
    if self.degradation == "blur":
      c = self.element_shape[-1]
      draw = noise[:, :1, :1, :] if noise is not None else jax.random.normal(rng, (num, 1, 1, c))
      x_init = jnp.broadcast_to(self.prior_mean + self.prior_std * draw, shape)
      if self.prior_pixel_std > 0:  # its own stream: `noise` gives only the channel draw
        perturbation = self.prior_pixel_std * jax.random.normal(jax.random.fold_in(rng, 7), shape)
    else:
      x_init = jnp.zeros(shape)
    num_steps = int(settings["num_steps"])
    if num_steps < 1:
      raise ValueError(f"sample.num_steps={num_steps}: the cold sampler needs at least 1 step")
    levels = jnp.linspace(1.0, 0.0, num_steps + 1)
    chain = lambda p, x: cold_sample(self.restore_fn(p, label), self.degrade, x, levels, improved)
    return jax.jit(lambda p, x, n: chain(p, x + n) - n)(params, x_init, perturbation)

  def schedule(self, params=None):
    raise ValueError("method.kind='cold' has no noise schedule: use sample.solver='cold_improved'")

  def denoiser(self, params, label=None):
    raise ValueError("method.kind='cold' has no σ-frame denoiser: use sample.solver='cold_*'")
