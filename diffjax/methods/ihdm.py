r"""IHDM: generative modelling with inverse heat dissipation (Rissanen, Heinonen & Solin 2023,
arXiv:2206.13397; official code AaltoML/generative-inverse-heat-dissipation).

Forward process: u_k = F(τ_k) u_0, the heat operator (`core.heat`, DCT basis, Neumann borders) at
τ_k = σ_B,k²/2 with blur stds σ_B,k log-spaced from blur_sigma_min to blur_sigma_max for
k = 1..K and σ_B,0 = 0 (official configs: MNIST K = 100, σ_B from 0.5 to 20). Training input is
ũ_k = u_k + σ ε (σ = train_noise_std) and the network f predicts the residual to the less-blurred
image (official `get_inverse_heat_loss_fn`):
  L = E_{k, u_0, ε} ‖ũ_k + f(ũ_k, k) − u_{k−1}‖²   (summed over pixels, mean over the batch),
so the optimal ũ_k + f = E[u_{k−1} | ũ_k]. k ~ U{1..K} as in the paper (the official code's
`torch.randint(1, K)` never draws k = K, the level sampling starts from).
Sampler (official `get_sampling_fn_inverse_heat`): from u_K drawn from the prior, for k = K..1
  μ_{k−1} = u_k + f(u_k, k),   u_{k−1} = μ_{k−1} + δ ξ   (δ = sample_noise_std),
returning the last mean μ_0 (no noise on the final step).
Prior p(u_K): the official sampler blurs training images to level K; here (data-free sampling)
u_K = F(τ_K) x̃ + σ ε with x̃ ~ N(prior_mean, (prior_std·√(HW))²) i.i.d. per pixel and channel,
i.e. after the heavy blur an image whose mean is N(prior_mean, prior_std²) per channel (as Cold
Diffusion's prior) and whose surviving low frequencies have the same variance as that mean.
Scale: diffjax images are in [-1, 1], the official code's in [0, 1]; σ = 0.01 and δ = 0.0125
(δ ≈ 1.25σ, the README's CIFAR-10 δ = 0.013) there are σ = 0.02, δ = 0.025 here.
The network sees noise_cond = 1000 k/K (diffjax's U-Nets embed a DDPM-style timestep).

Config: method = dict(kind="ihdm", num_levels=100, blur_sigma_min=0.5, blur_sigma_max=20.0,
train_noise_std=0.02, sample_noise_std=0.025, prior_mean=0.0, prior_std=0.5);
sample = dict(solver="ihdm", ...) (sample.num_steps is unused: the chain has the K levels). Tests: tests/methods/test_ihdm.py (Gaussian data, exact
Bayes predictor).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import heat
from diffjax.methods import base
from diffjax.solvers import stepping


def blur_sigmas(num_levels: int, sigma_min: float, sigma_max: float) -> np.ndarray:
  """[K + 1] blur stds: 0, then K log-spaced values from sigma_min to sigma_max."""
  levels = np.exp(np.linspace(np.log(sigma_min), np.log(sigma_max), num_levels))
  return np.concatenate([[0.0], levels]).astype(np.float32)


def per_example_loss(predict_fn, x, k, eps, taus, train_noise_std):
  """‖ũ_k + f(ũ_k, k) − u_{k−1}‖² per example, [B].

  predict_fn(u [B, H, W, C], k [B] int32) -> residual f; x [B, H, W, C] data; k [B] in 1..K;
  eps [B, H, W, C] standard normal; taus [K + 1] heat times.
  """
  taus = jnp.asarray(taus)
  u_k = heat.heat(x, taus[k]) + train_noise_std * eps
  target = heat.heat(x, taus[k - 1])
  err = u_k + predict_fn(u_k, k) - target
  return jnp.sum(jnp.square(err), axis=tuple(range(1, x.ndim)))


def reverse_step(predict_fn, u, k, xi, sample_noise_std):
  """(u_{k−1} = μ + δ ξ, μ = u + f(u, k)) for u [B, ...], k scalar int32, ξ like u."""
  kb = jnp.full(u.shape[:1], k, jnp.int32)
  mean = u + predict_fn(u, kb).astype(u.dtype)
  return mean + sample_noise_std * xi, mean


def sample_chain(predict_fn, u_init, num_levels: int, sample_noise_std: float, key):
  """Runs k = K..1 from u_init = u_K; returns μ_0, the final step's mean. ξ at step i (k = K − i)
  is normal(fold_in(key, i)), as diffjax's stochastic solvers draw it."""

  def step(u, mean, i, k, k_next, key_i):
    del i, k_next, mean
    xi = jax.random.normal(key_i, u.shape, u.dtype)
    return reverse_step(predict_fn, u, k.astype(jnp.int32), xi, sample_noise_std)

  ks = jnp.arange(num_levels, -1, -1, dtype=jnp.float32)  # K, K−1, ..., 0
  _, mean, _ = stepping.run_steps(step, u_init, ks, carry=u_init, key=key)
  return mean


