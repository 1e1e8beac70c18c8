"""TFDS image sets through `tfds.data_source`, offline with `tfds.testing.mock_data`."""

import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import numpy as np
import tensorflow_datasets as tfds

from diffjax import data
from diffjax.data import tfds_images


def _cfg(**kwargs):
  return dict(dict(name="tfds", batch_size=4), **kwargs)


class TfdsSourceTest(chex.TestCase):

  @parameterized.parameters(
      ("train", dict(tfds_name="cifar10")), ("test", dict(name="tfds:cifar10"))
  )
  def test_cifar10_batches_are_the_scaled_examples(self, split, cfg):
    with tfds.testing.mock_data(num_examples=10):
      ds = data.make(_cfg(**cfg), seed=1, split=split)
      source = tfds.data_source("cifar10", split=split)
      self.assertEqual((ds.num_examples, ds.num_classes, ds.element_shape), (10, 10, (32, 32, 3)))
      seen = []
      for step in range(5):
        batch, ids = ds.batch(step), ds.indices(step)
        chex.assert_shape([batch["x"], batch["label"]], [(4, 32, 32, 3), (4,)])
        chex.assert_type([batch["x"], batch["label"]], [np.float32, np.int32])
        want = np.stack([source[int(i)]["image"] for i in ids]).astype(np.float32) / 127.5 - 1
        np.testing.assert_allclose(batch["x"], want, atol=1e-6)
        np.testing.assert_array_equal(batch["label"], [source[int(i)]["label"] for i in ids])
        seen.extend(ids.tolist())
      for epoch in range(2):  # 5 steps x 4 = 2 epochs of 10
        np.testing.assert_array_equal(np.sort(seen[10 * epoch : 10 * epoch + 10]), np.arange(10))
      # Host shards union to the global batch.
      halves = [
          data.make(_cfg(**cfg), seed=1, split=split, process_index=p, process_count=2)
          for p in range(2)
      ]
      np.testing.assert_array_equal(
          np.concatenate([h.batch(3)["x"] for h in halves]), ds.batch(3)["x"]
      )

  def test_grey_images_resized_up(self):
    with tfds.testing.mock_data(num_examples=6):
      ds = data.make(_cfg(tfds_name="mnist", image_size=32), seed=0)
      x = ds.batch(0)["x"]
    chex.assert_shape(x, (4, 32, 32, 1))
    self.assertEqual(ds.element_shape, (32, 32, 1))
    self.assertTrue(np.all((x >= -1) & (x <= 1)))

  def test_variable_size_images_need_image_size(self):
    with tfds.testing.mock_data(num_examples=6):
      with self.assertRaisesRegex(ValueError, r"data\.image_size"):
        data.make(_cfg(tfds_name="imagenet2012"), seed=0, split="validation")
      ds = data.make(_cfg(tfds_name="imagenet2012", image_size=8), seed=0, split="validation")
      batch = ds.batch(1)
    chex.assert_shape([batch["x"], batch["label"]], [(4, 8, 8, 3), (4,)])
    self.assertEqual(ds.num_classes, 1000)

  def test_unlabelled_set_and_other_resolution(self):
    with tfds.testing.mock_data(num_examples=5):
      ds = data.make(_cfg(tfds_name="celeb_a", batch_size=2), seed=0)  # 218x178, no "label"
      batch = ds.batch(0)
      self.assertEqual((ds.element_shape, ds.num_classes), ((218, 178, 3), 0))
      self.assertNotIn("label", batch)
      chex.assert_shape(batch["x"], (2, 218, 178, 3))
      ds = data.make(_cfg(tfds_name="celeb_a", batch_size=2, image_size=16), seed=0)
      chex.assert_shape(ds.batch(0)["x"], (2, 16, 16, 3))

  def test_unprepared_data_say_how_to_prepare(self):
    empty = self.enter_context(tempfile.TemporaryDirectory())
    with self.assertRaisesRegex(
        FileNotFoundError, r"cifar10(.|\n)*download_and_prepare" r"(.|\n)*array_record"
    ):
      data.make(_cfg(tfds_name="cifar10", path=empty), seed=0)

  def test_bad_names_and_options(self):
    with self.assertRaisesRegex(ValueError, r"data\.tfds_name"):
      data.make(_cfg(), seed=0)
    with self.assertRaisesRegex(ValueError, r"data\.tfds_name"):
      data.make(_cfg(tfds_name="no_such_dataset_xyz"), seed=0)
    with tfds.testing.mock_data(num_examples=2):
      with self.assertRaisesRegex(ValueError, r"data\.crop"):
        data.make(_cfg(tfds_name="cifar10", crop="edge"), seed=0)
      with self.assertRaisesRegex(ValueError, r"data\.image_key"):
        data.make(_cfg(tfds_name="cifar10", image_key="img"), seed=0)


class CropResizeTest(chex.TestCase):

  def test_center_crop_keeps_the_middle_square(self):
    image = np.full((6, 10, 3), 255, np.uint8)  # margins of 2 columns are 255
    middle = np.arange(6 * 6 * 3, dtype=np.uint8).reshape(6, 6, 3)
    image[:, 2:8] = middle
    np.testing.assert_array_equal(tfds_images.crop_resize(image, 6, "center"), middle)
    tall = np.swapaxes(image, 0, 1)  # 10x6: crops rows
    np.testing.assert_array_equal(
        tfds_images.crop_resize(tall, 6, "center"), np.swapaxes(middle, 0, 1)
    )
    # Resizing the crop never sees the margins: a constant middle stays constant.
    image[:, 2:8] = 40
    np.testing.assert_array_equal(tfds_images.crop_resize(image, 3, "center"), 40)
    self.assertGreater(tfds_images.crop_resize(image, 3, "none").max(), 40)  # margins leak in

  def test_no_size_is_identity_and_grey_keeps_channel(self):
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 1), dtype=np.uint8)
    np.testing.assert_array_equal(tfds_images.crop_resize(image, None, "center"), image)
    chex.assert_shape(tfds_images.crop_resize(image, 4, "center"), (4, 4, 1))


if __name__ == "__main__":
  absltest.main()
