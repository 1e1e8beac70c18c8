r"""VDM's learned noise schedule (Kingma et al. 2021, §5 and App. H): a monotone network with
learnable end points, as a Flax module that exposes the schedule protocol when bound.

  λ(t) = λ_max + (λ_min - λ_max) · (g(t) - g(0)) / (g(1) - g(0)),
  g(t) = l1(t) + l3(φ(l2(t)))  with l1, l2, l3 dense layers whose weights are |w| (monotone
  increasing in t), φ = 2(sigmoid(·) - ½), inputs scaled to [-1, 1] (VDM's NoiseSchedule_NNet).

VDM writes γ(t) = -λ(t); its defaults γ_min = -13.3, γ_max = 5 are λ_max = 13.3, λ_min = -5 here.
The normalisation makes λ(0) = λ_max and λ(1) = λ_min exactly, both free parameters.
With `nonlinear=False`, g = l1 and λ is linear in t between the learned end points: VDM's
`learnable_scalar` schedule (γ = b + |w| t), the one its released CIFAR-10 config trains.

How a Method uses it: keep its params in the one parameter tree, e.g.
  sched_params = LearnedLogSNR().init(rng, jnp.zeros((1,)))["params"]
  schedule = LearnedLogSNR().bind({"params": params["schedule"]})
and pass `schedule` to `losses.weighted_loss` / `likelihood.vdm_elbo` inside the loss function, so
gradients reach the schedule. VDM trains the schedule to minimise the variance of the diffusion
loss estimate (eq. 19); that gradient trick belongs to the Method, not here. `logsnr_min` /
`logsnr_max` are jax arrays here (traced under jit), unlike the fixed schedules' floats.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffjax.core import schedules as schedules_lib

Array = jax.Array


class _DenseMonotone(nn.Module):
  """Dense layer with weights |W|: monotone non-decreasing in every input (VDM's DenseMonotone)."""

  features: int
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.normal(1.0)

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    y = x @ jnp.abs(kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class LearnedLogSNR(nn.Module):
  """Learned monotone schedule; `__call__(t)` is λ(t). See module docstring."""

  num_features: int = 1024
  init_logsnr_max: float = 13.3
  init_logsnr_min: float = -5.0
  nonlinear: bool = True
  family = "vp"

  def setup(self):
    self.lam_max = self.param(
        "logsnr_max", lambda _: jnp.asarray(self.init_logsnr_max, jnp.float32)
    )
    self.lam_min = self.param(
        "logsnr_min", lambda _: jnp.asarray(self.init_logsnr_min, jnp.float32)
    )
    self.l1 = _DenseMonotone(1, kernel_init=nn.initializers.ones)
    if self.nonlinear:
      self.l2 = _DenseMonotone(self.num_features)
      self.l3 = _DenseMonotone(1, use_bias=False)

  def _g(self, t):
    h = t[:, None]
    if not self.nonlinear:
      return self.l1(h)[:, 0]
    hidden = 2.0 * (jax.nn.sigmoid(self.l2(2.0 * (h - 0.5))) - 0.5)
    return (self.l1(h) + self.l3(hidden) / self.num_features)[:, 0]

  def __call__(self, t: Array) -> Array:
    return self.logsnr(t)

  def logsnr(self, t: Array) -> Array:
    """λ(t) [B] for t [B]."""
    schedules_lib.check_t(t)
    t = jnp.asarray(t, jnp.float32)
    ends = self._g(jnp.asarray([0.0, 1.0], jnp.float32))
    frac = (self._g(t) - ends[0]) / (ends[1] - ends[0])
    return self.lam_max + (self.lam_min - self.lam_max) * frac

  def t_from_logsnr(self, lam: Array) -> Array:
    """Inverse of `logsnr` by bisection (40 halvings: below float32 resolution of t)."""
    return schedules_lib.bisect_decreasing(self.logsnr, lam, 0.0, 1.0)

  def alpha_sigma(self, t: Array) -> tuple[Array, Array]:
    return schedules_lib.alpha_sigma_from_logsnr(self.logsnr(t), "vp")

  def dlogsnr_dt(self, t: Array) -> Array:
    t = jnp.asarray(t, jnp.float32)
    return jax.jvp(self.logsnr, (t,), (jnp.ones_like(t),))[1]

  @property
  def logsnr_max(self) -> Array:
    return self.lam_max

  @property
  def logsnr_min(self) -> Array:
    return self.lam_min
