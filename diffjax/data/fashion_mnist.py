"""Fashion-MNIST (Xiao et al. 2017, arXiv:1708.07747) from the IDX files of Debian's package.

`apt-get install -y dataset-fashion-mnist` (`make fashion-mnist`) installs
/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz: 60,000 training
and 10,000 test 28x28 grey images in 10 classes. Images are scaled from {0..255} to [-1, 1]
(x/127.5 - 1), NHWC [B, 28, 28, 1], optionally padded with -1 (the background) to 32x32.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from diffjax.data import idx

DEFAULT_PATH = "/usr/share/datasets/fashion-mnist/"
FILES = {  # split -> (images, labels), as the Debian package names them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NUM_CLASSES = 10
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _find(path: str, stem: str) -> str:
  for name in (stem + ".gz", stem):
    candidate = os.path.join(path, name)
    if os.path.isfile(candidate):
      return candidate
  raise FileNotFoundError(
      f"Fashion-MNIST file {os.path.join(path, stem + '.gz')} not found. Install the Debian "
      f"package with `make fashion-mnist` (= `apt-get install -y dataset-fashion-mnist`, as root; "
      f"it installs into {DEFAULT_PATH}), or point to a folder with the four IDX files with "
      f"--config.data.path=DIR"
  )


@functools.lru_cache(maxsize=4)
def load(path: str = DEFAULT_PATH, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """The raw split: (uint8 images [N, 28, 28], int32 labels [N]), read-only, memoised.

  Raises:
    FileNotFoundError: naming the missing file and how to install it.
    ValueError: for an unknown split or inconsistent files.
  """
  if split not in FILES:
    raise ValueError(f"Fashion-MNIST split must be one of {sorted(FILES)}, got {split!r}")
  images_file, labels_file = (_find(path, stem) for stem in FILES[split])
  images, labels = idx.read_idx(images_file), idx.read_idx(labels_file)
  if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != images.shape[:1]:
    raise ValueError(
        f"{images_file} / {labels_file}: expected uint8 [N, H, W] images and [N] "
        f"labels, got {images.dtype} {images.shape} and {labels.shape}"
    )
  labels = labels.astype(np.int32)
  if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
    raise ValueError(f"{labels_file}: labels outside 0..{NUM_CLASSES - 1}")
  images.flags.writeable = False
  labels.flags.writeable = False
  return images, labels


def to_model_range(images: np.ndarray, pad_to_32: bool = False) -> np.ndarray:
  """uint8 [B, H, W] -> float32 [B, H', W', 1] in [-1, 1] (x/127.5 - 1), padded by 2 with -1."""
  x = images.astype(np.float32) / 127.5 - 1.0
  if pad_to_32:
    x = np.pad(x, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)
  return x[..., None]


def read_fn(path: str, split: str, pad_to_32: bool):
  """(indices [n] -> {"x": float32 [n, H, W, 1], "label": int32 [n]}, num_examples, (H, W, 1))."""
  images, labels = load(os.path.abspath(path), split)

  def read(indices: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": to_model_range(images[indices], pad_to_32), "label": labels[indices]}

  pad = 4 if pad_to_32 else 0
  return read, images.shape[0], (images.shape[1] + pad, images.shape[2] + pad, 1)


def write_fake(directory: str, num_examples: int = 32, seed: int = 0) -> str:
  """Random uint8 images and labels as the four Debian IDX files in `directory` (both splits), so
  that Fashion-MNIST configs run (smoke tests, demos) where the data set is not installed."""
  rng = np.random.default_rng(seed)
  os.makedirs(directory, exist_ok=True)
  for prefix in ("train", "t10k"):
    idx.write_idx(
        os.path.join(directory, f"{prefix}-images-idx3-ubyte.gz"),
        rng.integers(0, 256, (num_examples, 28, 28), dtype=np.uint8),
    )
    idx.write_idx(
        os.path.join(directory, f"{prefix}-labels-idx1-ubyte.gz"),
        rng.integers(0, 10, (num_examples,), dtype=np.uint8),
    )
  return directory
