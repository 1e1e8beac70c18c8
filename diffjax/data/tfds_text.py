"""Any TFDS text set (LM1B, ...) as byte tokens, read by random access with `tfds.data_source`.

Each example's text feature (`text_key`, "text" for LM1B) is encoded as UTF-8 bytes (vocabulary
256: token = byte value), cut to `seq_len` bytes and padded with byte 0 (NUL, which plain text
does not contain), so one example is one sequence, as MDLM trains LM1B (one sentence per example,
padded; MDLM uses the bert-base-uncased tokenizer, which needs packages diffjax does not depend on:
bits per byte here are not comparable with its perplexities). The data must be prepared in the
array_record format (`tfds_images.open_source` says how).
"""

from __future__ import annotations

import numpy as np

from diffjax.data import tfds_images

VOCAB_SIZE = 256
PAD = 0


def encode(texts, seq_len: int) -> np.ndarray:
  """str | bytes [n] -> int32 [n, seq_len]: UTF-8 bytes, cut to seq_len, padded with PAD."""
  out = np.full((len(texts), seq_len), PAD, np.int32)
  for i, s in enumerate(texts):
    raw = s if isinstance(s, bytes) else str(s).encode("utf-8")
    row = np.frombuffer(raw[:seq_len], np.uint8)
    out[i, : len(row)] = row
  return out


def decode(ids: np.ndarray) -> str:
  """int [..., L] -> str, padding dropped, rows joined by newlines."""
  ids = np.asarray(ids)
  if ids.ndim > 1:
    return "\n".join(decode(r) for r in ids.reshape(-1, ids.shape[-1]))
  return bytes(int(i) for i in ids if i != PAD).decode("utf-8", errors="replace")


def read_fn(name: str, split: str, path: str | None, seq_len: int, text_key: str):
  """(indices -> {"x": int32 [n, seq_len]}, num_examples) of a TFDS text split."""
  if int(seq_len) < 1:
    raise ValueError(f"data.seq_len must be >= 1, got {seq_len}")
  source = tfds_images.open_source(name, split, path)
  features = source.dataset_info.features
  if text_key not in features:
    raise ValueError(
        f"data.text_key={text_key!r} is not a feature of {name} (features: {sorted(features.keys())})"
    )

  def read(indices: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": encode([source[int(i)][text_key] for i in indices], int(seq_len))}

  return read, len(source)