class IHDM(base.Method):
  """method.kind="ihdm"."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    mcfg = config.method
    base.check_keys(
        "method",
        mcfg,
        (
            "kind",
            "conditional",
            "num_levels",
            "blur_sigma_min",
            "blur_sigma_max",
            "train_noise_std",
            "sample_noise_std",
            "prior_mean",
            "prior_std",
        ),
    )
    if len(self.element_shape) != 3:
      raise ValueError(f"method.kind='ihdm' needs images [H, W, C]; data have {element_shape}")
    self.num_levels = int(mcfg.get("num_levels", 100))
    if self.num_levels < 1:
      raise ValueError(f"method.num_levels={self.num_levels}: expected >= 1")
    lo, hi = float(mcfg.get("blur_sigma_min", 0.5)), float(mcfg.get("blur_sigma_max", 20.0))
    if not 0.0 < lo <= hi:
      raise ValueError(f"method.blur_sigma_min={lo}, blur_sigma_max={hi}: expected 0 < min <= max")
    self.taus = np.asarray(heat.tau_from_blur_std(blur_sigmas(self.num_levels, lo, hi)))
    self.train_noise_std = float(mcfg.get("train_noise_std", 0.02))
    self.sample_noise_std = float(mcfg.get("sample_noise_std", 0.025))
    self.prior_mean = float(mcfg.get("prior_mean", 0.0))
    self.prior_std = float(mcfg.get("prior_std", 0.5))
    self.chain_samplers = {"ihdm": self._sample}
    self._chain_jit = jax.jit(self._chain)  # one compilation per shape, reused across batches

  def init(self, rng, example_batch):
    return self.init_network(rng, example_batch)

  def predict_fn(self, params, label=None, *, train=False, rng=None):
    """f(u [B, H, W, C], k [B] int32) -> the residual u_{k−1} − u_k predicted by the network."""
    net = self.network_fn(params, label, train=train, rng=rng)
    scale = 1000.0 / self.num_levels
    return lambda u, k: net(u, scale * k.astype(jnp.float32)).astype(u.dtype)

  def loss(self, params, batch, rng):
    rng_k, rng_eps, rng_drop = jax.random.split(rng, 3)
    x = batch["x"]
    k = jax.random.randint(rng_k, x.shape[:1], 1, self.num_levels + 1)
    eps = jax.random.normal(rng_eps, x.shape, x.dtype)
    predict = self.predict_fn(params, self.labels(batch), train=True, rng=rng_drop)
    per_example = per_example_loss(predict, x, k, eps, self.taus, self.train_noise_std)
    loss = jnp.mean(per_example)
    return loss, {"sq_err": loss}

  def prior_sample(self, rng, num: int) -> jax.Array:
    """u_K = F(τ_K) x̃ + σ ε, x̃ ~ N(prior_mean, (prior_std √(HW))²) per pixel; [num, H, W, C]."""
    h, w, _ = self.element_shape
    rng_x, rng_eps = jax.random.split(rng)
    shape = (num,) + self.element_shape
    x = self.prior_mean + self.prior_std * np.sqrt(h * w) * jax.random.normal(rng_x, shape)
    return heat.heat(x, self.taus[-1]) + self.train_noise_std * jax.random.normal(rng_eps, shape)

  def _chain(self, params, u_init, key, label):
    predict = self.predict_fn(params, label)
    return sample_chain(predict, u_init, self.num_levels, self.sample_noise_std, key)

  def _sample(self, params, rng, num, settings, *, label=None, noise=None):
    del settings
    rng_prior, rng_chain = jax.random.split(rng)
    if noise is None:
      u_init = self.prior_sample(rng_prior, num)
    else:  # a given standard normal replaces the prior's draw of x̃ (no σ ε added)
      h, w, _ = self.element_shape
      x = self.prior_mean + self.prior_std * np.sqrt(h * w) * noise
      u_init = heat.heat(x, self.taus[-1])
    return self._chain_jit(params, u_init, rng_chain, label)

  def schedule(self, params=None):
    raise ValueError("method.kind='ihdm' has no noise schedule: use sample.solver='ihdm'")

  def denoiser(self, params, label=None):
    raise ValueError("method.kind='ihdm' has no σ-frame denoiser: use sample.solver='ihdm'")
