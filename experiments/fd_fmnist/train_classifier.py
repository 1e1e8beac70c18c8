r"""Trains the FD-FMNIST feature classifier and measures the train-vs-test FD floor (issue 5).

  python experiments/fd_fmnist/train_classifier.py --out_dir=workdirs/fd_fmnist_classifier

Writes <out_dir>/classifier_params.npz + classifier_config.json (load with
`diffjax.metrics.classifier.load`), <out_dir>/test_stats.npz (feature statistics of the 10,000
test images, `diffjax.metrics.frechet.load_stats`) and <out_dir>/summary.json. Protocol of the
floor: the first `--num_fd` images of the seed-0 shuffled train stream (batches of 1000) vs the
whole test split, features of the trained classifier, FD by `frechet.frechet_distance_from_stats`.
"""

import json
import os
import time

from absl import app
from absl import flags
import numpy as np

from diffjax import data
from diffjax.metrics import classifier
from diffjax.metrics import frechet

_DATA_PATH = flags.DEFINE_string(
    "data_path",
    "/usr/share/datasets/fashion-mnist/",
    "folder with the four Fashion-MNIST IDX files",
)
_OUT_DIR = flags.DEFINE_string(
    "out_dir", None, "where the weights and statistics go", required=True
)
_EPOCHS = flags.DEFINE_float("epochs", 4.0, "training epochs over the 60,000 train images")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "training batch size")
_WIDTH = flags.DEFINE_integer("width", 24, "channels of the first conv stage")
_FEATURE_DIM = flags.DEFINE_integer("feature_dim", 256, "penultimate feature width")
_LR = flags.DEFINE_float("learning_rate", 4e-3, "Adam peak learning rate (cosine decay)")
_GROUP_NORM = flags.DEFINE_bool("group_norm", False, "GroupNorm after each conv")
_PAD_TO_32 = flags.DEFINE_bool("pad_to_32", False, "train on 32x32 padded images")
_SEED = flags.DEFINE_integer("seed", 0, "initialisation and data-order seed")
_NUM_FD = flags.DEFINE_integer("num_fd", 10_000, "train images in the FD floor")


def _dataset(batch_size, split, seed):
  cfg = dict(
      name="fashion_mnist", batch_size=batch_size, path=_DATA_PATH.value, pad_to_32=_PAD_TO_32.value
  )
  return data.make(cfg, seed=seed, split=split)


def main(argv):
  del argv
  side = 32 if _PAD_TO_32.value else 28
  config = classifier.ClassifierConfig(
      width=_WIDTH.value,
      feature_dim=_FEATURE_DIM.value,
      image_shape=(side, side, 1),
      learning_rate=_LR.value,
      batch_size=_BATCH_SIZE.value,
      group_norm=_GROUP_NORM.value,
  )
  train_ds = _dataset(config.batch_size, "train", _SEED.value)
  num_steps = int(round(_EPOCHS.value * train_ds.num_examples / config.batch_size))
  print(f"training {config} for {num_steps} steps", flush=True)
  params, info = classifier.train(
      train_ds,
      config,
      seed=_SEED.value,
      num_steps=num_steps,
      log_every=50,
      log_fn=lambda s: print(s, flush=True),
  )
  classifier.save(_OUT_DIR.value, params, config)

  test_ds = _dataset(1000, "test", 0)
  test = [test_ds.batch(i) for i in range(test_ds.num_examples // 1000)]  # one epoch = all 10k
  test_x = np.concatenate([b["x"] for b in test])
  test_y = np.concatenate([b["label"] for b in test])
  test_acc = classifier.accuracy(params, test_x, test_y, config)
  print(f"test accuracy {test_acc:.4f} ({info['seconds']:.0f} s training)", flush=True)

  start = time.time()
  feats = classifier.features_fn(params, config)
  test_stats = frechet.feature_stats(feats, test_x, batch_size=1000)
  frechet.save_stats(os.path.join(_OUT_DIR.value, "test_stats.npz"), test_stats)
  fd_train = _dataset(1000, "train", 0)
  train_batches = (fd_train.batch(i)["x"] for i in range(-(-_NUM_FD.value // 1000)))
  train_stats = frechet.feature_stats(feats, train_batches, max_samples=_NUM_FD.value)
  floor = frechet.frechet_distance_from_stats(train_stats, test_stats)
  floor_sqrtm = frechet.frechet_distance_from_stats(train_stats, test_stats, method="sqrtm")
  # A second, disjoint train subset: the train-vs-train spread at the same sample size.
  other = (fd_train.batch(i)["x"] for i in range(10, 10 + -(-_NUM_FD.value // 1000)))
  train2_stats = frechet.feature_stats(feats, other, max_samples=_NUM_FD.value)
  train_train = frechet.frechet_distance_from_stats(train_stats, train2_stats)
  summary = dict(
      test_accuracy=test_acc,
      fd_train_vs_test=floor,
      fd_train_vs_test_sqrtm=floor_sqrtm,
      fd_train_vs_train=train_train,
      num_fd=_NUM_FD.value,
      num_steps=num_steps,
      fd_seconds=time.time() - start,
      **info,
  )
  summary["config"] = dict(
      width=config.width,
      feature_dim=config.feature_dim,
      image_shape=list(config.image_shape),
      batch_size=config.batch_size,
      learning_rate=config.learning_rate,
      group_norm=config.group_norm,
      epochs=_EPOCHS.value,
  )
  with open(os.path.join(_OUT_DIR.value, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)
  print(json.dumps(summary, indent=2), flush=True)


if __name__ == "__main__":
  app.run(main)
