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

Guided distillation (Meng et al. 2023, arXiv:2210.03142), `method.guided` set: a student that takes
the guidance weight w as a network input (the network's second conditioning input
`interval_cond`, models/unet.py and mlp.py, embedded like the time and added to the time
embedding, as the paper's w embedding), w ~ U[w_min, w_max] per example, class-conditional.
- stage "guide" (stage one): the teacher is a class-conditional run trained with label dropout
  (no w input); at t ~ U(0, 1] the student's x̂(z_t, w) regresses the guided teacher's
  x̃ = (1 + w) x̂_c − w x̂_∅ (ε̃ = (1 + w) ε_c − w ε_∅ at fixed z_t: one DDIM step with x̃ is the
  guided teacher's DDIM step), with the same "SNR + 1" weight; the student starts as the teacher
  plus the w layers, the last one zeroed (= the conditional teacher at every w);
- stage "halve" (stage two): PD above with the teacher = the previous guided student and both
  networks given the same w; w = 0 throughout is PD of the conditional model.
Sampling uses the fixed `guided.w`. Meng et al.'s official code is not public (PAPERS.md).

Config section (a GaussianDiffusion `method` plus):
  method: dict(kind="progressive_distillation", param="v", ..., num_student_steps=N,
               teacher="checkpoint"|"random",   ("random": an untrained teacher, smoke tests only)
               guided={} | dict(stage="guide"|"halve", w_min=0.0, w_max=4.0, w=1.0))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax import solvers
from diffjax.methods import base
from diffjax.methods import ctm_lib
from diffjax.methods import gaussian

GUIDED_KEYS = ("stage", "w_min", "w_max", "w")


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


def guided_x0(denoiser_cond, denoiser_uncond, x, sigma, w):
  """Meng et al.'s stage-one target (1 + w) x̂_c − w x̂_∅ [B, ...]; σ, w [B]."""
  b = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
  return b(1.0 + w) * denoiser_cond(x, sigma) - b(w) * denoiser_uncond(x, sigma)


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
    self.guided = dict(m.get("guided", {}))
    if self.guided:
      base.check_keys("method.guided", self.guided, GUIDED_KEYS)
      self.stage = self.guided.get("stage", "guide")
      if self.stage not in ("guide", "halve"):
        raise ValueError(f"method.guided.stage={self.stage!r}: expected 'guide' or 'halve'")
      self.w_range = (float(self.guided.get("w_min", 0.0)), float(self.guided.get("w_max", 4.0)))
      if not 0.0 <= self.w_range[0] <= self.w_range[1]:
        raise ValueError(f"method.guided w_min, w_max = {self.w_range}: need 0 <= w_min <= w_max")
      self.sample_w = float(self.guided.get("w", 1.0))
      if not self.conditional:
        raise ValueError(
            "method.guided needs method.conditional=True (a class-conditional teacher trained "
            "with label dropout)"
        )

  def init(self, rng, example_batch):
    if not self.guided:
      return super().init(rng, example_batch)
    x = jnp.asarray(example_batch["x"])
    ones = jnp.ones(x.shape[:1], jnp.float32)
    label = self.labels(example_batch)
    return base.init_params(self.model, rng, x, ones, label, interval_cond=ones)

  def init_state_with_params(self, params) -> dict:
    if self.guided and self.stage == "guide":
      params = ctm_lib.without_interval(params)  # the teacher has no w input
    return {"teacher": jax.tree.map(jnp.copy, params)}

  def start_from(self, state, loaded):
    student = loaded.ema_params
    if self.guided and self.stage == "guide":
      where = f"init_from={self.config.init_from!r}"
      student = ctm_lib.graft_interval(student, state.params, where, "guided-PD student")
    copy = lambda: jax.tree.map(jnp.copy, student)
    teacher = jax.tree.map(jnp.copy, loaded.ema_params)
    return state.replace(params=copy(), ema_params=copy(), method_state={"teacher": teacher})

  def guided_student(self, params, label, w, *, train=False, rng=None):
    """σ-frame D(x, σ) of the network given the guidance weight w [B] as second input."""
    raw = lambda z, c: self.network_fn(params, label, train=train, rng=rng, interval_cond=w)(z, c)
    return solvers.adapters.from_raw(raw, self._schedule, self.param)

  def denoiser(self, params, label=None):
    """The student's denoiser; a guided student's at the sampling weight `guided.w`."""
    if not self.guided:
      return super().denoiser(params, label)

    def den(x, sigma):
      w = jnp.full(sigma.shape, self.sample_w, jnp.float32)
      return self.guided_student(params, label, w)(x, sigma)

    return den

  def loss_with_state(self, params, method_state, batch, rng):
    rng_i, rng_eps, rng_drop = jax.random.split(rng, 3)
    x = batch["x"].astype(jnp.float32)
    label = self.labels(batch)
    n = self.num_student_steps
    i = jax.random.randint(rng_i, x.shape[:1], 1, n + 1).astype(jnp.float32)
    sig = lambda t: self.sigma_tilde(t)
    sigma, sigma_mid, sigma_end = sig(i / n), sig((i - 0.5) / n), sig((i - 1.0) / n)
    b = lambda v: v.reshape((-1,) + (1,) * (x.ndim - 1))
    teacher_params = jax.lax.stop_gradient(method_state["teacher"])
    if not self.guided:
      x_t = x + b(sigma) * jax.random.normal(rng_eps, x.shape)
      teacher = self.denoiser(teacher_params, label)
      target = target_x0(teacher, x_t, sigma, sigma_mid, sigma_end)
      student = solvers.adapters.from_raw(
          self.mean_raw_fn(params, label, train=True, rng=rng_drop), self._schedule, self.param
      )
    else:
      lo, hi = self.w_range
      w = jax.random.uniform(jax.random.fold_in(rng, 1), x.shape[:1], minval=lo, maxval=hi)
      if self.stage == "guide":  # t ~ U(0, 1]
        sigma = sig(1.0 - jax.random.uniform(rng_i, x.shape[:1]))
      x_t = x + b(sigma) * jax.random.normal(rng_eps, x.shape)
      if self.stage == "guide":
        cond = super().denoiser(teacher_params, label)
        uncond = super().denoiser(teacher_params, self.null_label(label))
        target = guided_x0(cond, uncond, x_t, sigma, w)
      else:
        teacher = self.guided_student(teacher_params, label, w)
        target = target_x0(teacher, x_t, sigma, sigma_mid, sigma_end)
      student = self.guided_student(params, label, w, train=True, rng=rng_drop)
    target = jax.lax.stop_gradient(target)
    err = jnp.sum(jnp.square(student(x_t, sigma) - target).reshape(x.shape[0], -1), axis=-1)
    per_example = 0.5 * (1.0 + 1.0 / jnp.square(sigma)) * err
    return jnp.mean(per_example), ({"x0_mse": jnp.mean(err)}, method_state)

  def sigma_tilde(self, t):
    """σ̃(t) = σ_t/α_t of the schedule; 0 at t = 0 (the data end of the last step)."""
    alpha, sigma = self._schedule.alpha_sigma(t)
    return jnp.where(t <= 0.0, 0.0, sigma / alpha)
