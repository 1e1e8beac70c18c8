"""IDX reader/writer and the Fashion-MNIST source (synthetic files; real ones when installed)."""

import gzip
import os
import struct
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import numpy as np

from diffjax import data
from diffjax.data import fashion_mnist
from diffjax.data import idx

REAL = all(
    os.path.isfile(os.path.join(fashion_mnist.DEFAULT_PATH, stem + ".gz"))
    for pair in fashion_mnist.FILES.values()
    for stem in pair
)


class IdxTest(chex.TestCase):

  def _tmp(self, name):
    return os.path.join(self.enter_context(tempfile.TemporaryDirectory()), name)

  def test_reads_hand_written_bytes(self):
    # Header per the IDX spec, written by hand: magic 0x00000803 (ubyte, 3 dims), sizes 2, 2, 3.
    values = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    raw = b"\x00\x00\x08\x03" + b"\x00\x00\x00\x02" * 2 + b"\x00\x00\x00\x03" + bytes(range(12))
    path = self._tmp("a-idx3-ubyte")
    with open(path, "wb") as f:
      f.write(raw)
    np.testing.assert_array_equal(idx.read_idx(path), values)
    # int32 big-endian: 0x0C type; 258 = 0x00000102, -2 = 0xFFFFFFFE.
    raw = b"\x00\x00\x0c\x01\x00\x00\x00\x02" + b"\x00\x00\x01\x02" + b"\xff\xff\xff\xfe"
    path = self._tmp("b-idx1-int.gz")
    with gzip.open(path, "wb") as f:
      f.write(raw)
    got = idx.read_idx(path)
    np.testing.assert_array_equal(got, [258, -2])
    self.assertTrue(got.dtype.isnative)

  @parameterized.product(
      dtype=["uint8", "int8", "int16", "int32", "float32", "float64"],
      shape=[(7,), (3, 4, 5), (0, 2)],
      gz=[True, False],
  )
  def test_round_trip(self, dtype, shape, gz):
    rng = np.random.default_rng(0)
    array = (rng.standard_normal(shape) * 100).astype(dtype)
    path = self._tmp("x-idx" + (".gz" if gz else ""))
    idx.write_idx(path, array)
    back = idx.read_idx(path)
    self.assertEqual(back.dtype, array.dtype)
    np.testing.assert_array_equal(back, array)
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
      header = f.read(4 + 4 * len(shape))
    self.assertEqual(struct.unpack(f">{len(shape)}I", header[4:]), shape)

  def test_bad_files_name_the_path(self):
    path = self._tmp("bad-idx")
    with open(path, "wb") as f:
      f.write(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")  # says 5 bytes, has 3
    with self.assertRaisesRegex(ValueError, "bad-idx.*shape"):
      idx.read_idx(path)
    with open(path, "wb") as f:
      f.write(b"PK\x03\x04")
    with self.assertRaisesRegex(ValueError, "bad-idx.*not an IDX"):
      idx.read_idx(path)
    with self.assertRaisesRegex(ValueError, "IDX cannot store"):
      idx.write_idx(path, np.zeros(2, np.int64))


class FashionMnistTest(chex.TestCase):

  def setUp(self):
    super().setUp()
    self.dir = self.enter_context(tempfile.TemporaryDirectory())
    rng = np.random.default_rng(1)
    self.images, self.labels = {}, {}
    for split, n in (("train", 9), ("test", 4)):
      images_stem, labels_stem = fashion_mnist.FILES[split]
      self.images[split] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
      self.images[split][0, 0, 0], self.images[split][0, 0, 1] = 0, 255  # both range ends
      self.labels[split] = rng.integers(0, 10, (n,), dtype=np.uint8)
      idx.write_idx(os.path.join(self.dir, images_stem + ".gz"), self.images[split])
      # Uncompressed labels: the reader accepts both names.
      idx.write_idx(os.path.join(self.dir, labels_stem), self.labels[split])

  @parameterized.parameters("train", "test")
  def test_batches_are_the_scaled_files(self, split):
    cfg = dict(name="fashion_mnist", batch_size=6, path=self.dir)
    ds = data.make(cfg, seed=3, split=split)
    n = len(self.labels[split])
    self.assertEqual((ds.num_examples, ds.num_classes, ds.element_shape), (n, 10, (28, 28, 1)))
    seen = []
    for step in range(4):
      batch, ids = ds.batch(step), ds.indices(step)
      chex.assert_shape(batch["x"], (6, 28, 28, 1))
      chex.assert_type([batch["x"], batch["label"]], [np.float32, np.int32])
      np.testing.assert_allclose(
          batch["x"][..., 0], self.images[split][ids] / 127.5 - 1.0, atol=1e-6
      )
      np.testing.assert_array_equal(batch["label"], self.labels[split][ids])
      seen.extend(ids.tolist())
    np.testing.assert_array_equal(np.sort(seen[:n]), np.arange(n))  # first epoch covers all
    full = np.concatenate([ds.batch(s)["x"] for s in range(4)])
    self.assertEqual((full.min(), full.max()), (-1.0, 1.0))

  def test_pad_to_32(self):
    ds = data.make(dict(name="fashion_mnist", batch_size=2, path=self.dir, pad_to_32=True), seed=0)
    x = ds.batch(0)["x"]
    chex.assert_shape(x, (2, 32, 32, 1))
    self.assertEqual(ds.element_shape, (32, 32, 1))
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    np.testing.assert_array_equal(x[:, border], -1.0)
    np.testing.assert_allclose(
        x[:, 2:30, 2:30, 0], self.images["train"][ds.indices(0)] / 127.5 - 1.0, atol=1e-6
    )

  def test_missing_files_say_how_to_get_them(self):
    missing = os.path.join(self.dir, "nowhere")
    with self.assertRaisesRegex(
        FileNotFoundError,
        r"nowhere/train-images-idx3-ubyte\.gz(.|\n)*make fashion-mnist"
        r"(.|\n)*--config\.data\.path",
    ):
      data.make(dict(name="fashion_mnist", batch_size=2, path=missing), seed=0)
    with self.assertRaisesRegex(ValueError, "split"):
      data.make(dict(name="fashion_mnist", batch_size=2, path=self.dir), seed=0, split="valid")

  @absltest.skipUnless(REAL, "dataset-fashion-mnist is not installed (make fashion-mnist)")
  def test_real_files(self):
    # Published facts: 60k/10k images of 28x28, 6,000/1,000 per class (Xiao et al. 2017), and
    # the usual normalisation constants mean 0.2860, std 0.3530 of the training pixels in [0, 1].
    for split, n in (("train", 60_000), ("test", 10_000)):
      images, labels = fashion_mnist.load(fashion_mnist.DEFAULT_PATH, split)
      chex.assert_shape(images, (n, 28, 28))
      np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, n // 10))
      self.assertEqual(labels[0], 9)  # both splits open with an ankle boot
    images, _ = fashion_mnist.load(fashion_mnist.DEFAULT_PATH, "train")
    self.assertAlmostEqual(images.mean() / 255, 0.2860, delta=5e-4)
    self.assertAlmostEqual(images.std() / 255, 0.3530, delta=5e-4)
    ds = data.make(dict(name="fashion_mnist", batch_size=8, pad_to_32=True), seed=0, split="test")
    self.assertEqual((ds.num_examples, ds.element_shape), (10_000, (32, 32, 1)))
    x = ds.batch(0)["x"]
    self.assertTrue(np.all((x >= -1) & (x <= 1)))


if __name__ == "__main__":
  absltest.main()


class WriteFakeTest(chex.TestCase):

  def test_fake_files_read_back(self):
    directory = fashion_mnist.write_fake(self.create_tempdir().full_path, num_examples=5, seed=3)
    for split in ("train", "test"):
      images, labels = fashion_mnist.load(directory, split)
      self.assertEqual(images.shape, (5, 28, 28))
      self.assertEqual(images.dtype, np.uint8)
      self.assertTrue(np.all(labels < 10))
