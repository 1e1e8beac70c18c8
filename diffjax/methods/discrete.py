"""Discrete: D3PM, SEDD, MDLM and discrete flow matching on token sequences [B, L] int32.

One Method kind ("discrete") for the family; `method.process` picks the paper, `method.graph` the
per-token corruption (`core.discrete`: "absorbing" = mask, "uniform"). The network is a
`token_transformer` whose vocabulary sizes this Method sets: input = the graph's states (data
tokens + the mask for absorbing), output = the states (D3PM's p̃(x_0), MDLM's SUBS, SEDD's scores)
or the V data tokens (DFM).

Config sections read here:
  schedule: dict(kind="loglinear", eps=1e-3) | dict(kind="polynomial", exponent=1.0)
  method:   dict(kind="discrete", process="mdlm"|"sedd"|"d3pm"|"dfm", graph="absorbing"|"uniform",
                 vocab_size=V (the data's tokens: 96 for Shakespeare),
                 t_min=1e-3, antithetic=True        (continuous time: t ~ U[t_min, 1])
                 time_conditioning=True             (MDLM: False, its default; then caching)
                 scale_by_sigma=True                (SEDD absorbing)
                 num_steps=1000, hybrid_lambda=0.01, bpd_all_steps=False   (D3PM))
  sample:   solver = "ancestral" (MDLM cached / D3PM chain), "euler" | "tweedie" (SEDD),
            "euler" (DFM); num_steps; solver_kwargs.t_end (SEDD, 1e-5)
`bpd` is the NELBO in bits per token (bits per character for Shakespeare), the `bpd` evaluator's.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from diffjax.core import discrete
from diffjax.methods import base
from diffjax.methods import d3pm
from diffjax.methods import dfm
from diffjax.methods import mdlm
from diffjax.methods import sedd

KEYS = (
    "kind",
    "process",
    "graph",
    "vocab_size",
    "t_min",
    "antithetic",
    "time_conditioning",
    "scale_by_sigma",
    "num_steps",
    "hybrid_lambda",
    "bpd_all_steps",
    "conditional",
)
SOLVERS = {"mdlm": ("ancestral",), "d3pm": ("ancestral",), "sedd": ("euler", "tweedie")}
SOLVERS["dfm"] = ("euler",)


class Discrete(base.Method):
  """The Method for the discrete processes; immutable after construction, all methods pure."""

  has_bpd = True
  has_denoiser = False  # token ids: no σ-frame D(x, σ); sampling uses the chain samplers

  def __init__(self, config, *, element_shape, num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    m = config.method
    base.check_keys("method", m, KEYS)
    if self.conditional:
      raise ValueError("method.conditional=True: the discrete processes are unconditional")
    if len(self.element_shape) != 1:
      raise ValueError(f"method.kind='discrete' needs tokens [B, L]; data are {element_shape}")
    self.process = m.get("process", "mdlm")
    if self.process not in SOLVERS:
      raise ValueError(f"method.process={self.process!r}: expected one of {sorted(SOLVERS)}")
    if int(m.get("vocab_size", 0)) < 2:
      raise ValueError("method.vocab_size (the data's number of tokens) must be set, >= 2")
    self.vocab_size = int(m.vocab_size)
    self.graph = discrete.make_graph(m.get("graph", "absorbing"), self.vocab_size)
    if self.process == "mdlm" and not self.graph.absorbing:
      raise ValueError("method.process='mdlm' needs method.graph='absorbing' (SUBS)")
    self.sched = discrete.make_schedule(**config.schedule)
    if self.process == "d3pm" and self.graph.absorbing and float(self.sched.alpha(1.0)) > 0:
      raise ValueError(
          "method.process='d3pm' with the absorbing graph needs α_1 = 0 (schedule.eps=0)"
      )
    if self.process == "dfm" and float(self.sched.alpha(1.0)) > 0:
      raise ValueError("method.process='dfm' needs α_1 = 0 (schedule.kind='polynomial')")
    self.t_min = float(m.get("t_min", 1e-3))
    self.antithetic = bool(m.get("antithetic", True))
    self.num_steps = int(m.get("num_steps", 1000))
    self.hybrid_lambda = float(m.get("hybrid_lambda", 0.01))
    self.bpd_all_steps = bool(m.get("bpd_all_steps", False))
    self.scale_by_sigma = bool(m.get("scale_by_sigma", True))
    time_cond = bool(m.get("time_conditioning", self.process != "mdlm"))
    out = self.vocab_size if self.process == "dfm" else self.graph.num_states
    for key, want in (("vocab_size", self.graph.num_states), ("out_size", out)):
      have = int(getattr(self.model, key, -1))
      if have not in (0, want):
        raise ValueError(f"model.{key}={have}: {self.process} on this graph needs {want} (or 0)")
    self.model = self.model.clone(
        vocab_size=self.graph.num_states, out_size=out, time_conditioning=time_cond
    )
    self.cache = not time_cond
    self.chain_samplers = {name: self._sampler(name) for name in SOLVERS[self.process]}

  # -- network -------------------------------------------------------------------------------------

  def init(self, rng, example_batch):
    x = jnp.asarray(example_batch["x"])
    return base.init_params(self.model, rng, x, jnp.ones(x.shape[:1]), None)

  def model_fn(self, params, *, train: bool = False, rng=None):
    """`fn(x_t, t) -> ` the process's quantity: log p (MDLM/DFM), log score (SEDD), p̃ (D3PM)."""
    net = self.network_fn(params, None, train=train, rng=rng)
    graph, sched = self.graph, self.sched

    def fn(x_t, t):
      raw = net(x_t, t)
      if self.process == "mdlm":
        return mdlm.subs(raw, x_t, graph)
      if self.process == "sedd":
        return sedd.log_score(raw, x_t, t, sched, graph, self.scale_by_sigma)
      if self.process == "d3pm":
        return d3pm.x0_probs(raw, graph)
      return dfm.log_probs(raw, self.vocab_size)

    return fn

  # -- training and likelihood ---------------------------------------------------------------------

  def _nelbo(self, fn, x0, rng):
    """Per-sequence NELBO estimate in nats [B] (the training loss, but D3PM's)."""
    kw = dict(t_min=self.t_min, antithetic=self.antithetic)
    if self.process == "mdlm":
      return mdlm.nelbo(fn, self.sched, self.graph, x0, rng, **kw)
    if self.process == "sedd":
      return sedd.nelbo(fn, self.sched, self.graph, x0, rng, **kw)
    if self.process == "dfm":
      return dfm.nelbo(fn, self.sched, self.graph, x0, rng, **kw)
    return d3pm.nelbo(
        fn, self.sched, self.graph, x0, rng, num_steps=self.num_steps, all_steps=self.bpd_all_steps
    )

  def loss(self, params, batch, rng):
    """Mean over the batch of the process's loss per token (nats), and its NELBO per token."""
    rng_loss, rng_drop = jax.random.split(rng)
    x0 = batch["x"].astype(jnp.int32)
    fn = self.model_fn(params, train=True, rng=rng_drop)
    length = x0.shape[1]
    if self.process == "d3pm":
      per, vb = d3pm.loss(
          fn,
          self.sched,
          self.graph,
          x0,
          rng_loss,
          num_steps=self.num_steps,
          hybrid_lambda=self.hybrid_lambda,
      )
      return jnp.mean(per) / length, {"vb": jnp.mean(vb) / length}
    per = self._nelbo(fn, x0, rng_loss)
    return jnp.mean(per) / length, {"nelbo_bits_per_token": jnp.mean(per) / length / math.log(2)}

  def bpd(self, params, rng, x):
    """The NELBO in bits per token, per sequence: {"bpd": [B]}."""
    x0 = jnp.asarray(x).astype(jnp.int32)
    nats = self._nelbo(self.model_fn(params), x0, rng)
    return {"bpd": nats / x0.shape[1] / math.log(2)}

  # -- sampling ------------------------------------------------------------------------------------

  def _sampler(self, name):
    def run(params, rng, num, settings, *, label=None, noise=None):
      if noise is not None or label is not None:
        raise ValueError("discrete samplers take no `noise` or `label` override")
      kwargs = dict(settings["solver_kwargs"])
      return _sample(self, params, rng, num, name, int(settings["num_steps"]), **kwargs)

    return run

  def schedule(self, params=None):
    raise ValueError(
        f"method.kind='discrete' has no σ-frame schedule: sample.solver must be one of "
        f"{list(SOLVERS[self.process])} for process {self.process!r}"
    )

  def denoiser(self, params, label=None):
    self.schedule()


def _sample(method, params, rng, num, solver, num_steps, t_end=1e-5):
  return _sample_jit(method, params, rng, num=num, solver=solver, num_steps=num_steps, t_end=t_end)


@jax.jit(static_argnames=("method", "num", "solver", "num_steps", "t_end"))
def _sample_jit(method, params, rng, *, num, solver, num_steps, t_end):
  fn = method.model_fn(params)
  shape = (num,) + method.element_shape
  g, s = method.graph, method.sched
  if method.process == "mdlm":
    return mdlm.sample(fn, s, g, rng, shape, num_steps, cache=method.cache)
  if method.process == "sedd":
    return sedd.sample(fn, s, g, rng, shape, num_steps, predictor=solver, t_end=t_end)
  if method.process == "d3pm":
    return d3pm.sample(fn, s, g, rng, shape, num_steps)
  return dfm.sample(fn, s, g, rng, shape, num_steps)
