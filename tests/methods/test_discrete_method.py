"""The Discrete and Autoregressive Methods and the token Transformer on tiny shapes.

* The autoregressive likelihood is normalised: Σ over all 4^3 sequences of 2^(−L·bpd) = 1, and
  the sampler's empirical law matches it (exact answers for the baseline, no bound involved).
* The token Transformer: causal attention ignores the future, time_conditioning=False ignores t,
  the rotary embedding preserves norms and makes scores depend on relative positions only.
* Config errors name the field.
"""

import itertools

import chex
import pytest
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import methods
from diffjax import models
from diffjax.core import discrete_brute as bf
from diffjax.models import token_transformer

TINY = dict(hidden_size=16, depth=1, num_heads=2, cond_dim=8, freq_dim=8, dropout=0.0)


class _Data:
  element_shape = (3,)
  num_classes = 0


def _config(method, schedule=None):
  config = ml_collections.ConfigDict()
  config.method = method
  config.schedule = schedule or dict(kind="loglinear", eps=1e-3)
  config.model = config_lib.token_transformer(**TINY)
  config.sample = config_lib.sampler("ancestral", 4, "uniform")
  return config


def _random_params(method, x):
  module = method.model
  return models.random_variables(module, x, jnp.ones(x.shape[:1]), seed=3)["params"]


class AutoregressiveTest(chex.TestCase):

  def _law(self):
    method = methods.make(_config(dict(kind="autoregressive", vocab_size=bf.V)), _Data())
    seqs = jnp.asarray(list(itertools.product(range(bf.V), repeat=bf.L)))
    params = _random_params(method, seqs)
    bpd = np.asarray(method.bpd(params, None, seqs)["bpd"])
    return method, params, 2.0 ** (-bf.L * bpd)

  def test_likelihood_normalised(self):
    _, _, probs = self._law()
    self.assertAlmostEqual(float(probs.sum()), 1.0, places=5)
    self.assertGreater(bf.tv(probs, np.full(len(probs), 1 / len(probs))), 0.05)  # not uniform

  @pytest.mark.slow
  def test_sampler_law(self):
    method, params, probs = self._law()
    samples = np.asarray(method.sample(params, jax.random.PRNGKey(0), 20_000))
    idx = np.ravel_multi_index(tuple(samples.T), (bf.V,) * bf.L)
    emp = np.bincount(idx, minlength=len(probs)) / len(samples)
    self.assertLess(bf.tv(emp, probs), 0.035)


class DiscreteMethodTest(chex.TestCase, parameterized.TestCase):

  @pytest.mark.slow  # the configs' smoke tests trace every process's loss and sampler
  @parameterized.parameters(
      ("mdlm", "absorbing", "ancestral"),
      ("sedd", "uniform", "tweedie"),
      ("d3pm", "absorbing", "ancestral"),
      ("dfm", "uniform", "euler"),
  )
  def test_loss_bpd_and_samples(self, process, graph, solver):
    schedule = dict(kind="loglinear", eps=0.0) if process == "d3pm" else None
    if process == "dfm":
      schedule = dict(kind="polynomial", exponent=1.0)
    config = _config(
        dict(kind="discrete", process=process, graph=graph, vocab_size=bf.V, num_steps=10),
        schedule,
    )
    method = methods.make(config, _Data())
    x = jnp.asarray([[0, 1, 2], [3, 3, 0]])
    params = method.init(jax.random.PRNGKey(0), {"x": x})
    loss, _ = method.loss(params, {"x": x}, jax.random.PRNGKey(1))
    bpd = method.bpd(params, jax.random.PRNGKey(2), x)["bpd"]
    self.assertTrue(np.isfinite(float(loss)) and bool(jnp.all(jnp.isfinite(bpd))))
    samples = method.sample(params, jax.random.PRNGKey(3), 5, solver=solver)
    self.assertEqual((samples.shape, samples.dtype), ((5, 3), jnp.int32))
    self.assertTrue(bool(jnp.all((samples >= 0) & (samples < bf.V))))

  def test_errors_name_the_field(self):
    cases = [
        (dict(kind="discrete", process="nope", vocab_size=4), None, "method.process"),
        (dict(kind="discrete", process="mdlm", graph="uniform", vocab_size=4), None, "SUBS"),
        (dict(kind="discrete", process="d3pm", vocab_size=4), None, "schedule.eps"),
        (dict(kind="discrete", process="dfm", vocab_size=4), None, "polynomial"),
        (dict(kind="discrete", process="sedd"), None, "method.vocab_size"),
        (dict(kind="discrete", process="sedd", vocab_size=4, typo=1), None, "typo"),
        (dict(kind="discrete", vocab_size=4), dict(kind="cosine"), "schedule.kind"),
    ]
    for method_cfg, schedule, pattern in cases:
      with self.subTest(pattern=pattern), self.assertRaisesRegex(ValueError, pattern):
        methods.make(_config(method_cfg, schedule), _Data())
    method = methods.make(_config(dict(kind="discrete", vocab_size=4)), _Data())
    with self.assertRaisesRegex(ValueError, "sample.solver"):
      method.sample(None, jax.random.PRNGKey(0), 2, solver="heun")

  def test_token_methods_declare_no_denoiser(self):
    """has_denoiser is False, and denoiser() then refuses in one line naming sample.solver."""
    for cfg in (dict(kind="discrete", vocab_size=4), dict(kind="autoregressive", vocab_size=4)):
      method = methods.make(_config(cfg), _Data())
      self.assertFalse(method.has_denoiser)
      with self.assertRaisesRegex(ValueError, "sample.solver"):
        method.denoiser(None)


