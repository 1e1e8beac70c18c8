"""The data contract (diffjax/data/base.py): determinism, resume, shards, epochs, errors."""

import os
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax.numpy as jnp
import ml_collections
import numpy as np

from diffjax import data
from diffjax.data import base
from diffjax.data import idx

_TMP = tempfile.mkdtemp(prefix="diffjax_data_sharding_")


def _tiny_fashion_dir() -> str:
  path = os.path.join(_TMP, "fashion")
  if not os.path.isdir(path):
    os.makedirs(path)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 13), ("t10k", 6)):
      idx.write_idx(
          os.path.join(path, f"{prefix}-images-idx3-ubyte.gz"),
          rng.integers(0, 256, (n, 5, 5), dtype=np.uint8),
      )
      idx.write_idx(
          os.path.join(path, f"{prefix}-labels-idx1-ubyte.gz"),
          rng.integers(0, 10, (n,), dtype=np.uint8),
      )
  return path


def _tiny_text_dir() -> str:
  path = os.path.join(_TMP, "text")
  if not os.path.isdir(path):
    os.makedirs(path)
    with open(os.path.join(path, "play_gut.txt"), "w") as f:
      f.write("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind\n" * 3)
  return path


# One config per source kind; batch_size 8 is divisible by 1, 2, 4 and 8 processes.
CONFIGS = {
    "checkerboard": dict(name="checkerboard"),
    "swiss_roll": dict(name="swiss_roll"),
    "gmm": dict(name="gmm", dim=3, num_components=4, covariance="full"),
    "arrays": dict(
        name="arrays", x=np.arange(22 * 3, dtype=np.float32).reshape(22, 3), label=np.arange(22) % 5
    ),
    "fashion_mnist": dict(name="fashion_mnist", path=None, pad_to_32=True),
    "shakespeare": dict(name="shakespeare", path=None, seq_len=7, stride=3, test_fraction=0.25),
}


def _make(kind, batch_size=8, seed=0, **kwargs):
  cfg = dict(CONFIGS[kind], batch_size=batch_size)
  if kind == "fashion_mnist":
    cfg["path"] = _tiny_fashion_dir()
  if kind == "shakespeare":
    cfg["path"] = _tiny_text_dir()
  return data.make(cfg, seed=seed, **kwargs)


def _assert_batches_equal(a, b):
  assert set(a) == set(b), (set(a), set(b))
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])


