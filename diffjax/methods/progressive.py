r"""Progressive distillation (Salimans & Ho 2022, arXiv:2202.00512, Alg. 2).

A student with N DDIM steps learns to match two DDIM steps of its teacher (N → N/2 per round): at
t = i/N (i ∈ {1, …, N}) and z_t = α_t x + σ_t ε, the teacher's DDIM steps t → t − ½/N → t − 1/N
give z_{t''}, and the student's target x̃ is the x̂ with which *one* DDIM step from t lands on
z_{t''} (paper eq. 8):
  x̃ = (z_{t''} − (σ_{t''}/σ_t) z_t) / (α_{t''} − (σ_{t''}/σ_t) α_t).
In diffjax's σ-frame (x̃ = z/α, σ̃ = σ/α) a DDIM step is an Euler step, x̃' = D + σ̃'(x̃ − D)/σ̃, and
the target is x̃ = (x̃_{t''} − r x̃_t)/(1 − r) with r = σ̃_{t''}/σ̃_t (r = 0 at t'' = 0: the
teacher's last state); the loss is the paper's "SNR + 1" weighting, ½(1 + α_t²/σ_t²)‖x̂ − x̃‖²
(= ½‖v − v̂‖² for the v-parameterisation, so the teacher's own v-MSE training carries over).

The teacher is the `config.init_from` run (a GaussianDiffusion run of the same schedule,
parameterisation and network, e.g. configs/v_prediction/fashion_mnist.py, or the previous round of
this Method), kept in `method_state["teacher"]`; the student starts as the teacher's EMA.
Sampling: DDIM (`euler`) on the student's N uniform-t steps (config `sample`).

Config section (a GaussianDiffusion `method` plus):
  method: dict(kind="progressive_distillation", param="v", ..., num_student_steps=N,
               teacher="checkpoint"|"random")   ("random": an untrained teacher, smoke tests only)
Not implemented: guided distillation (Meng et al. 2023, w as a network input).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax import solvers
from diffjax.methods import gaussian


def target_x0(denoiser, x, sigma, sigma_mid, sigma_end):
  """The σ-frame PD target [B, ...]: the x̂ of one DDIM step σ → σ_end that equals the teacher's
  two DDIM steps σ → σ_mid → σ_end; σ's [B] (σ_end may be 0)."""
  b = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
  d = denoiser(x, sigma)
  x_mid = d + b(sigma_mid / sigma) * (x - d)
  d_mid = denoiser(x_mid, sigma_mid)
  x_end = d_mid + b(sigma_end / sigma_mid) * (x_mid - d_mid)
  r = b(sigma_end / sigma)
  return (x_end - r * x) / (1.0 - r)


class ProgressiveDistillation(gaussian.GaussianDiffusion):
  """GaussianDiffusion's network, schedule and parameterisation, trained by PD's loss."""

  has_bpd = False

  def __init__(self, config, *, element_shape, num_classes=0):
    super().__init__(config, element_shape=element_shape, num_classes=num_classes)
    m = config.method
    self.num_student_steps = int(m.get("num_student_steps", 0))
    if self.num_student_steps < 1:
      raise ValueError(f"method.num_student_steps={self.num_student_steps}: must be >= 1")
    self.teacher = m.get("teacher", "checkpoint")
    if self.teacher not in ("checkpoint", "random"):
      raise ValueError(f"method.teacher={self.teacher!r}: expected 'checkpoint' or 'random'")
    if self.teacher == "checkpoint" and not config.get("init_from", ""):
      raise ValueError("method.kind='progressive_distillation' needs init_from=<teacher run>")
    if self.adaptive or self.objective != "weighted" or self.learn_sigma:
      raise ValueError(
          "progressive_distillation: a plain 'weighted' objective, no learned variance"
      )

  def init_state_with_params(self, params) -> dict:
    return {"teacher": jax.tree.map(jnp.copy, params)}

  def start_from(self, state, loaded):
    copy = lambda: jax.tree.map(jnp.copy, loaded.ema_params)
    return state.replace(params=copy(), ema_params=copy(), method_state={"teacher": copy()})

  def loss_with_state(self, params, method_state, batch, rng):
    rng_i, rng_eps, rng_drop = jax.random.split(rng, 3)
    x = batch["x"].astype(jnp.float32)
    label = self.labels(batch)
    n = self.num_student_steps
    i = jax.random.randint(rng_i, x.shape[:1], 1, n + 1).astype(jnp.float32)
    sig = lambda t: self.sigma_tilde(t)
    sigma, sigma_mid, sigma_end = sig(i / n), sig((i - 0.5) / n), sig((i - 1.0) / n)
    b = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
    x_t = x + b(sigma) * jax.random.normal(rng_eps, x.shape)
    teacher = self.denoiser(jax.lax.stop_gradient(method_state["teacher"]), label)
    target = jax.lax.stop_gradient(target_x0(teacher, x_t, sigma, sigma_mid, sigma_end))
    student = solvers.adapters.from_raw(
        self.mean_raw_fn(params, label, train=True, rng=rng_drop), self._schedule, self.param
    )
    err = jnp.sum(jnp.square(student(x_t, sigma) - target).reshape(x.shape[0], -1), axis=-1)
    per_example = 0.5 * (1.0 + 1.0 / jnp.square(sigma)) * err
    return jnp.mean(per_example), ({"x0_mse": jnp.mean(err)}, method_state)

  def sigma_tilde(self, t):
    """σ̃(t) = σ_t/α_t of the schedule; 0 at t = 0 (the data end of the last step)."""
    alpha, sigma = self._schedule.alpha_sigma(t)
    return jnp.where(t <= 0.0, 0.0, sigma / alpha)
