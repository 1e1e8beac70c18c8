"""What a running job shows: a progress line, TensorBoard scalars, and pictures of samples."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
from absl import logging


class Progress:
  """Progress line `step s/N | loss … | steps/s | ETA` and TensorBoard scalars (process 0 only)."""

  def __init__(self, workdir: str, num_steps: int, first_step: int, enabled: bool = True):
    self.num_steps, self.enabled = num_steps, enabled
    self._t0, self._step0 = time.perf_counter(), first_step
    self._first_seconds = None
    self._writer = None
    if enabled:
      self._writer = scalar_writer(os.path.join(workdir, "tb"))

  def first_step_done(self, step: int) -> None:
    """Called when the run's first step has finished (compiled and run): from here on the clock
    times steps only, so the first rate and ETA do not count the compile time."""
    now = time.perf_counter()
    self._first_seconds = now - self._t0
    self._t0, self._step0 = now, step

  def log(self, step: int, scalars: dict) -> str:
    now = time.perf_counter()
    scalars = {k: float(v) for k, v in scalars.items()}
    parts = [f"step {step}/{self.num_steps}"]
    parts += [f"{k} {v:.4g}" for k, v in scalars.items()]
    rate = None
    if step > self._step0:
      rate = (step - self._step0) / max(now - self._t0, 1e-9)
      self._t0, self._step0 = now, step
      eta = (self.num_steps - step) / rate if rate > 0 else math.inf
      parts += [f"{rate:.2f} steps/s", f"ETA {format_seconds(eta)}"]
    elif self._first_seconds is not None:  # nothing timed but the first step yet
      parts.append(f"first step {self._first_seconds:.1f}s (compile)")
    line = " | ".join(parts)
    if self.enabled:
      logging.info("%s", line)
      for k, v in scalars.items():
        self._writer.add_scalar(f"train/{k}", v, step)
      if rate is not None:
        self._writer.add_scalar("train/steps_per_sec", rate, step)
    return line

  def scalars(self, prefix: str, step: int, values: dict) -> None:
    if self.enabled:
      for k, v in values.items():
        self._writer.add_scalar(f"{prefix}/{k}", float(v), step)
      self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()


class JsonlScalarWriter:
  """`tb/scalars.jsonl`, one `{"tag", "value", "step"}` per line: the scalars' home where
  tensorboardX is not installed (a declared dependency, but some accelerator images lack it), so
  that a missing viewer package never stops a training run."""

  def __init__(self, logdir: str):
    os.makedirs(logdir, exist_ok=True)
    self._f = open(os.path.join(logdir, "scalars.jsonl"), "a")

  def add_scalar(self, tag: str, value: float, step: int) -> None:
    self._f.write(json.dumps({"tag": tag, "value": float(value), "step": int(step)}) + "\n")

  def flush(self) -> None:
    self._f.flush()

  def close(self) -> None:
    self._f.close()


def scalar_writer(logdir: str):
  """A tensorboardX `SummaryWriter` on `logdir`, or a `JsonlScalarWriter` (with a warning) where
  tensorboardX cannot be imported."""
  try:
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    logging.warning("tensorboardX unavailable (%s): scalars go to %s/scalars.jsonl", e, logdir)
    return JsonlScalarWriter(logdir)
  return SummaryWriter(logdir, flush_secs=30)


def format_seconds(s: float) -> str:
  if not math.isfinite(s):
    return "?"
  s = int(s)
  return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def save_samples(
    samples: np.ndarray, path: str, reference: np.ndarray | None = None, decode=None
) -> str:
  """Saves what a person looks at: a scatter plot for 2-D points (over `reference` in grey), a
  grid for images, the decoded text for token sequences.

  Args:
    samples: `[N, 2]` points or `[N, H, W, C]` images in [-1, 1], or integer `[N, L]` token ids.
    path: output file (.png; token samples go to the same name with .txt).
    reference: optional `[M, 2]` data points drawn underneath.
    decode: token ids `[L]` -> str (the text dataset's `info["decode"]`), for token samples.

  Returns:
    the path written.
  """
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  samples = np.asarray(samples)
  if np.issubdtype(samples.dtype, np.integer):
    if samples.ndim != 2 or decode is None:
      raise ValueError(
          f"integer samples of shape {samples.shape}: expected token ids [N, L] and a decode fn"
      )
    path = os.path.splitext(path)[0] + ".txt"
    sep = "\n" + "-" * 80 + "\n"  # samples are multi-line text
    with open(path, "w", encoding="utf-8") as f:
      f.write(sep.join(decode(row) for row in samples) + "\n")
    return path
  samples = samples.astype(np.float32)
  if samples.ndim == 2:
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if reference is not None:
      ax.scatter(*np.asarray(reference)[:, :2].T, s=1, c="0.75", label="data")
    ax.scatter(*samples[:, :2].T, s=1, c="C0", label="samples")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=8)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
  elif samples.ndim == 4:
    from PIL import Image  # pylint: disable=g-import-not-at-top

    Image.fromarray(image_grid(samples)).save(path)
  else:
    raise ValueError(f"samples of shape {samples.shape}: expected [N, 2] or [N, H, W, C]")
  return path


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 1) -> np.ndarray:
  """`[N, H, W, C]` in [-1, 1] -> one uint8 `[rows·(H+pad)+pad, cols·(W+pad)+pad, C or 3]` picture."""
  n, h, w, c = images.shape
  cols = cols or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
  pixels = np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)
  for i in range(n):
    r, k = divmod(i, cols)
    grid[
        pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w
    ] = pixels[i]
  return grid[..., 0] if c == 1 else grid


def write_json(path: str, obj) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
