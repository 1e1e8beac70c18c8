r"""Stochastic interpolants and SB-CFM: velocity and denoiser heads on a (coupled) interpolant.

The path is `core.interpolants.Interpolant` (z_t = a x + b y + γ ξ; x data at t = 0, y at t = 1);
y is standard Gaussian noise (`method.source="noise"`) or the batch's second end
(`"data"`, batches {"x", "y"} from the `unpaired` source). The pairs (x, y) of a batch are coupled
by `method.coupling` over the global batch (`core.couplings.couple`), so the one Method covers
  * stochastic interpolants (Albergo & Vanden-Eijnden 2023; Albergo, Boffi & Vanden-Eijnden
    2023): linear or trigonometric path, γ = c·sqrt(t(1 − t)), independent coupling;
  * SB-CFM (Tong et al. 2023, §3.3): the linear path with the Brownian bridge γ = σ·sqrt(t(1−t))
    and pairs from the entropic OT plan with ε = 2σ² (`coupling.solver="sinkhorn"`); Tong's
    target u = x₁ − x₀ + γ'ξ is this Method's drift v + γ'η (the two heads' regression targets
    sum to it; this form keeps the targets bounded where γ' is not);
  * I-CFM / OT-CFM on the linear path with γ = 0 and one head (but `ot_cfm.MinibatchOTFlow` is the
    flow-matching way to train those, with every σ-frame solver).

Loss (Albergo et al. 2023, eqs. 2.13–2.14 as regressions): with t ~ U[0, 1],
  ‖v̂(t, z_t) − (a'x + b'y)‖² + ‖η̂(t, z_t) − ξ‖²   (summed over dimensions, mean over the batch);
the second term only with γ ≠ 0. One network outputs both heads: its last axis is doubled
(`learn_sigma=True`), the first half is v̂, the second η̂.

Sampling (`sample.solver`): "interp_euler" / "interp_heun" integrate the ODE dz/dt = v̂ + γ'η̂
from t = 1 to 0 (num_steps steps; Heun: 2·num_steps − 1 NFE); "interp_sde" runs Euler–Maruyama
with diffusion `sample.solver_kwargs.diffusion` (ε; any ε ≥ 0 keeps the marginals).
Initial points: the `noise` override, else N(0, I) (for `source="data"` pass the other end's
points as `noise`).

Config section:
  method: dict(kind="interpolant", path="linear" | "trig", gamma="none" | "bridge",
               gamma_scale=1.0, source="noise" | "data", noise_cond_scale=1.0,
               coupling=dict(solver="independent", ...) (see ot_cfm.coupling_options),
               conditional=False)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from diffjax import models
from diffjax.core import couplings
from diffjax.core import interpolants
from diffjax.methods import base
from diffjax.methods import ot_cfm

KEYS = (
    "kind",
    "path",
    "gamma",
    "gamma_scale",
    "source",
    "noise_cond_scale",
    "coupling",
    "conditional",
)
SOURCES = ("noise", "data")


class StochasticInterpolant(base.Method):
  """Velocity (+ denoiser) regression on a coupled interpolant; ODE and SDE samplers."""

  def __init__(self, config, *, element_shape: tuple[int, ...], num_classes: int = 0):
    mcfg = config.method
    base.check_keys("method", mcfg, KEYS)
    self.setup_common(config, element_shape, num_classes)
    self.path = interpolants.Interpolant(
        path=mcfg.get("path", "linear"),
        gamma=mcfg.get("gamma", "none"),
        gamma_scale=float(mcfg.get("gamma_scale", 1.0)),
    )
    self.source = mcfg.get("source", "noise")
    if self.source not in SOURCES:
      raise ValueError(f"method.source={self.source!r}: expected one of {SOURCES}")
    self.noise_cond_scale = float(mcfg.get("noise_cond_scale", 1.0))
    coupling = dict(mcfg.get("coupling", {}))
    coupling.setdefault("solver", "independent")
    self.coupling = ot_cfm.coupling_options({"coupling": coupling})
    self.per_class = bool(self.coupling.pop("per_class", True)) and self.conditional
    if self.path.stochastic:  # two heads: the network's last axis doubled
      model_cfg = dict(config.model, learn_sigma=True)
      if self.conditional:
        model_cfg["num_classes"] = self.num_classes
      self.model = models.make(model_cfg)
    self.chain_samplers = {
        "interp_euler": self._ode_sampler("euler"),
        "interp_heun": self._ode_sampler("heun"),
        "interp_sde": self._sde_sample,
    }

  def init(self, rng: jax.Array, example_batch: dict):
    return self.init_network(rng, example_batch)

  # -- the heads -----------------------------------------------------------------------------------

  def fields(self, params, label=None, *, train=False, rng=None):
    """`fields(z, t [B]) -> (v̂, η̂ or None)` of the network."""
    net = self.network_fn(params, label, train=train, rng=rng)
    channels = self.element_shape[-1]

    def fn(z, t):
      raw = net(z, self.noise_cond_scale * t).astype(jnp.float32)
      if not self.path.stochastic:
        return raw, None
      return raw[..., :channels], raw[..., channels:]

    return fn

  # -- training ------------------------------------------------------------------------------------

  def pairs(self, batch: dict, rng: jax.Array):
    """(x, y, label) of the batch, coupled by `method.coupling` over the global batch."""
    x, label = batch["x"], self.labels(batch)
    if self.source == "data":
      if "y" not in batch:
        raise ValueError("method.source='data' needs batches {'x', 'y'} (data.name='unpaired')")
      y = batch["y"]
    else:
      y = jax.random.normal(jax.random.fold_in(rng, 11), x.shape, jnp.float32)
    class_labels = label if self.per_class else None
    rows, cols = couplings.couple(
        jax.random.fold_in(rng, 12),
        x,
        y,
        row_labels=class_labels,
        col_labels=class_labels,
        **self.coupling,
    )
    return x[rows], y[cols], None if label is None else label[rows]

  def loss(self, params, batch: dict, rng: jax.Array):
    x, y, label = self.pairs(batch, rng)
    rng_t, rng_xi, rng_drop = jax.random.split(rng, 3)
    t = jax.random.uniform(rng_t, x.shape[:1])
    xi = jax.random.normal(rng_xi, x.shape, jnp.float32)
    z, v_target = self.path.sample(x, y, xi, t)
    v_hat, eta_hat = self.fields(params, label, train=True, rng=rng_drop)(z, t)
    axes = tuple(range(1, x.ndim))
    v_mse = jnp.sum(jnp.square(v_hat - v_target), axis=axes)
    metrics = {"velocity_mse": jnp.mean(v_mse)}
    per_example = v_mse
    if eta_hat is not None:
      eta_mse = jnp.sum(jnp.square(eta_hat - xi), axis=axes)
      metrics["denoiser_mse"] = jnp.mean(eta_mse)
      per_example = per_example + eta_mse
    return jnp.mean(per_example), metrics

  # -- sampling ------------------------------------------------------------------------------------

  def _start(self, rng, num, noise):
    if noise is not None:
      return jnp.asarray(noise, jnp.float32)
    return jax.random.normal(rng, (num,) + self.element_shape, jnp.float32)

  def _ode_sampler(self, method: str):
    def run(params, rng, num, settings, *, label=None, noise=None):
      base.check_keys(f"sample.solver_kwargs of interp_{method}", settings["solver_kwargs"], ())
      y = self._start(rng, num, noise)
      return _ode(self, params, y, label, int(settings["num_steps"]), method)

    return run

  def _sde_sample(self, params, rng, num, settings, *, label=None, noise=None):
    kwargs = dict(settings["solver_kwargs"])
    base.check_keys("sample.solver_kwargs of interp_sde", kwargs, ("diffusion",))
    rng_init, rng_sde = jax.random.split(rng)
    y = self._start(rng_init, num, noise)
    return _sde(
        self,
        params,
        y,
        label,
        rng_sde,
        int(settings["num_steps"]),
        float(kwargs.get("diffusion", 1.0)),
    )


@functools.partial(jax.jit, static_argnames=("method", "num_steps", "solver"))
def _ode(method, params, y, label, num_steps, solver):
  fields = method.fields(params, label)
  return interpolants.ode_solve(method.path, fields, y, num_steps, solver)


@functools.partial(jax.jit, static_argnames=("method", "num_steps", "diffusion"))
def _sde(method, params, y, label, rng, num_steps, diffusion):
  fields = method.fields(params, label)
  return interpolants.sde_solve(method.path, fields, y, num_steps, rng, diffusion)
