r"""What FD-FMNIST values mean: the floor next to FDs of known corruptions of real images.

  python experiments/fd_fmnist/calibrate.py --classifier_dir=workdirs/fd_fmnist/classifier

Reference: the 10,000 test images (`<classifier_dir>/test_stats.npz`). Candidates: 10,000 train
images (seed-0 shuffled stream, as in train_classifier.py), the same with Gaussian noise of std
sigma added (then clipped to [-1, 1]), and 10,000 train images from classes 0-4 only (mode
dropping). Prints one markdown table row per candidate.
"""

from absl import app
from absl import flags
import numpy as np

from diffjax import data
from diffjax.metrics import classifier
from diffjax.metrics import fd_fmnist

_DIR = flags.DEFINE_string("classifier_dir", None, "train_classifier.py --out_dir", required=True)
_DATA_PATH = flags.DEFINE_string("data_path", "/usr/share/datasets/fashion-mnist/", "IDX folder")


def main(argv):
  del argv
  config, _ = classifier.load(_DIR.value)
  evaluator = fd_fmnist.Evaluator.load(_DIR.value)  # the runner's FD: float32-precision features
  ds = data.make(
      dict(
          name="fashion_mnist",
          batch_size=1000,
          path=_DATA_PATH.value,
          pad_to_32=config.image_shape[0] == 32,
      ),
      seed=0,
      split="train",
  )
  train = [ds.batch(i) for i in range(30)]
  x = np.concatenate([b["x"] for b in train[:10]])
  rows = [("train 10k (floor)", x)]
  rng = np.random.default_rng(0)
  for sigma in (0.05, 0.1, 0.2):
    rows.append(
        (
            f"train 10k + N(0, {sigma}²) noise",
            np.clip(x + sigma * rng.standard_normal(x.shape).astype(np.float32), -1, 1),
        )
    )
  all_x = np.concatenate([b["x"] for b in train])
  all_y = np.concatenate([b["label"] for b in train])
  rows.append(("train 10k, classes 0-4 only", all_x[all_y < 5][:10_000]))
  print("| candidate vs 10k test | FD-FMNIST |\n|---|---|")
  for name, images in rows:
    fd = evaluator.distance(images, batch_size=1000)
    print(f"| {name} | {fd:.4f} |", flush=True)


if __name__ == "__main__":
  app.run(main)
