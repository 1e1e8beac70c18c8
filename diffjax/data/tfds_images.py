"""Any image set prepared for TFDS, read by random access with `tfds.data_source` (no TensorFlow).

`tfds.data_source` needs the data prepared in the `array_record` (or parquet) file format, e.g.
  python -c "import tensorflow_datasets as tfds; \
             tfds.builder('cifar10', data_dir=DIR).download_and_prepare(file_format='array_record')"
(preparing needs TensorFlow and network access; reading does not). Images are scaled from
{0..255} to [-1, 1] (x/127.5 - 1), NHWC; with `image_size` set they are first centre-cropped to a
square of side min(H, W) (`crop="center"`, the usual CelebA/ImageNet choice, e.g. ADM) or not
(`crop="none"`: aspect ratio changes), then resized with PIL's antialiased bicubic filter.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CROPS = ("center", "none")


def _prepare_hint(name: str, path: str | None) -> str:
  where = f", data_dir={path!r}" if path else ""
  return (
      f'Prepare it once (needs TensorFlow and network) with: python -c "import '
      f"tensorflow_datasets as tfds; tfds.builder({name!r}{where})"
      f".download_and_prepare(file_format='array_record')\", "
      f"or point --config.data.path to a TFDS data_dir that holds it in array_record format"
  )


def open_source(name: str, split: str, path: str | None):
  """`tfds.data_source(name, split=split, data_dir=path)` without downloading.

  Raises:
    FileNotFoundError: when the data are not prepared (message says how to prepare them).
    ValueError: naming `data.tfds_name` when TFDS does not know the name.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top (slow import)

  try:
    return tfds.data_source(name, split=split, data_dir=path, download=False)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f"data.tfds_name={name!r} is not a TFDS dataset") from e
  except Exception as e:  # TFDS raises several types (NotImplementedError, AssertionError, ...)
    raise FileNotFoundError(
        f"TFDS dataset {name!r} split {split!r} is not prepared for random access in "
        f"{path or 'the default TFDS data_dir (~/tensorflow_datasets)'} ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else ''}). {_prepare_hint(name, path)}"
    ) from e


def crop_resize(image: np.ndarray, image_size: int | None, crop: str) -> np.ndarray:
  """uint8 [H, W, C] -> uint8 [S, S, C]: optional centre crop to a square, then bicubic resize."""
  if image_size is None:
    return image
  h, w = image.shape[:2]
  if crop == "center":
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top : top + side, left : left + side]
  if image.shape[:2] == (image_size, image_size):
    return image
  channels = image.shape[2]
  pil = Image.fromarray(image[..., 0] if channels == 1 else image)
  out = np.asarray(pil.resize((image_size, image_size), Image.Resampling.BICUBIC))
  return out.reshape(image_size, image_size, channels)


def read_fn(
    name: str,
    split: str,
    path: str | None,
    image_size: int | None,
    crop: str,
    image_key: str,
    label_key: str | None,
):
  """(indices -> batch, num_examples, element_shape, num_classes) of a TFDS image split."""
  if crop not in CROPS:
    raise ValueError(f"data.crop must be one of {CROPS}, got {crop!r}")
  if image_size is not None and int(image_size) < 1:
    raise ValueError(f"data.image_size must be a positive int or None, got {image_size!r}")
  source = open_source(name, split, path)
  features = source.dataset_info.features
  if image_key not in features:
    raise ValueError(
        f"data.image_key={image_key!r} is not a feature of {name} "
        f"(features: {sorted(features.keys())})"
    )
  height, width, channels = features[image_key].shape
  if image_size is None and (height is None or width is None):
    raise ValueError(
        f"{name} images have no fixed size {features[image_key].shape}: set " f"data.image_size"
    )
  num_classes = 0
  if label_key is not None and label_key in features:
    num_classes = int(getattr(features[label_key], "num_classes", 0) or 0)
  use_label = num_classes > 0
  shape = (image_size, image_size, channels) if image_size else (height, width, channels)

  def read(indices: np.ndarray) -> dict[str, np.ndarray]:
    examples = [source[int(i)] for i in indices]  # per item: mocked sources lack __getitems__
    x = np.stack([crop_resize(np.asarray(e[image_key]), image_size, crop) for e in examples])
    out = {"x": x.astype(np.float32) / 127.5 - 1.0}
    if use_label:
      out["label"] = np.asarray([e[label_key] for e in examples], dtype=np.int32)
    return out

  return read, len(source), shape, num_classes
