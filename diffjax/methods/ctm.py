r"""Consistency trajectory models (CTM; Kim et al. 2023, arXiv:2310.02279), without the GAN term.

Frame: EDM's σ (the paper's t), x_t = x + t ε, σ ∈ [σ_min, σ_max]; diffjax's time also runs from
data (small σ) to noise, so nothing is converted. `schedule` is config.schedule (kind "edm").

Network (official sony/ctm `get_denoised_and_G`, outer_parametrization "euler", inner "edm"):
  G_θ(x_t, t, s) = (s/t) x_t + (1 − s/t) g_θ(x_t, t, s)                         (paper eq. 5)
  g_θ(x_t, t, s) = c_skip(t) x_t + c_out(t) F_θ(c_in(t) x_t, c_noise(t), c_noise(s))
with EDM's c_skip, c_out, c_in and c_noise = ¼ ln σ for both times (the official 1000·¼ ln σ is its
network's scaling of the same input; diffjax's EDM networks take ¼ ln σ). s enters through the
network's second time input (`interval_cond`, models/unet.py and mlp.py), added to the time
embedding (the official DDPM++ adds a per-block affine of an s embedding instead). G(x, t, t) = x
whatever g is, and g(x, t, t) is a denoiser (the DSM term trains it), so `denoiser` is
g(·, σ, σ) and every σ-frame solver samples the CTM network as a diffusion model.

Loss (official `ctm_losses` with its CIFAR-10 defaults; N = `num_scales` Karras levels σ_0 = σ_max
> … > σ_{N−1} = σ_min):
- n ∈ {1, …, `max_heun_steps`} teacher Heun steps, one per batch, p(n) ∝ n ("weighted", the
  official heun_step_strategy) or uniform; per example i uniform in {0, …, N − 1 − n} and
  j uniform in {i + n, …, N − 1}; t = σ_i, u = σ_{i+n}, s = σ_j;
- estimate = G_{sg(θ⁻)}(G_θ(x_t, t, s), s, σ_min) (gradient through the outer call's input);
  target   = G_{sg(θ⁻)}(G_{sg(θ)}(x_u, u, s), s, σ_min), x_u = n Heun steps of the teacher t → u;
  θ⁻ = EMA of θ at rate `target_ema` (official 0.999, `method_state["target"]`);
  L_CTM = mean squared error over elements ("l2"; the paper's LPIPS is unavailable);
- L_DSM = w(σ) mean over elements of (g_θ(x_σ, σ, σ) − x)², w = (σ² + σ_d²)/(σ σ_d)², σ from
  half lognormal(−1.2, 1.2) and half the Karras curve at u·`dsm_mult`, u ~ U[0, 1);
- loss = mean L_CTM + λ mean L_DSM with λ = clip(‖∇_W L_CTM‖/(‖∇_W L_DSM‖ + 1e-4), 0, 1e4) at the
  last layer's kernel W (`dsm_weight=-1`, the official apply_adaptive_weight) or a fixed λ.
Not implemented: the GAN term (StyleGAN-XL discriminator; the paper's headline FIDs need it).

Teacher: as consistency distillation (methods/consistency.py): `config.init_from` = a diffjax EDM
run of the same network (without the s layers), kept in `method_state["teacher"]`; the student,
its EMA and θ⁻ start from it, the new s layers from their initialisation with the last one zeroed,
so that training starts at G = the teacher's DDIM step (a diffjax choice; the official init is
random). `teacher="random"` (the student's initial network) is for smoke tests only.

Sampling: γ-sampling (paper Alg. 1; official `sample_gamma_multistep_`) on the config's σ grid
ending at σ_min, `solvers.consistency.gamma_sampling` as the chain sampler "ctm_gamma"
(sample.solver_kwargs.gamma, default 0: deterministic jumps; γ = 1 is CM's multistep sampler).

Config section:
  method: dict(kind="ctm", sigma_data=0.5, sigma_min=0.002, sigma_max=80.0, rho=7.0,
               num_scales=18, max_heun_steps=17, heun_step_strategy="weighted"|"uniform",
               target_ema=0.999, dsm_weight=-1.0, dsm_layer="conv_out", dsm_mult=0.7,
               dsm_p_mean=-1.2, dsm_p_std=1.2, metric="l2"|"pseudo_huber", huber_c=-1,
               teacher="checkpoint"|"random", conditional=False)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from diffjax.core import schedules
from diffjax.methods import base
from diffjax.methods import consistency_lib as lib
from diffjax.methods import ctm_lib
from diffjax.methods import sampling
from diffjax.solvers import consistency as consistency_solver

KEYS = (
    "kind",
    "sigma_data",
    "sigma_min",
    "sigma_max",
    "rho",
    "num_scales",
    "max_heun_steps",
    "heun_step_strategy",
    "target_ema",
    "dsm_weight",
    "dsm_layer",
    "dsm_mult",
    "dsm_p_mean",
    "dsm_p_std",
    "metric",
    "huber_c",
    "teacher",
    "conditional",
)


class CTM(base.Method):
  """CTM distilled from an EDM teacher (module docstring)."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    m = config.method
    base.check_keys("method (kind ctm)", m, KEYS)
    self.sigma_data = float(m.get("sigma_data", 0.5))
    self.sigma_min = float(m.get("sigma_min", 0.002))
    self.sigma_max = float(m.get("sigma_max", 80.0))
    self.rho = float(m.get("rho", 7.0))
    self.num_scales = int(m.get("num_scales", 18))
    self.max_heun_steps = int(m.get("max_heun_steps", 17))
    if not 1 <= self.max_heun_steps <= self.num_scales - 1:
      raise ValueError(
          f"method.max_heun_steps={self.max_heun_steps}: must be in [1, num_scales − 1 = "
          f"{self.num_scales - 1}]"
      )
    self.n_logits = ctm_lib.heun_step_logits(
        self.max_heun_steps, m.get("heun_step_strategy", "weighted")
    )
    self.target_ema = float(m.get("target_ema", 0.999))
    self.dsm_weight = float(m.get("dsm_weight", -1.0))
    self.dsm_layer = m.get("dsm_layer", "conv_out")
    self.dsm_mult = float(m.get("dsm_mult", 0.7))
    self.dsm_p = (float(m.get("dsm_p_mean", -1.2)), float(m.get("dsm_p_std", 1.2)))
    self.metric = m.get("metric", "l2")
    c = float(m.get("huber_c", -1.0))
    self.huber_c = lib.huber_c_for(element_shape) if c < 0 else c
    lib.distance(jnp.zeros((1, 1)), jnp.zeros((1, 1)), self.metric)  # ValueError on a bad metric
    self.teacher = m.get("teacher", "checkpoint")
    if self.teacher not in ("checkpoint", "random"):
      raise ValueError(f"method.teacher={self.teacher!r}: expected 'checkpoint' or 'random'")
    if self.teacher == "checkpoint" and not config.get("init_from", ""):
      raise ValueError("method.kind='ctm' distils a teacher: set init_from=<EDM run directory>")
    self._schedule = schedules.make(**config.schedule)
    self.chain_samplers = {"ctm_gamma": self.chain_sample}

  # -- network -------------------------------------------------------------------------------------

  def level(self, i):
    """σ of index i on the N-point Karras grid (σ_max at 0, σ_min at N − 1)."""
    return lib.karras_level(i, self.num_scales, self.sigma_min, self.sigma_max, self.rho)

  def g_fn(self, params, label=None, *, train=False, rng=None):
    """g_θ(x [B, ...], t [B], s [B]) -> [B, ...] float32 (EDM preconditioning in t)."""

    def g(x, t, s):
      c_skip, c_out, c_in, c_noise = lib.boundary_coefficients(t, self.sigma_data, 0.0)
      net = self.network_fn(params, label, train=train, rng=rng, interval_cond=0.25 * jnp.log(s))
      raw = net(lib.bcast(c_in, x) * x, c_noise).astype(jnp.float32)
      return lib.bcast(c_skip, x) * x + lib.bcast(c_out, x) * raw

    return g

  def jump_fn(self, params, label=None, *, train=False, rng=None):
    """G_θ(x, t, s) (module docstring)."""
    g = self.g_fn(params, label, train=train, rng=rng)
    return lambda x, t, s: ctm_lib.jump(g(x, t, s), x, t, s)

  def teacher_denoiser(self, teacher_params, label=None):
    """The EDM teacher's D(x, σ) (EDM preconditioning, no s input, eval mode)."""
    net = self.network_fn(teacher_params, label)

    def den(x, sigma):
      c_skip, c_out, c_in, c_noise = lib.boundary_coefficients(sigma, self.sigma_data, 0.0)
      raw = net(lib.bcast(c_in, x) * x, c_noise).astype(jnp.float32)
      return lib.bcast(c_skip, x) * x + lib.bcast(c_out, x) * raw

    return den

  def init(self, rng, example_batch):
    x = jnp.asarray(example_batch["x"])
    ones = jnp.ones(x.shape[:1], jnp.float32)
    return base.init_params(
        self.model, rng, x, ones, self.labels(example_batch), interval_cond=ones
    )

  def schedule(self, params=None):
    del params
    return self._schedule

  def denoiser(self, params, label=None):
    """g_θ(x, σ, σ): the DSM-trained denoiser, for the σ-frame solvers."""
    g = self.g_fn(params, label)
    return lambda x, sigma: g(x, sigma, sigma).astype(x.dtype)

  # -- state ---------------------------------------------------------------------------------------

  def init_state(self) -> dict:
    raise ValueError("CTM keeps parameters in its state: use init_state_with_params")

  def init_state_with_params(self, params) -> dict:
    return {
        "target": jax.tree.map(jnp.copy, params),
        "teacher": jax.tree.map(jnp.copy, ctm_lib.without_interval(params)),
    }

  def start_from(self, state, loaded):
    """Teacher = the loaded EMA; student, EMA and θ⁻ = the teacher plus the s layers (the last
    one zeroed: G starts as the teacher's DDIM step)."""
    teacher = loaded.ema_params
    student = ctm_lib.graft_interval(
        teacher, state.params, f"init_from={self.config.init_from!r}", "CTM student"
    )
    copy = lambda: jax.tree.map(jnp.copy, student)  # distinct buffers: the step donates them
    ms = {"target": copy(), "teacher": jax.tree.map(jnp.copy, teacher)}
    return state.replace(params=copy(), ema_params=copy(), method_state=ms)

  def update_state(self, method_state, params):
    """θ⁻ ← μ θ⁻ + (1 − μ) θ with the new θ, μ = `target_ema`."""
    mu = self.target_ema
    new = dict(method_state)
    new["target"] = jax.tree.map(
        lambda t, p: mu * t + (1.0 - mu) * jax.lax.stop_gradient(p), new["target"], params
    )
    return new

  # -- training ------------------------------------------------------------------------------------

  def loss(self, params, batch, rng):
    raise ValueError("CTM needs its target network: train with loss_with_state")

  def draws(self, rng, x):
    """The loss's random draws (module docstring): n, i, j, ε, DSM σ and noise."""
    b = x.shape[0]
    rng_n, rng_i, rng_j, rng_eps, rng_ln, rng_u, rng_dn = jax.random.split(rng, 7)
    n = 1 + jax.random.categorical(rng_n, jnp.asarray(self.n_logits))
    i = jax.random.randint(rng_i, (b,), 0, self.num_scales - n)
    j = jax.random.randint(rng_j, (b,), i + n, self.num_scales)
    p_mean, p_std = self.dsm_p
    lognormal = jnp.exp(p_mean + p_std * jax.random.normal(rng_ln, (b // 2,)))
    u = jax.random.uniform(rng_u, (b - b // 2,)) * self.dsm_mult
    karras = lib.karras_level(u, 2, self.sigma_min, self.sigma_max, self.rho)  # u/(2 − 1) = u
    return dict(
        n=n,
        i=i,
        j=j,
        eps=jax.random.normal(rng_eps, x.shape),
        dsm_sigma=jnp.concatenate([lognormal, karras]),
        dsm_eps=jax.random.normal(rng_dn, x.shape),
    )

  def target(self, params, method_state, x, label, d, rng_drop):
    """The stop-gradient CTM target [B, ...] for the draws `d` (teacher Heun steps, sg(θ), θ⁻)."""
    ms = jax.lax.stop_gradient(method_state)
    return ctm_lib.ctm_target(
        self.jump_fn(jax.lax.stop_gradient(params), label, train=True, rng=rng_drop),
        self.jump_fn(ms["target"], label, train=True, rng=rng_drop),
        self.teacher_denoiser(ms["teacher"], label),
        x + lib.bcast(self.level(d["i"]), x) * d["eps"],
        d["i"],
        d["n"],
        d["j"],
        self.level,
        self.sigma_min,
    )

  def terms(self, params, method_state, x, label, d, rng_drop, target):
    """Per-example (L_CTM [B], L_DSM [B]) for the draws `d` and the CTM `target`."""
    ms = jax.lax.stop_gradient(method_state)
    t, s = self.level(d["i"]), self.level(d["j"])
    estimate = ctm_lib.ctm_estimate(
        self.jump_fn(params, label, train=True, rng=rng_drop),
        self.jump_fn(ms["target"], label, train=True, rng=rng_drop),
        x + lib.bcast(t, x) * d["eps"],
        t,
        s,
        self.sigma_min,
    )
    ctm = lib.distance(estimate, target, self.metric, self.huber_c)
    sigma = d["dsm_sigma"]
    g = self.g_fn(params, label, train=True, rng=rng_drop)
    den = g(x + lib.bcast(sigma, x) * d["dsm_eps"], sigma, sigma)
    dsm = (
        ctm_lib.dsm_weight(sigma, self.sigma_data)
        * lib.sq_norm(den, x)
        / float(np.prod(x.shape[1:]))
    )
    return ctm, dsm

  def balance(self, params, method_state, x, label, d, rng_drop, target):
    """λ = clip(‖∇_W L_CTM‖/(‖∇_W L_DSM‖ + 1e-4), 0, 1e4) at the last layer's kernel W."""
    if self.dsm_weight >= 0:
      return jnp.float32(self.dsm_weight)
    params = jax.lax.stop_gradient(params)
    if self.dsm_layer not in params:
      raise ValueError(
          f"method.dsm_layer={self.dsm_layer!r}: not a top-level layer of the network "
          f"({sorted(params)})"
      )
    layer = params[self.dsm_layer]
    leaf = "kernel" if isinstance(layer, dict) and "kernel" in layer else None

    def means(w):
      p = dict(params)
      p[self.dsm_layer] = dict(layer, kernel=w) if leaf else w
      ctm, dsm = self.terms(p, method_state, x, label, d, rng_drop, target)
      return jnp.mean(ctm), jnp.mean(dsm)

    w = layer[leaf] if leaf else layer
    _, vjp = jax.vjp(means, w)
    norm = lambda tree: jnp.sqrt(sum(jnp.sum(jnp.square(v)) for v in jax.tree.leaves(tree)))
    g_ctm = norm(vjp((jnp.float32(1.0), jnp.float32(0.0)))[0])
    g_dsm = norm(vjp((jnp.float32(0.0), jnp.float32(1.0)))[0])
    return jax.lax.stop_gradient(jnp.clip(g_ctm / (g_dsm + 1e-4), 0.0, 1e4))

  def loss_with_state(self, params, method_state, batch, rng):
    x = batch["x"].astype(jnp.float32)
    label = self.labels(batch)
    rng_d, rng_drop = jax.random.split(rng)
    d = self.draws(rng_d, x)
    target = self.target(params, method_state, x, label, d, rng_drop)  # once: no gradient
    ctm, dsm = self.terms(params, method_state, x, label, d, rng_drop, target)
    lam = self.balance(params, method_state, x, label, d, rng_drop, target)
    loss = jnp.mean(ctm) + lam * jnp.mean(dsm)
    metrics = {"ctm_loss": jnp.mean(ctm), "dsm_loss": jnp.mean(dsm), "dsm_lambda": lam}
    return loss, (dict(metrics, heun_steps=d["n"]), method_state)

  # -- sampling ------------------------------------------------------------------------------------

  def chain_sample(self, params, rng, num, settings, *, label=None, noise=None):
    """γ-sampling with `settings["num_steps"]` jumps on the config's σ grid (ending at σ_min)."""
    kwargs = dict(settings["solver_kwargs"])
    gamma = float(kwargs.pop("gamma", 0.0))
    if kwargs:
      raise ValueError(f"sample.solver_kwargs {sorted(kwargs)}: ctm_gamma takes only 'gamma'")
    grid = sampling.sigmas(
        self, params, settings["num_steps"], settings["grid"], settings["grid_kwargs"]
    )
    if not float(grid[-1]) > 0.0:
      raise ValueError(
          "sample.grid: ctm_gamma jumps to the grid's last level, which must be σ_min > 0 "
          "(grid_kwargs.append_zero=False)"
      )
    rng_init, rng_solve = jax.random.split(rng)
    if noise is None:
      noise = jax.random.normal(rng_init, (num,) + self.element_shape)
    return _gamma_chain(self, params, noise, jnp.asarray(grid), label, rng_solve, gamma)


@functools.partial(jax.jit, static_argnames=("method", "gamma"))
def _gamma_chain(method, params, noise, grid, label, rng, gamma):
  out, _ = consistency_solver.gamma_sampling(
      method.jump_fn(params, label),
      grid[0] * noise,
      grid,
      key=rng,
      gamma=gamma,
      sigma_min=method.sigma_min,
  )
  return out