class ContractTest(chex.TestCase):

  @parameterized.named_parameters(*[(k, k) for k in CONFIGS])
  def test_fresh_instances_give_identical_batches(self, kind):
    # Resume: a new instance (as after a restart) must reproduce batch(step) exactly.
    for split in ("train", "test"):
      first, second = _make(kind, split=split), _make(kind, split=split)
      for step in (0, 1, 5, 123):
        _assert_batches_equal(first.batch(step), second.batch(step))
      # Reading in any order gives the same batches (no iterator state).
      later = second.batch(123)
      _assert_batches_equal(_make(kind, split=split).batch(123), later)

  @parameterized.named_parameters(*[(k, k) for k in CONFIGS])
  def test_steps_seeds_and_splits_differ(self, kind):
    ds = _make(kind)
    self.assertFalse(np.array_equal(ds.batch(0)["x"], ds.batch(1)["x"]))
    self.assertFalse(np.array_equal(ds.batch(0)["x"], _make(kind, seed=1).batch(0)["x"]))
    if kind != "arrays":  # arrays: the same rows for every split (only the order may differ)
      self.assertFalse(np.array_equal(ds.batch(0)["x"], _make(kind, split="test").batch(0)["x"]))

  @parameterized.named_parameters(*[(k, k) for k in CONFIGS])
  def test_host_shards_union_to_global_batch(self, kind):
    full = _make(kind).batch(7)
    for count in (2, 4, 8):
      shards = [_make(kind, process_index=p, process_count=count).batch(7) for p in range(count)]
      for shard in shards:
        chex.assert_tree_shape_prefix(shard, (8 // count,))
      _assert_batches_equal({k: np.concatenate([s[k] for s in shards]) for k in full}, full)

  @parameterized.named_parameters(*[(k, k) for k in CONFIGS])
  def test_shapes_dtypes_and_metadata(self, kind):
    ds = _make(kind, batch_size=4, process_count=2, process_index=1)
    batch = ds.batch(2)
    self.assertEqual(ds.batch_size, 2)
    self.assertEqual(ds.global_batch_size, 4)
    chex.assert_shape(batch["x"], (2, *ds.element_shape))
    expected_dtype = np.int32 if kind == "shakespeare" else np.float32
    chex.assert_type(batch["x"], expected_dtype)
    if ds.num_classes:
      chex.assert_shape(batch["label"], (2,))
      chex.assert_type(batch["label"], np.int32)
      self.assertTrue(np.all((batch["label"] >= 0) & (batch["label"] < ds.num_classes)))
    else:
      self.assertNotIn("label", batch)
    infinite = kind in ("checkerboard", "swiss_roll", "gmm")
    self.assertEqual(ds.num_examples is None, infinite)

  def test_config_dict_is_accepted(self):
    want = data.make(dict(name="rings", batch_size=4), seed=3).batch(2)
    cfg = dict(name="rings", batch_size=4, split="train")
    for config in (ml_collections.ConfigDict(cfg), ml_collections.FrozenConfigDict(cfg)):
      _assert_batches_equal(data.make(config, seed=3).batch(2), want)

  def test_step_may_be_a_numpy_or_jax_integer(self):
    ds = _make("arrays")
    for step in (np.int64(3), jnp.asarray(3), jnp.asarray(3, jnp.uint32)):
      _assert_batches_equal(ds.batch(step), ds.batch(3))
    for bad in (1.5, jnp.asarray(1.0), True):
      with self.assertRaisesRegex(ValueError, "step"):
        ds.batch(bad)


class EpochTest(chex.TestCase):

  @parameterized.parameters((10, 4, 1), (10, 4, 2), (12, 4, 4), (3, 8, 2), (7, 7, 7), (1, 2, 1))
  def test_every_example_once_per_epoch(self, n, batch_size, count):
    # x = example id, so the stream of ids is read off the batches of all hosts.
    cfg = dict(name="arrays", x=np.arange(n, dtype=np.float32)[:, None], batch_size=batch_size)
    num_epochs = 4
    steps = -(-num_epochs * n // batch_size)
    stream = []
    for step in range(steps):
      rows = [
          data.make(cfg, seed=5, process_index=p, process_count=count).batch(step)["x"][:, 0]
          for p in range(count)
      ]
      stream.extend(np.concatenate(rows).astype(int).tolist())
    stream = np.asarray(stream[: num_epochs * n])
    orders = stream.reshape(num_epochs, n)
    for order in orders:
      np.testing.assert_array_equal(np.sort(order), np.arange(n))
    if n >= 7:  # epochs are shuffled differently (7! orders: a repeat would be a bug)
      self.assertGreater(len({tuple(o) for o in orders}), 1)
      self.assertFalse(np.array_equal(orders[0], np.arange(n)))

  def test_epoch_position_matches_formula(self):
    # epoch = step*B // N: the first row of step s is position s*B of epoch s*B // N.
    n, b = 10, 4
    for step in range(6):
      e, offset = divmod(step * b, n)
      want = base.epoch_permutation(2, "train", e, n)[offset]
      self.assertEqual(base.global_indices(2, "train", step, b, n)[0], want)

  def test_host_shards_are_disjoint(self):
    cfg = dict(name="arrays", x=np.arange(64, dtype=np.float32)[:, None], batch_size=16)
    shards = [data.make(cfg, seed=0, process_index=p, process_count=4) for p in range(4)]
    for step in range(8):
      ids = np.concatenate([s.indices(step) for s in shards])
      self.assertLen(np.unique(ids), 16)

  def test_no_shuffle_reads_in_order(self):
    cfg = dict(
        name="arrays", x=np.arange(5, dtype=np.float32)[:, None], batch_size=3, shuffle=False
    )
    ds = data.make(cfg, seed=0)
    np.testing.assert_array_equal(ds.batch(1)["x"][:, 0], [3, 4, 0])


class ErrorTest(chex.TestCase):

  def test_unknown_name(self):
    with self.assertRaisesRegex(ValueError, r"data\.name='nope'.*known"):
      data.make(dict(name="nope", batch_size=4), seed=0)

  def test_unknown_key_names_it(self):
    with self.assertRaisesRegex(ValueError, r"data\.dimm"):
      data.make(dict(name="gmm", batch_size=4, dimm=3), seed=0)

  def test_missing_batch_size(self):
    with self.assertRaisesRegex(ValueError, r"data\.batch_size"):
      data.make(dict(name="rings"), seed=0)

  @parameterized.parameters((6, 4), (0, 1), (-8, 2), (2.0, 1), (True, 1))
  def test_bad_batch_size_names_it(self, batch_size, count):
    with self.assertRaisesRegex(ValueError, r"data\.batch_size"):
      data.make(dict(name="rings", batch_size=batch_size), seed=0, process_count=count)

  def test_bad_step_process_and_seed(self):
    ds = data.make(dict(name="rings", batch_size=4), seed=0)
    with self.assertRaisesRegex(ValueError, "step"):
      ds.batch(-1)
    with self.assertRaisesRegex(ValueError, "process_index"):
      data.make(dict(name="rings", batch_size=4), seed=0, process_index=2, process_count=2)
    with self.assertRaisesRegex(ValueError, "seed"):
      data.make(dict(name="rings", batch_size=4), seed=-1)

  def test_missing_required_key(self):
    with self.assertRaisesRegex(ValueError, r"data\.x"):
      data.make(dict(name="arrays", batch_size=4), seed=0)

  def test_unknown_attribute(self):
    ds = data.make(dict(name="rings", batch_size=4), seed=0)
    with self.assertRaises(AttributeError):
      _ = ds.mixture


if __name__ == "__main__":
  absltest.main()
