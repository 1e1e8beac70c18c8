"""Noise-level embeddings and label dropout against closed forms written out by hand."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax.models import embeddings


class PositionalEmbeddingTest(chex.TestCase):

  @parameterized.parameters((False,), (True,))
  def test_matches_closed_form(self, endpoint):
    x = jnp.array([0.0, 0.3, 7.0, 999.0])
    out = embeddings.positional_embedding(x, 8, endpoint=endpoint)
    chex.assert_shape(out, (4, 8))
    # f_k = 10000^(-k/(K-e)), K = 4: endpoint=True makes the last frequency exactly 1e-4.
    denom = 3 if endpoint else 4
    freqs = np.array([10000.0 ** (-k / denom) for k in range(4)])
    want = np.concatenate([np.cos(np.outer(x, freqs)), np.sin(np.outer(x, freqs))], axis=1)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-4)
    if endpoint:
      self.assertAlmostEqual(freqs[-1], 1e-4)

  def test_flip_puts_sin_first(self):
    x = jnp.array([0.5, 2.0])
    a = embeddings.positional_embedding(x, 6)
    b = embeddings.positional_embedding(x, 6, flip_sin_to_cos=True)
    chex.assert_trees_all_close(b, jnp.concatenate([a[:, 3:], a[:, :3]], axis=1))
    # The first frequency is 10000^0 = 1, so channel 0 is cos(x).
    np.testing.assert_allclose(a[:, 0], np.cos(np.array([0.5, 2.0])), rtol=1e-6)

  def test_odd_width_rejected(self):
    with self.assertRaisesRegex(ValueError, "num_channels"):
      embeddings.positional_embedding(jnp.zeros(2), 5)


class FourierEmbeddingTest(chex.TestCase):

  def test_matches_closed_form_and_is_frozen(self):
    freqs = embeddings.fourier_frequencies(6, scale=16.0, seed=3)
    chex.assert_trees_all_equal(freqs, embeddings.fourier_frequencies(6, scale=16.0, seed=3))
    x = jnp.array([0.1, -0.25])
    out = embeddings.fourier_embedding(x, freqs)
    ang = 2 * math.pi * np.outer(np.asarray(x), np.asarray(freqs))
    np.testing.assert_allclose(out, np.concatenate([np.cos(ang), np.sin(ang)], 1), atol=1e-5)

  def test_frequency_scale(self):
    # Sample std of 4096 N(0, 16²) draws is 16 within 5 % (4 standard errors is 4.4 %).
    freqs = embeddings.fourier_frequencies(8192, scale=16.0)
    self.assertAlmostEqual(float(jnp.std(freqs)) / 16.0, 1.0, delta=0.05)


class LabelTest(chex.TestCase):

  def test_missing_label_is_null_and_unconditional_is_none(self):
    out = embeddings.resolve_labels(
        None, 3, num_classes=10, label_dropout=0.0, train=True, rng_fn=None
    )
    chex.assert_trees_all_equal(out, jnp.full((3,), 10, jnp.int32))
    self.assertIsNone(
        embeddings.resolve_labels(
            jnp.zeros(3, jnp.int32), 3, num_classes=0, label_dropout=0.1, train=True, rng_fn=None
        )
    )

  def test_dropout_rate_and_eval_mode(self):
    label = jnp.arange(4000) % 7
    key = jax.random.key(0)
    out = embeddings.resolve_labels(
        label, 4000, num_classes=7, label_dropout=0.3, train=True, rng_fn=lambda: key
    )
    dropped = out == 7
    # kept labels unchanged; drop fraction 0.3 ± 4 standard errors (sqrt(.21/4000) = 0.0072).
    chex.assert_trees_all_equal(jnp.where(dropped, label, out), label)
    self.assertAlmostEqual(float(dropped.mean()), 0.3, delta=0.03)
    out_eval = embeddings.resolve_labels(
        label, 4000, num_classes=7, label_dropout=0.3, train=False, rng_fn=None
    )
    chex.assert_trees_all_equal(out_eval, label)

  def test_bad_rate(self):
    with self.assertRaisesRegex(ValueError, "label_dropout"):
      embeddings.resolve_labels(
          jnp.zeros(2, jnp.int32), 2, num_classes=3, label_dropout=1.0, train=True, rng_fn=None
      )


class LookupTest(chex.TestCase):
  """embeddings.lookup: bf16 outputs, and a table gradient accumulated in float32."""

  def _module(self, lookup_fn):
    class M(nn.Module):

      @nn.compact
      def __call__(self, ids):
        return lookup_fn(ids)

    return M()

  def test_forward_equals_bf16_gather_and_gradient_equals_float64_scatter(self):
    rows, feats = 5, 3
    ids = jax.random.randint(jax.random.key(0), (4096,), 0, rows)  # ~820 repeats per row
    cot = 1.0 + jax.random.uniform(jax.random.key(1), (4096, feats))  # summed per row: ~1200

    def grads(lookup_fn):
      module = self._module(lookup_fn)
      params = module.init(jax.random.key(2), ids)
      out, vjp = jax.vjp(lambda p: module.apply(p, ids), params)
      (g,) = vjp(cot.astype(out.dtype))
      return params["params"]["emb"]["embedding"], out, g["params"]["emb"]["embedding"]

    table, out, g = grads(
        lambda i: embeddings.lookup(rows, feats, i, dtype=jnp.bfloat16, name="emb")
    )
    self.assertEqual(out.dtype, jnp.bfloat16)
    self.assertEqual(g.dtype, jnp.float32)
    np.testing.assert_array_equal(out, table.astype(jnp.bfloat16)[ids])
    want = np.zeros((rows, feats))
    np.add.at(want, np.asarray(ids), np.asarray(cot.astype(jnp.bfloat16), np.float64))
    np.testing.assert_allclose(g, want, rtol=1e-5)
    # A bfloat16 lookup (nn.Embed(dtype=bf16)) accumulates in bfloat16 and misses this bound.
    _, _, g16 = grads(
        lambda i: nn.Embed(rows, feats, dtype=jnp.bfloat16, param_dtype=jnp.float32, name="emb")(i)
    )
    self.assertGreater(np.max(np.abs(np.asarray(g16, np.float64) / want - 1)), 1e-3)
