"""Schedule wrappers: input scaling / log-SNR shift (Chen 2023; simple diffusion; SD3) and
zero-terminal-SNR rescaling (Lin et al. 2023). Each wraps another schedule."""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp

from diffjax.core import schedule_base

Schedule = schedule_base.Schedule
alpha_sigma_from_logsnr = schedule_base.alpha_sigma_from_logsnr


@dataclasses.dataclass(frozen=True)
class InputScaled(Schedule):
  r"""Input scaling by b (Chen 2023, "On the importance of noise scheduling", eq. 4-5).

  z = α(b x) + σ ε has SNR b² α²/σ², i.e. λ' = λ + 2 log b (the abstract's "shift by log b" is in
  log-SNR of standard deviations). With `normalize=True` (Chen's variance normalisation) α', σ'
  follow the wrapped schedule's family at λ', so a VP schedule stays VP; with False,
  α' = b α, σ' = σ, and the network sees b x. Simple diffusion's resolution shift
  (λ + 2 log(base/res)) and SD3's shift t' = s t / (1 + (s - 1) t) of a flow (= λ - 2 log s) are
  both this wrapper with b = base/res resp. b = 1/s.
  """

  base: Schedule
  scale: float = 1.0
  normalize: bool = True

  def __post_init__(self):
    if not self.scale > 0:
      raise ValueError(f"scale must be > 0; got {self.scale}.")

  @property
  def family(self):
    return self.base.family

  @property
  def _shift(self):
    return 2.0 * math.log(self.scale)

  def logsnr(self, t):
    return self.base.logsnr(t) + self._shift

  def t_from_logsnr(self, lam):
    return self.base.t_from_logsnr(schedule_base.as_float(lam) - self._shift)

  def alpha_sigma(self, t):
    if self.normalize:
      return alpha_sigma_from_logsnr(self.logsnr(t), self.base.family)
    alpha, sigma = self.base.alpha_sigma(t)
    return self.scale * alpha, sigma

  def dlogsnr_dt(self, t):
    return self.base.dlogsnr_dt(t)


@dataclasses.dataclass(frozen=True)
class ZeroTerminalSNR(Schedule):
  r"""Zero-terminal-SNR rescaling (Lin et al. 2023, Algorithm 1) of a VP schedule.

  sqrt(ᾱ)' = (sqrt(ᾱ) - sqrt(ᾱ_1)) · sqrt(ᾱ_0) / (sqrt(ᾱ_0) - sqrt(ᾱ_1)), applied here to α(t) of
  the wrapped schedule, so α'(0) = α(0), α'(1) = 0 (λ(1) = -∞). Use v- or flow-prediction: at
  t = 1 ε-prediction cannot recover x̂₀.
  """

  base: Schedule
  family = "vp"

  def __post_init__(self):
    if self.base.family != "vp":
      raise ValueError(
          f"base must be a variance-preserving schedule; got family " f"{self.base.family!r}."
      )

  @functools.cached_property
  def _ends(self):
    with jax.ensure_compile_time_eval():
      a, s = self.base.alpha_sigma(jnp.asarray([0.0, 1.0], jnp.float32))
      return float(a[0]), float(s[0]), float(a[1])

  def logsnr(self, t):
    a0, s0, a1 = self._ends
    alpha, sigma = self.base.alpha_sigma(t)
    alpha_new = (alpha - a1) * (a0 / (a0 - a1))
    # 1 - α' = (a0 (1 - α) - a1 (1 - a0)) / (a0 - a1) with 1 - α = σ²/(1 + α): no cancellation
    # near t = 0, where α ≈ 1.
    one_minus = (a0 * jnp.square(sigma) / (1.0 + alpha) - a1 * s0**2 / (1.0 + a0)) / (a0 - a1)
    return 2.0 * jnp.log(alpha_new) - jnp.log(one_minus * (1.0 + alpha_new))

  def t_from_logsnr(self, lam):
    a0, s0, a1 = self._ends
    lam = schedule_base.as_float(lam)
    alpha_new = jnp.sqrt(jax.nn.sigmoid(lam))
    alpha = alpha_new * ((a0 - a1) / a0) + a1
    # 1 - α = ((a0 - a1)(1 - α') + a1 (1 - a0)) / a0, each 1 - a written as σ²/(1 + a).
    one_minus_new = jax.nn.sigmoid(-lam) / (1.0 + alpha_new)
    one_minus = ((a0 - a1) * one_minus_new + a1 * s0**2 / (1.0 + a0)) / a0
    return self.base.t_from_logsnr(2.0 * jnp.log(alpha) - jnp.log(one_minus * (1.0 + alpha)))
