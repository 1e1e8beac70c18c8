"""Character-level text windows (diffjax/data/text.py) on a tiny corpus, and the real package."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import numpy as np

from diffjax import data
from diffjax.data import text

FILES = {  # written out of name order: the corpus is in sorted name order
    "b_gut.txt": "Now is the winter of our discontent\nMade glorious summer by this sun of York;\n",
    "a_gut.txt": "Shall I compare thee to a summer's day?\r\nThou art more lovely\tand more "
    "temperate.\n",
    "notes.md": "ignored: does not match the pattern",
}


class VocabTest(chex.TestCase):

  def test_fixed_mapping(self):
    # Token 0 is newline; printable ASCII c maps to ord(c) - 31.
    self.assertEqual(text.VOCAB_SIZE, 96)
    self.assertEqual(text.VOCAB[0], "\n")
    sample = "Hi, you!\n~ "
    np.testing.assert_array_equal(
        text.encode(sample), [0 if c == "\n" else ord(c) - 31 for c in sample]
    )
    self.assertEqual(text.decode(text.encode(sample)), sample)
    self.assertEqual(text.decode(np.array([[41, 74], [42, 75]])), "Hi\nIj")

  def test_normalisation_and_unknown_characters(self):
    self.assertEqual(text.decode(text.encode("a\r\nb\tc")), "a\nb c")
    with self.assertRaisesRegex(ValueError, "'é'"):
      text.encode("café")


class TextSourceTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.enter_context(tempfile.TemporaryDirectory())
    for name, content in FILES.items():
      with open(os.path.join(self.dir, name), "w", newline="") as f:
        f.write(content)
    corpus = FILES["a_gut.txt"] + FILES["b_gut.txt"]
    self.corpus = corpus.replace("\r\n", "\n").replace("\t", " ")

  def _make(self, split="train", **kwargs):
    cfg = dict(
        name="shakespeare", batch_size=4, path=self.dir, seq_len=9, stride=4, test_fraction=0.25
    )
    cfg.update(kwargs)
    return data.make(cfg, seed=0, split=split)

  @parameterized.parameters("train", "test")
  def test_windows_are_slices_of_the_split(self, split):
    cut = int(np.floor(0.75 * len(self.corpus)))
    part = self.corpus[:cut] if split == "train" else self.corpus[cut:]
    starts = [s for s in range(0, len(part), 4) if s + 9 <= len(part)]  # brute force
    ds = self._make(split)
    self.assertEqual((ds.num_examples, ds.element_shape, ds.num_classes), (len(starts), (9,), 0))
    self.assertEqual(ds.vocab_size, 96)
    seen = []
    for step in range(-(-len(starts) // 4)):
      batch, ids = ds.batch(step), ds.indices(step)
      chex.assert_shape(batch["x"], (4, 9))
      chex.assert_type(batch["x"], np.int32)
      self.assertEqual(
          [text.decode(row) for row in batch["x"]], [part[starts[i] : starts[i] + 9] for i in ids]
      )
      seen.extend(ids.tolist())
    np.testing.assert_array_equal(np.sort(seen[: len(starts)]), np.arange(len(starts)))

  def test_default_stride_is_seq_len_and_splits_do_not_overlap(self):
    train, test = self._make(stride=None), self._make("test", stride=None)
    cut = int(np.floor(0.75 * len(self.corpus)))
    self.assertEqual(train.num_examples, cut // 9)
    self.assertEqual(test.num_examples, (len(self.corpus) - cut) // 9)
    train_text = {text.decode(r) for s in range(4) for r in train.batch(s)["x"]}
    self.assertTrue(all(t in self.corpus[:cut] for t in train_text))

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"data\.seq_len=500"):
      self._make(seq_len=500)
    with self.assertRaisesRegex(FileNotFoundError, "nowhere"):
      self._make(path=os.path.join(self.dir, "nowhere"))
    with self.assertRaisesRegex(FileNotFoundError, r"\*\.rst"):
      self._make(pattern="*.rst")
    with self.assertRaisesRegex(ValueError, "split"):
      self._make(split="validation")
    with self.assertRaisesRegex(ValueError, r"data\.test_fraction"):
      self._make(test_fraction=1.5)

  @absltest.skipUnless(text.default_path(), "the shakespeare package is not installed")
  def test_real_package_texts(self):
    ds = data.make(
        dict(name="shakespeare", batch_size=2, seq_len=25, stride=25), seed=0, split="train"
    )
    corpus = text.load_corpus(text.default_path(), "*_gut.txt")
    # All's Well That Ends Well comes first in name order.
    self.assertEqual(text.decode(corpus[:25]), "ALL'S WELL THAT ENDS WELL")
    self.assertEqual(ds.num_examples, int(np.floor(0.9 * len(corpus))) // 25)
    self.assertGreater(len(corpus), 5_000_000)


if __name__ == "__main__":
  absltest.main()
