"""Fréchet distance of Gaussians fitted to feature sets (FID: Heusel et al. 2017, arXiv:1706.08500).

    FD = |m1 - m2|² + tr(S1) + tr(S2) - 2 tr((S1^½ S2 S1^½)^½)            (Dowson & Landau 1982)

is the squared 2-Wasserstein distance between N(m1, S1) and N(m2, S2). The feature network is any
function `features_fn(images [B, H, W, C] in [-1, 1]) -> [B, F]`: Inception-v3 pool3 gives FID
(`diffjax.metrics.inception`), the Fashion-MNIST classifier gives FD-FMNIST
(`diffjax.metrics.classifier`).

Statistics stream: `update` merges one batch into running (count, mean, centred scatter) with Chan
et al.'s pairwise formulas (1979) in float64, so 50 k samples never sit in memory and there is no
E[xxᵀ] - E[x]E[x]ᵀ cancellation. The covariance is the unbiased one (ddof = 1), as `np.cov` in the
TF FID code and pytorch-fid.

    stats_test = frechet.feature_stats(features_fn, test_images, batch_size=500)
    fd = frechet.frechet_distance(features_fn, sample_batches(), stats_test)
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Iterable, Union

import numpy as np
import scipy.linalg

FeaturesFn = Callable[[Any], Any]  # images [B, H, W, C] in [-1, 1] -> features [B, F]


@dataclasses.dataclass(frozen=True)
class GaussianStats:
  """Running moments of a feature set (float64).

  Attributes:
    count: number of feature vectors seen, N.
    mean: [F] mean.
    scatter: [F, F] centred scatter Σ (x - mean)(x - mean)ᵀ; covariance = scatter / (N - 1).
  """

  count: int
  mean: np.ndarray
  scatter: np.ndarray

  @property
  def dim(self) -> int:
    return int(self.mean.shape[0])

  @property
  def cov(self) -> np.ndarray:
    """[F, F] unbiased covariance (ddof = 1, as `np.cov`)."""
    if self.count < 2:
      raise ValueError(f"covariance needs at least 2 feature vectors, got count={self.count}")
    return self.scatter / (self.count - 1)


def empty_stats(dim: int) -> GaussianStats:
  """Statistics of no samples in dimension `dim` (the start of a stream)."""
  if int(dim) < 1:
    raise ValueError(f"dim must be >= 1, got {dim}")
  return GaussianStats(0, np.zeros(int(dim)), np.zeros((int(dim), int(dim))))


def _as_features(features: Any) -> np.ndarray:
  feats = np.asarray(features, dtype=np.float64)
  if feats.ndim != 2:
    raise ValueError(f"features must be [B, F], got shape {feats.shape}")
  if not np.all(np.isfinite(feats)):
    raise ValueError("features contain NaN or inf")
  return feats


def update(stats: GaussianStats, features: Any) -> GaussianStats:
  """Merges a batch into running statistics (Chan, Golub & LeVeque 1979, pairwise update).

  With (n_a, m_a, M_a) and the batch's (n_b, m_b, M_b), δ = m_b - m_a, n = n_a + n_b:
  m = m_a + δ n_b / n,  M = M_a + M_b + δδᵀ n_a n_b / n.

  Args:
    stats: statistics so far (`empty_stats(F)` to start).
    features: [B, F] batch of feature vectors (NumPy or jax array).

  Returns:
    New `GaussianStats` of the union (the input is not modified).
  """
  feats = _as_features(features)
  if feats.shape[1] != stats.dim:
    raise ValueError(f"features have dimension {feats.shape[1]}, statistics have {stats.dim}")
  n_b = feats.shape[0]
  if n_b == 0:
    return stats
  mean_b = feats.mean(axis=0)
  centred = feats - mean_b
  scatter_b = centred.T @ centred
  n = stats.count + n_b
  delta = mean_b - stats.mean
  mean = stats.mean + delta * (n_b / n)
  scatter = stats.scatter + scatter_b + np.outer(delta, delta) * (stats.count * n_b / n)
  return GaussianStats(n, mean, scatter)


def stats_from_features(features: Any) -> GaussianStats:
  """One-shot statistics of a [N, F] feature array."""
  feats = _as_features(features)
  return update(empty_stats(feats.shape[1]), feats)


def _batches(samples: Any, batch_size: int) -> Iterable[Any]:
  if isinstance(samples, (np.ndarray,)) or hasattr(samples, "shape"):
    if len(samples.shape) < 1:
      raise ValueError(f"samples must be an array [N, ...], got shape {samples.shape}")
    for start in range(0, samples.shape[0], batch_size):
      yield samples[start : start + batch_size]
  else:
    yield from samples


def feature_stats(
    features_fn: FeaturesFn, samples: Any, *, batch_size: int = 500, max_samples: int | None = None
) -> GaussianStats:
  """Streams `samples` through `features_fn` and accumulates Gaussian statistics.

  Args:
    features_fn: images [B, H, W, C] in [-1, 1] -> features [B, F].
    samples: an array [N, H, W, C] (cut into `batch_size` chunks) or any iterable of
      [B, H, W, C] batches (e.g. a generator that samples a model batch by batch).
    batch_size: chunk size when `samples` is an array.
    max_samples: stop after this many samples (the last batch is truncated); None = all.

  Returns:
    `GaussianStats` of the features.
  """
  if int(batch_size) < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if max_samples is not None and int(max_samples) < 2:
    raise ValueError(f"max_samples must be >= 2 or None, got {max_samples}")
  stats = None
  for batch in _batches(samples, int(batch_size)):
    if max_samples is not None:
      left = int(max_samples) - (0 if stats is None else stats.count)
      if left <= 0:
        break
      batch = batch[:left]
    feats = _as_features(features_fn(batch))
    if feats.shape[0] != len(batch):
      raise ValueError(f"features_fn returned {feats.shape[0]} rows for a batch of {len(batch)}")
    stats = update(empty_stats(feats.shape[1]) if stats is None else stats, feats)
  if stats is None or stats.count < 2:
    raise ValueError("samples must hold at least 2 images")
  return stats


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
  """tr((S1^½ S2 S1^½)^½) = Σ_i sqrt(eig_i(S1 S2)), by symmetric eigendecompositions (float64).

  S1^½ comes from `eigh(S1)` (negative round-off eigenvalues clipped to 0); the product
  S1^½ S2 S1^½ is symmetric PSD, so its eigenvalues are real and, after clipping round-off
  negatives, their square roots sum to the trace term exactly, with no complex `sqrtm`.
  """
  w1, v1 = np.linalg.eigh(cov1)
  root1 = (v1 * np.sqrt(np.clip(w1, 0.0, None))) @ v1.T
  middle = root1 @ cov2 @ root1
  eigs = np.linalg.eigvalsh((middle + middle.T) / 2.0)
  return float(np.sum(np.sqrt(np.clip(eigs, 0.0, None))))


def trace_sqrt_product_sqrtm(cov1: np.ndarray, cov2: np.ndarray, eps: float = 1e-6) -> float:
  """The same trace by `scipy.linalg.sqrtm(S1 S2)`, the TF-FID / pytorch-fid recipe.

  When the product is near-singular (non-finite root) both covariances get `eps·I` added; an
  imaginary part larger than 1e-3 of the diagonal is an error (as in pytorch-fid).
  """
  covmean = scipy.linalg.sqrtm(cov1 @ cov2)
  if not np.all(np.isfinite(covmean)):
    offset = np.eye(cov1.shape[0]) * eps
    covmean = scipy.linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f"sqrtm has imaginary component {np.max(np.abs(covmean.imag)):.3g}")
    covmean = covmean.real
  return float(np.trace(covmean))


def frechet_distance_from_moments(
    mean1: Any, cov1: Any, mean2: Any, cov2: Any, *, method: str = "eigh"
) -> float:
  """FD between N(mean1, cov1) and N(mean2, cov2) (Dowson & Landau 1982; FID eq. of Heusel 2017).

  Args:
    mean1, mean2: [F] means.
    cov1, cov2: [F, F] symmetric PSD covariances.
    method: "eigh" (symmetric eigendecompositions, default) or "sqrtm" (scipy, TF-FID recipe).

  Returns:
    |m1 - m2|² + tr(S1) + tr(S2) - 2 tr((S1^½ S2 S1^½)^½), a Python float (clipped at 0 from
    round-off).
  """
  mean1, mean2 = (np.asarray(m, dtype=np.float64) for m in (mean1, mean2))
  cov1, cov2 = (np.asarray(c, dtype=np.float64) for c in (cov1, cov2))
  f = mean1.shape[0] if mean1.ndim == 1 else -1
  for name, arr, shape in (
      ("mean1", mean1, (f,)),
      ("mean2", mean2, (f,)),
      ("cov1", cov1, (f, f)),
      ("cov2", cov2, (f, f)),
  ):
    if arr.shape != shape:
      raise ValueError(f"{name} has shape {arr.shape}, expected {shape} (means [F], covs [F, F])")
  if method == "eigh":
    tr_root = trace_sqrt_product(cov1, cov2)
  elif method == "sqrtm":
    tr_root = trace_sqrt_product_sqrtm(cov1, cov2)
  else:
    raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
  diff = mean1 - mean2
  fd = float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_root)
  return max(fd, 0.0)


def frechet_distance_from_stats(
    stats1: GaussianStats, stats2: GaussianStats, *, method: str = "eigh"
) -> float:
  """FD between the Gaussians fitted to two `GaussianStats`."""
  if stats1.dim != stats2.dim:
    raise ValueError(f"statistics have different feature dimensions {stats1.dim} / {stats2.dim}")
  return frechet_distance_from_moments(
      stats1.mean, stats1.cov, stats2.mean, stats2.cov, method=method
  )


Samples = Union[GaussianStats, Any]


def frechet_distance(
    features_fn: FeaturesFn,
    samples_a: Samples,
    samples_b: Samples,
    *,
    batch_size: int = 500,
    max_samples: int | None = None,
    method: str = "eigh",
) -> float:
  """Fréchet distance between two image sets in the feature space of `features_fn`.

  Args:
    features_fn: images [B, H, W, C] in [-1, 1] -> features [B, F]; any feature extractor.
    samples_a: an array [N, H, W, C], an iterable of batches, or precomputed `GaussianStats`.
    samples_b: the same for the second set (e.g. `load_stats` of the test split).
    batch_size: chunk size for array inputs.
    max_samples: use at most this many samples of each set.
    method: "eigh" or "sqrtm" (see `frechet_distance_from_moments`).

  Returns:
    FD as a Python float.
  """
  stats = [
      s
      if isinstance(s, GaussianStats)
      else feature_stats(features_fn, s, batch_size=batch_size, max_samples=max_samples)
      for s in (samples_a, samples_b)
  ]
  return frechet_distance_from_stats(*stats, method=method)


def save_stats(path: str, stats: GaussianStats) -> None:
  """Writes statistics to an .npz (keys count, mean, scatter; also mu/sigma as pytorch-fid)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    np.savez(
        f,
        count=np.int64(stats.count),
        mean=stats.mean,
        scatter=stats.scatter,
        mu=stats.mean,
        sigma=stats.cov,
    )


def load_stats(path: str) -> GaussianStats:
  """Reads `save_stats` output (or a pytorch-fid style .npz with mu, sigma and a count)."""
  with np.load(path) as f:
    keys = set(f.files)
    if {"count", "mean", "scatter"} <= keys:
      return GaussianStats(
          int(f["count"]), np.asarray(f["mean"], np.float64), np.asarray(f["scatter"], np.float64)
      )
    if {"mu", "sigma", "count"} <= keys:
      count = int(f["count"])
      return GaussianStats(
          count, np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64) * (count - 1)
      )
  raise ValueError(
      f"{path}: expected keys count, mean, scatter (or mu, sigma, count), got " f"{sorted(keys)}"
  )
