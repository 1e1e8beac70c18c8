"""TFDS text sets as byte tokens (diffjax/data/tfds_text.py), on tfds.testing.mock_data (LM1B)."""

import chex
import numpy as np
import tensorflow_datasets as tfds

from diffjax import data
from diffjax.data import tfds_text


class TfdsTextTest(chex.TestCase):

  def test_encode_decode(self):
    x = tfds_text.encode(["héllo", b"ab", "toolongtext"], 6)
    np.testing.assert_array_equal(x[1], [97, 98, 0, 0, 0, 0])
    np.testing.assert_array_equal(x[0], list("héllo".encode("utf-8"))[:6])
    self.assertEqual(tfds_text.decode(x[2]), "toolon")
    self.assertEqual(tfds_text.decode(x[:2]), "héllo\nab")

  def test_lm1b_mock(self):
    cfg = dict(name="tfds_text", tfds_name="lm1b", batch_size=4, seq_len=12)
    with tfds.testing.mock_data(num_examples=8):
      ds = data.make(cfg, seed=0, split="train")
      batch = ds.batch(0)
      source = tfds.data_source("lm1b", split="train")
      want = tfds_text.encode([source[int(i)]["text"] for i in ds.indices(0)], 12)
    self.assertEqual((batch["x"].shape, batch["x"].dtype), ((4, 12), np.int32))
    np.testing.assert_array_equal(batch["x"], want)
    self.assertEqual((ds.num_examples, ds.vocab_size), (8, 256))

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, "data.tfds_name"):
      data.make(dict(name="tfds_text", batch_size=2), seed=0)
    with tfds.testing.mock_data(num_examples=8), self.assertRaisesRegex(ValueError, "text_key"):
      data.make(dict(name="tfds_text", tfds_name="lm1b", batch_size=2, text_key="x"), seed=0)
