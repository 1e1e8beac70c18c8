"""FD-FMNIST: the Fréchet distance of generated images to the Fashion-MNIST test set, in the
penultimate features of the diffjax classifier (protocol: experiments/fd_fmnist/results.md).

    evaluator = fd_fmnist.Evaluator.load("workdirs/fd_fmnist/classifier")
    fd = evaluator.distance(samples)          # samples [N, 32, 32, 1] or [N, 28, 28, 1] in [-1, 1]

Generated images may be the 32×32 zero-padded layout of `config_lib.fashion_mnist(pad_to_32=True)`
(padding is -1, two pixels each side, `data/fashion_mnist.py`); they are centre-cropped to the
classifier's 28×28. Features are computed at float32 matmul/conv precision ("highest"), so that a
GPU (TF32 by default) gives the features the CPU-made test statistics were computed with.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

import jax
import numpy as np

from diffjax.metrics import classifier
from diffjax.metrics import frechet

TEST_STATS_FILE = "test_stats.npz"


def center_crop(images: Any, shape: tuple[int, int]) -> Any:
  """Centre crop of NHWC images to (H, W) = shape; ValueError when the images are smaller or the
  margins are odd (the 28→32 padding of Fashion-MNIST is 2 pixels each side)."""
  h, w = images.shape[1:3]
  th, tw = shape
  if (h, w) == (th, tw):
    return images
  if h < th or w < tw or (h - th) % 2 or (w - tw) % 2:
    raise ValueError(f"images of size {h}x{w} cannot be centre-cropped to {th}x{tw}")
  dh, dw = (h - th) // 2, (w - tw) // 2
  return images[:, dh : dh + th, dw : dw + tw]


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """Classifier features and the reference (test-set) statistics of one FD-FMNIST protocol."""

  features_fn: Callable[[Any], Any]
  reference: frechet.GaussianStats
  image_shape: tuple[int, int, int]

  @classmethod
  def load(cls, directory: str) -> "Evaluator":
    """From `experiments/fd_fmnist/train_classifier.py --out_dir=directory` output."""
    config, params = classifier.load(directory)
    stats_path = os.path.join(directory, TEST_STATS_FILE)
    if not os.path.isfile(stats_path):
      raise FileNotFoundError(
          f"{stats_path} not found: eval.fd_classifier_dir={directory!r} must "
          "hold train_classifier.py's output"
      )
    features = classifier.features_fn(params, config)

    def fn(images):
      with jax.default_matmul_precision("highest"):
        return features(center_crop(images, config.image_shape[:2]))

    return cls(fn, frechet.load_stats(stats_path), config.image_shape)

  def distance(self, samples: Any, batch_size: int = 500) -> float:
    """FD of `samples` ([N, H, W, C] array or an iterable of batches) to the test statistics."""
    if np.ndim(samples) == 4 and samples.shape[-1] != self.image_shape[-1]:
      raise ValueError(
          f"samples have {samples.shape[-1]} channels; the classifier takes "
          f"{self.image_shape[-1]}"
      )
    stats = frechet.feature_stats(self.features_fn, samples, batch_size=batch_size)
    return float(frechet.frechet_distance_from_stats(stats, self.reference))
