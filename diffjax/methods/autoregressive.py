"""Autoregressive: the left-to-right Transformer baseline of the discrete processes.

The same `token_transformer`, with causal attention and no time conditioning, reads
[BOS, x_1, …, x_{L−1}] (BOS = token V) and predicts x_1..x_L: p(x) = Π_l p(x_l | x_{<l}), so
`bpd` is the exact negative log-likelihood in bits per token (bits per character on Shakespeare),
with no bound. Sampling (`sample.solver="ancestral"`) draws the L tokens one at a time, rerunning
the network on the whole prefix buffer (no key/value cache; L network calls).

Config: method = dict(kind="autoregressive", vocab_size=V); sample.solver = "ancestral".
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from diffjax.methods import base


class Autoregressive(base.Method):
  """Exact-likelihood baseline; immutable after construction, all methods pure."""

  has_bpd = True
  has_denoiser = False  # token ids: no σ-frame D(x, σ); sampling uses the chain samplers

  def __init__(self, config, *, element_shape, num_classes: int = 0):
    self.setup_common(config, element_shape, num_classes)
    base.check_keys("method", config.method, ("kind", "vocab_size", "conditional"))
    if self.conditional:
      raise ValueError("method.conditional=True: the autoregressive baseline is unconditional")
    if len(self.element_shape) != 1:
      raise ValueError(
          f"method.kind='autoregressive' needs tokens [B, L]; data are {element_shape}"
      )
    self.vocab_size = int(config.method.get("vocab_size", 0))
    if self.vocab_size < 2:
      raise ValueError("method.vocab_size (the data's number of tokens) must be set, >= 2")
    self.model = self.model.clone(
        vocab_size=self.vocab_size + 1,
        out_size=self.vocab_size,
        causal=True,
        time_conditioning=False,
    )
    self.chain_samplers = {"ancestral": self._sampler}

  def init(self, rng, example_batch):
    x = jnp.asarray(example_batch["x"])
    return base.init_params(self.model, rng, x, jnp.zeros(x.shape[:1]), None)

  def log_probs(self, params, x, *, train=False, rng=None):
    """log p(x_l | x_{<l}) [B, L] of tokens x [B, L]."""
    inputs = jnp.concatenate([jnp.full_like(x[:, :1], self.vocab_size), x[:, :-1]], axis=1)
    logits = self.network_fn(params, None, train=train, rng=rng)(inputs, jnp.zeros(x.shape[:1]))
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, x[..., None], axis=-1)[..., 0]

  def loss(self, params, batch, rng):
    x = batch["x"].astype(jnp.int32)
    nll = -jnp.mean(self.log_probs(params, x, train=True, rng=rng))
    return nll, {"bits_per_token": nll / math.log(2)}

  def bpd(self, params, rng, x):
    del rng
    x = jnp.asarray(x).astype(jnp.int32)
    return {"bpd": -jnp.mean(self.log_probs(params, x), axis=-1) / math.log(2)}

  def _sampler(self, params, rng, num, settings, *, label=None, noise=None):
    if noise is not None or label is not None:
      raise ValueError("the autoregressive sampler takes no `noise` or `label` override")
    return _sample_jit(self, params, rng, num=num)

  def schedule(self, params=None):
    raise ValueError("method.kind='autoregressive' samples with sample.solver='ancestral' only")

  def denoiser(self, params, label=None):
    self.schedule()


@jax.jit(static_argnames=("method", "num"))
def _sample_jit(method, params, rng, *, num):
  length = method.element_shape[0]
  net = method.network_fn(params)
  bos = jnp.full((num, 1), method.vocab_size, jnp.int32)

  def step(i, x):
    inputs = jnp.concatenate([bos, x[:, :-1]], axis=1)
    logits = jax.lax.dynamic_index_in_dim(net(inputs, jnp.zeros((num,))), i, 1, keepdims=False)
    token = jax.random.categorical(jax.random.fold_in(rng, i), logits, axis=-1)
    return x.at[:, i].set(token.astype(jnp.int32))

  return jax.lax.fori_loop(0, length, step, jnp.zeros((num, length), jnp.int32))
