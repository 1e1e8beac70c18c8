r"""Consistency models: distillation (CD) and training (CT) (Song et al. 2023), improved consistency
training (iCT, Song & Dhariwal 2023) and easy consistency tuning (ECT, Geng et al. 2024).

A consistency function f_θ(x, σ) maps any point of a PF-ODE trajectory to its start (the data end,
σ_min); it is the Method's σ-frame `denoiser`, so one network call is a one-step sample and the
`consistency` solver (solvers/consistency.py) is CM's multistep sampler (Alg. 1). Time is EDM's σ
(the papers' t); `schedule` is config.schedule (kind "edm") for the sampling grids.

Every variant compares f_θ at a higher noise level with a stop-gradient f at a lower one on the
same noise direction ε, both network calls with one dropout key (the official code restores the
RNG state between them; ECT calls it a shared dropout mask):
- "cd": σ_{n+1} > σ_n neighbours on an N(k)-point Karras grid, x_{σ_n} = one Heun step of the
  teacher (an EDM checkpoint, `config.init_from`) from x + σ_{n+1} ε; target network θ⁻ = EMA with
  μ(k) (`method_state["target"]`, advanced in `update_state` after each optimiser step).
- "ct": as "cd" with the teacher replaced by the one-sample score estimate: x_{σ_n} = x + σ_n ε.
- "ict": no EMA (θ⁻ = sg(θ)), N(k) doubling, σ pairs from the discretised lognormal, loss
  pseudo-Huber·1/(σ_{i+1} − σ_i).
- "ect": t ~ lognormal, r = r(t, stage) (ECT's mapping), θ⁻ = sg(θ), pseudo-Huber / (t − r),
  target x where r = 0; EDM's preconditioning (no σ_min shift) so that a diffjax EDM checkpoint
  (`init_from`) is the exact starting point.

Config section:
  method: dict(kind="consistency", variant="cd"|"ct"|"ict"|"ect", sigma_data=0.5, sigma_min=0.002,
               sigma_max=80.0, rho=7.0, metric="l2"|"pseudo_huber", huber_c=-1 (−1: 0.00054·√d),
               total_steps=K (the curriculum's length), plus the variant's keys:
               cd/ct: s0, s1, mu0, adaptive_ema, progressive; cd: teacher="checkpoint"|"random";
               ict: s0, s1, p_mean, p_std;  ect: p_mean, p_std, q, k, b, double_every_steps)
  `teacher="random"` (an untrained teacher: the student's initial network) exists for smoke
  tests only; "checkpoint" needs `init_from` = a run of the same network with EDM preconditioning.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from diffjax.core import schedules
from diffjax.methods import base
from diffjax.methods import consistency_lib as lib

VARIANT_KEYS = {
    "cd": ("s0", "s1", "mu0", "adaptive_ema", "progressive", "teacher"),
    "ct": ("s0", "s1", "mu0", "adaptive_ema", "progressive"),
    "ict": ("s0", "s1", "p_mean", "p_std"),
    "ect": ("p_mean", "p_std", "q", "k", "b", "double_every_steps"),
}
COMMON = ("kind", "variant", "sigma_data", "sigma_min", "sigma_max", "rho", "metric", "huber_c")
COMMON += ("total_steps", "conditional")
ICT_MAX_S1 = 4096  # the static size of iCT's index distribution


class Consistency(base.Method):
  """CD / CT / iCT / ECT over the boundary-conditioned network (module docstring)."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    m = config.method
    self.variant = m.get("variant", "")
    if self.variant not in VARIANT_KEYS:
      raise ValueError(f"method.variant={self.variant!r}: expected one of {sorted(VARIANT_KEYS)}")
    base.check_keys(f"method (variant {self.variant})", m, COMMON + VARIANT_KEYS[self.variant])
    self.o = {k: m[k] for k in m}
    self.sigma_data = float(m.get("sigma_data", 0.5))
    self.sigma_min = float(m.get("sigma_min", 0.002))
    self.sigma_max = float(m.get("sigma_max", 80.0))
    self.rho = float(m.get("rho", 7.0))
    # ECT starts from EDM's network exactly: EDM's preconditioning, the boundary at r = 0.
    self.shift = 0.0 if self.variant == "ect" else self.sigma_min
    self.metric = m.get("metric", "l2")
    c = float(m.get("huber_c", -1.0))
    self.huber_c = lib.huber_c_for(element_shape) if c < 0 else c
    lib.distance(jnp.zeros((1, 1)), jnp.zeros((1, 1)), self.metric)  # ValueError on a bad metric
    self.total_steps = int(m.get("total_steps", config.train.num_steps))
    if self.total_steps < 1:
      raise ValueError(f"method.total_steps={self.total_steps}: must be >= 1")
    self.teacher = m.get("teacher", "checkpoint") if self.variant == "cd" else ""
    if self.teacher not in ("", "checkpoint", "random"):
      raise ValueError(f"method.teacher={self.teacher!r}: expected 'checkpoint' or 'random'")
    if self.teacher == "checkpoint" and not config.get("init_from", ""):
      raise ValueError("method.variant='cd' distils a teacher: set init_from=<EDM run directory>")
    if self.variant == "ict" and int(m.s1) + 1 > ICT_MAX_S1:
      raise ValueError(f"method.s1={m.s1}: at most {ICT_MAX_S1 - 1}")
    if self.variant == "ect" and int(m.double_every_steps) < 1:
      raise ValueError(f"method.double_every_steps={m.double_every_steps}: must be >= 1")
    self._schedule = schedules.make(**config.schedule)
    if self.variant in ("cd", "ct"):
      self.ema_and_scales(0)  # ValueError on an unofficial (target EMA, scale) mode pair

  # -- network -------------------------------------------------------------------------------------

  def consistency_fn(self, params, label=None, *, train=False, rng=None, shift=None):
    """f(x, σ) = c_skip x + c_out F(c_in x, ¼ ln σ), σ [B] (boundary-conditioned unless ECT);
    `shift=0.0` gives EDM's denoiser of the same network (the CD teacher)."""
    net = self.network_fn(params, label, train=train, rng=rng)
    shift = self.shift if shift is None else shift

    def f(x, sigma):
      c_skip, c_out, c_in, c_noise = lib.boundary_coefficients(sigma, self.sigma_data, shift)
      raw = net(lib.bcast(c_in, x) * x, c_noise).astype(jnp.float32)
      return lib.bcast(c_skip, x) * x + lib.bcast(c_out, x) * raw

    return f

  def init(self, rng, example_batch):
    return self.init_network(rng, example_batch)

  def schedule(self, params=None):
    del params
    return self._schedule

  def denoiser(self, params, label=None):
    return self.consistency_fn(params, label)

  # -- state ---------------------------------------------------------------------------------------

  def init_state(self) -> dict:
    raise ValueError("Consistency keeps parameters in its state: use init_state_with_params")

  def init_state_with_params(self, params) -> dict:
    state = {"step": jnp.zeros((), jnp.int32)}
    if self.variant in ("cd", "ct"):
      state["target"] = jax.tree.map(jnp.copy, params)
    if self.variant == "cd":
      state["teacher"] = jax.tree.map(jnp.copy, params)
    return state

  def start_from(self, state, loaded):
    """Student, EMA, target and (CD) teacher all start as the loaded run's EMA parameters."""
    teacher = loaded.ema_params
    if jax.tree.structure(teacher) != jax.tree.structure(state.params) or any(
        a.shape != b.shape for a, b in zip(jax.tree.leaves(teacher), jax.tree.leaves(state.params))
    ):
      raise ValueError(
          f"init_from={self.config.init_from!r}: its network differs from config.model "
          "(a consistency student must share its teacher's network)"
      )
    copy = lambda: jax.tree.map(jnp.copy, teacher)  # distinct buffers: the step donates them
    ms = dict(state.method_state)
    for key in ("target", "teacher"):
      if key in ms:
        ms[key] = copy()
    return state.replace(params=copy(), ema_params=copy(), method_state=ms)

  def update_state(self, method_state, params):
    """θ⁻ ← μ(k) θ⁻ + (1 − μ(k)) θ with the new θ (CD/CT), and k ← k + 1."""
    new = dict(method_state)
    if "target" in new:
      mu = self.ema_and_scales(method_state["step"])[0]
      new["target"] = jax.tree.map(
          lambda t, p: mu * t + (1.0 - mu) * jax.lax.stop_gradient(p), new["target"], params
      )
    new["step"] = method_state["step"] + 1
    return new

  def ema_and_scales(self, step):
    """(μ(k), N(k)) of the CD/CT curriculum (`consistency_lib.cm_ema_and_scales`)."""
    o = self.o
    return lib.cm_ema_and_scales(
        step,
        total_steps=self.total_steps,
        s0=int(o["s0"]),
        s1=int(o["s1"]),
        mu0=float(o["mu0"]),
        adaptive_ema=bool(o.get("adaptive_ema", True)),
        progressive=bool(o.get("progressive", True)),
    )

  # -- training ------------------------------------------------------------------------------------

  def loss(self, params, batch, rng):
    raise ValueError("Consistency needs its step counter: train with loss_with_state")

  def loss_with_state(self, params, method_state, batch, rng):
    x = batch["x"].astype(jnp.float32)
    label = self.labels(batch)
    rng_t, rng_eps, rng_drop = jax.random.split(rng, 3)
    eps = jax.random.normal(rng_eps, x.shape)
    k = method_state["step"]
    ms = jax.lax.stop_gradient(method_state)
    pair = getattr(self, f"_pair_{self.variant}")
    hi, x_lo, lo, weight, metrics = pair(ms, params, x, eps, label, rng_t, k)
    f = self.consistency_fn(params, label, train=True, rng=rng_drop)
    target_params = ms["target"] if "target" in ms else jax.lax.stop_gradient(params)
    f_target = self.consistency_fn(target_params, label, train=True, rng=rng_drop)
    pred = f(x + lib.bcast(hi, x) * eps, hi)
    positive = (lo > 0).reshape((-1,) + (1,) * (x.ndim - 1))
    target = jax.lax.stop_gradient(f_target(x_lo, jnp.where(lo > 0, lo, 1.0)))
    target = jnp.where(positive, target, x)  # ECT: f(x, r = 0) = x (the boundary, no network call)
    per_example = weight * lib.distance(pred, target, self.metric, self.huber_c)
    metrics = dict(metrics, sigma_gap=jnp.mean(hi - lo))
    return jnp.mean(per_example), (metrics, method_state)

  def _pair_cd(self, ms, params, x, eps, label, rng, k):
    mu, n = self.ema_and_scales(k)
    i = jax.random.randint(rng, x.shape[:1], 0, n - 1)
    hi = lib.karras_level(i, n, self.sigma_min, self.sigma_max, self.rho)
    lo = lib.karras_level(i + 1, n, self.sigma_min, self.sigma_max, self.rho)
    teacher = self.consistency_fn(ms["teacher"], label, shift=0.0)  # EDM's D, eval mode
    x_lo = lib.heun_step(teacher, x + lib.bcast(hi, x) * eps, hi, lo)
    return hi, jax.lax.stop_gradient(x_lo), lo, 1.0, {"num_scales": n, "target_ema": mu}

  def _pair_ct(self, ms, params, x, eps, label, rng, k):
    mu, n = self.ema_and_scales(k)
    i = jax.random.randint(rng, x.shape[:1], 0, n - 1)
    hi = lib.karras_level(i, n, self.sigma_min, self.sigma_max, self.rho)
    lo = lib.karras_level(i + 1, n, self.sigma_min, self.sigma_max, self.rho)
    # The official Euler step with the one-sample denoiser x: x_hi + (lo − hi)(x_hi − x)/hi.
    return hi, x + lib.bcast(lo, x) * eps, lo, 1.0, {"num_scales": n, "target_ema": mu}

  def _pair_ict(self, ms, params, x, eps, label, rng, k):
    o = self.o
    n = lib.ict_num_scales(k, total_steps=self.total_steps, s0=int(o["s0"]), s1=int(o["s1"]))
    logits = lib.ict_index_logits(
        n,
        int(o["s1"]) + 1,
        sigma_min=self.sigma_min,
        sigma_max=self.sigma_max,
        rho=self.rho,
        p_mean=float(o["p_mean"]),
        p_std=float(o["p_std"]),
    )
    j = jax.random.categorical(rng, logits, shape=x.shape[:1])
    lo = lib.karras_level(n - 1 - j, n, self.sigma_min, self.sigma_max, self.rho)
    hi = lib.karras_level(n - 2 - j, n, self.sigma_min, self.sigma_max, self.rho)
    return hi, x + lib.bcast(lo, x) * eps, lo, 1.0 / (hi - lo), {"num_scales": n}

  def _pair_ect(self, ms, params, x, eps, label, rng, k):
    o = self.o
    t = jnp.exp(float(o["p_mean"]) + float(o["p_std"]) * jax.random.normal(rng, x.shape[:1]))
    stage = k // int(o["double_every_steps"])
    r = lib.ect_r(t, stage, q=float(o["q"]), k=float(o["k"]), b=float(o["b"]))
    return t, x + lib.bcast(r, x) * eps, r, 1.0 / (t - r), {"stage": stage}
