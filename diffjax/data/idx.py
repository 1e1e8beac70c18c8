"""Reader and writer of the IDX format of MNIST and Fashion-MNIST (LeCun et al., MNIST web page).

Layout: two zero bytes, one type byte, one byte with the number of dimensions n, then n big-endian
uint32 sizes, then the values in C order, big-endian. Files may be gzip-compressed (`.gz`).
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

# IDX type byte -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _open(path: str | os.PathLike, mode: str):
  return gzip.open(path, mode) if str(path).endswith(".gz") else open(path, mode)


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """Reads an IDX file (optionally .gz) into a native-endian array.

  Raises:
    FileNotFoundError: naming the path when it does not exist.
    ValueError: naming the path when the header or the size is wrong.
  """
  with _open(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic {raw[:4]!r})")
  dtype, ndim = IDX_DTYPES[raw[2]], raw[3]
  header = 4 + 4 * ndim
  if len(raw) < header:
    raise ValueError(f"{path}: truncated IDX header")
  shape = struct.unpack(f">{ndim}I", raw[4:header])
  expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(raw) - header != expected:
    raise ValueError(
        f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the "
        f"file has {len(raw) - header}"
    )
  data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
  return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
  """Writes `array` as an IDX file (gzip-compressed when the path ends in .gz)."""
  array = np.asarray(array)
  codes = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
  native = array.dtype.newbyteorder("=")
  if native not in codes:
    raise ValueError(
        f"IDX cannot store dtype {array.dtype}; use one of " f"{sorted(str(d) for d in codes)}"
    )
  if array.ndim > 255:
    raise ValueError(f"IDX stores at most 255 dimensions, got {array.ndim}")
  header = bytes([0, 0, codes[native], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  with _open(path, "wb") as f:
    f.write(header + np.ascontiguousarray(array, dtype=native.newbyteorder(">")).tobytes())