class TokenTransformerTest(chex.TestCase):

  def _module(self, **kw):
    return token_transformer.TokenTransformer(vocab_size=6, out_size=5, **{**TINY, **kw})

  def test_causal_and_time_conditioning(self):
    x = jnp.asarray([[1, 2, 3, 4, 5], [0, 1, 0, 1, 0]])
    t = jnp.asarray([0.3, 0.7])
    causal = self._module(causal=True)
    params = models.random_variables(causal, x, t)
    out = causal.apply(params, x, t, train=False)
    self.assertEqual((out.shape, out.dtype), ((2, 5, 5), jnp.float32))
    changed = causal.apply(params, x.at[:, 3:].set(2), t, train=False)
    np.testing.assert_allclose(out[:, :3], changed[:, :3], atol=1e-5)
    self.assertGreater(float(jnp.max(jnp.abs(out[:, 3:] - changed[:, 3:]))), 1e-3)
    timeless = self._module(time_conditioning=False)
    params = models.random_variables(timeless, x, t)
    np.testing.assert_allclose(
        timeless.apply(params, x, t, train=False),
        timeless.apply(params, x, 1 - t, train=False),
        atol=1e-6,
    )
    timed = self._module()
    params = models.random_variables(timed, x, t)
    diff = timed.apply(params, x, t, train=False) - timed.apply(params, x, 1 - t, train=False)
    self.assertGreater(float(jnp.max(jnp.abs(diff))), 1e-3)

  def test_rotary_is_relative(self):
    rng = np.random.default_rng(0)
    q, k = (jnp.asarray(rng.standard_normal((1, 1, 1, 8)), jnp.float32) for _ in range(2))

    # The same q and k at positions (i, j) give a score that depends on i − j only.
    def score(i, j):
      qs = token_transformer.rotary(jnp.tile(q, (1, 8, 1, 1)))[0, i, 0]
      ks = token_transformer.rotary(jnp.tile(k, (1, 8, 1, 1)))[0, j, 0]
      return float(qs @ ks)

    self.assertAlmostEqual(score(5, 2), score(3, 0), places=4)
    self.assertNotAlmostEqual(score(5, 2), score(5, 3), places=3)
    rotated = token_transformer.rotary(jnp.tile(q, (1, 8, 1, 1)))
    np.testing.assert_allclose(jnp.linalg.norm(rotated, axis=-1), jnp.linalg.norm(q), rtol=1e-5)

  def test_vocab_constant(self):
    from diffjax.data import text  # pylint: disable=g-import-not-at-top

    self.assertEqual(config_lib.SHAKESPEARE_VOCAB, text.VOCAB_SIZE)
