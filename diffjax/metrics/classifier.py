"""A small CNN classifier whose penultimate features define FD-FMNIST.

Inception weights cannot be downloaded here, so the Fréchet distance on Fashion-MNIST uses the
penultimate layer of this network, trained with diffjax itself (≥ 92 % test accuracy):

    params, info = classifier.train(data.make(data_cfg, seed=0), config, seed=0, num_steps=938)
    classifier.save(out_dir, params, config)
    config, params = classifier.load(out_dir)
    fd = frechet.frechet_distance(classifier.features_fn(params, config), samples, test_images)

Architecture (VGG-style; no batch norm, so features are a pure function of params and input):
[conv3x3(w) (GroupNorm) ReLU]×2, maxpool 2 → [conv3x3(2w) (GroupNorm) ReLU]×2, maxpool 2 →
flatten → dense(F) ReLU (= the features) → dense(num_classes). Input [B, H, W, 1] in [-1, 1],
28×28 or 32×32. The trained FD-FMNIST weights (width 24, F = 256): experiments/fd_fmnist/.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

PARAMS_FILE = "classifier_params.npz"
CONFIG_FILE = "classifier_config.json"


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
  """Architecture and optimiser settings (saved next to the parameters).

  Attributes:
    width: channels of the first conv stage (the second has 2·width).
    feature_dim: F, the penultimate (feature) layer width.
    num_classes: output classes.
    image_shape: (H, W, C) of the inputs.
    learning_rate: Adam peak learning rate (cosine decay to 0 over training).
    batch_size: training batch size.
    group_norm: GroupNorm (4 groups) after each conv; per-example, so features stay a pure
      function of one image (no batch statistics).
  """

  width: int = 24  # defaults: the FD-FMNIST network of experiments/fd_fmnist/results.md
  feature_dim: int = 256
  num_classes: int = 10
  image_shape: tuple[int, int, int] = (28, 28, 1)
  learning_rate: float = 4e-3
  batch_size: int = 256
  group_norm: bool = False

  def __post_init__(self):
    for name in ("width", "feature_dim", "batch_size"):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if int(self.num_classes) < 2:
      raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
    shape = tuple(int(s) for s in self.image_shape)
    if len(shape) != 3 or shape[0] < 4 or shape[1] < 4 or shape[2] < 1:
      raise ValueError(f"image_shape must be (H, W, C) with H, W >= 4, got {self.image_shape}")
    object.__setattr__(self, "image_shape", shape)


class CNN(nn.Module):
  """The classifier; `__call__` returns (logits [B, classes], features [B, F])."""

  width: int
  feature_dim: int
  num_classes: int
  group_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    for stage, channels in enumerate((self.width, 2 * self.width)):
      for i in range(2):
        x = nn.Conv(channels, (3, 3), name=f"conv{stage}_{i}")(x)
        if self.group_norm:
          x = nn.GroupNorm(num_groups=4, name=f"norm{stage}_{i}")(x)
        x = nn.relu(x)
      x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    features = nn.relu(nn.Dense(self.feature_dim, name="features")(x))
    return nn.Dense(self.num_classes, name="logits")(features), features


def make_module(config: ClassifierConfig) -> CNN:
  return CNN(
      width=config.width,
      feature_dim=config.feature_dim,
      num_classes=config.num_classes,
      group_norm=config.group_norm,
  )


def init(rng: jax.Array, config: ClassifierConfig) -> Any:
  """Freshly initialised parameters (a PyTree of float32 arrays)."""
  x = jnp.zeros((1, *config.image_shape), jnp.float32)
  return make_module(config).init(rng, x)["params"]


def _check_images(images: Any, config: ClassifierConfig) -> None:
  if tuple(images.shape[1:]) != config.image_shape:
    raise ValueError(
        f"images must be [B, {', '.join(map(str, config.image_shape))}], got shape "
        f"{tuple(images.shape)}"
    )


def logits(params: Any, images: jax.Array, config: ClassifierConfig = ClassifierConfig()):
  """Class logits [B, num_classes] of images [B, H, W, C] in [-1, 1]."""
  _check_images(images, config)
  return make_module(config).apply({"params": params}, images)[0]


def features(params: Any, images: jax.Array, config: ClassifierConfig = ClassifierConfig()):
  """Penultimate-layer features [B, F] (post-ReLU) of images [B, H, W, C] in [-1, 1]."""
  _check_images(images, config)
  return make_module(config).apply({"params": params}, images)[1]


def features_fn(params: Any, config: ClassifierConfig = ClassifierConfig()) -> Callable:
  """A jitted `images -> features` closure for `frechet.frechet_distance`."""
  module = make_module(config)
  apply = jax.jit(lambda p, x: module.apply({"params": p}, x)[1])

  def fn(images):
    images = jnp.asarray(images, jnp.float32)
    _check_images(images, config)
    return apply(params, images)

  return fn


def loss_fn(params: Any, batch: dict[str, jax.Array], config: ClassifierConfig):
  """Mean softmax cross-entropy and accuracy on {"x": [B, H, W, C], "label": int [B]}."""
  out = make_module(config).apply({"params": params}, batch["x"])[0]
  loss = optax.softmax_cross_entropy_with_integer_labels(out, batch["label"]).mean()
  return loss, jnp.mean(jnp.argmax(out, -1) == batch["label"])


def make_optimizer(config: ClassifierConfig, num_steps: int) -> optax.GradientTransformation:
  """Adam with cosine decay of the learning rate to 0 over `num_steps`."""
  return optax.adam(optax.cosine_decay_schedule(config.learning_rate, max(int(num_steps), 1)))


def make_train_step(config: ClassifierConfig, optimizer: optax.GradientTransformation):
  """A pure jitted step (params, opt_state, batch) -> (params, opt_state, loss, accuracy)."""

  @jax.jit
  def step(params, opt_state, batch):
    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, config)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, acc

  return step


def accuracy(
    params: Any,
    images: np.ndarray,
    labels: np.ndarray,
    config: ClassifierConfig = ClassifierConfig(),
    batch_size: int = 1000,
) -> float:
  """Top-1 accuracy over a whole array of images [N, H, W, C] and labels [N]."""
  module = make_module(config)
  predict = jax.jit(lambda p, x: jnp.argmax(module.apply({"params": p}, x)[0], -1))
  correct = 0
  for start in range(0, len(images), batch_size):
    x = jnp.asarray(images[start : start + batch_size], jnp.float32)
    _check_images(x, config)
    correct += int(np.sum(np.asarray(predict(params, x)) == labels[start : start + batch_size]))
  return correct / len(images)


def train(
    dataset: Any,
    config: ClassifierConfig,
    *,
    seed: int,
    num_steps: int,
    log_every: int = 0,
    log_fn: Callable[[str], None] = print,
) -> tuple[Any, dict]:
  """Trains the classifier on `dataset.batch(step)` batches ({"x", "label"}).

  Args:
    dataset: a `diffjax.data` Dataset (or anything with `batch(step)`) of labelled images with
      batch size `config.batch_size`.
    config: architecture and optimiser.
    seed: initialisation seed (the data order is the dataset's own seed).
    num_steps: optimiser steps.
    log_every: print a progress line every this many steps (0: never).
    log_fn: where progress lines go.

  Returns:
    (params, info) with info = {"train_loss", "train_accuracy" (means over the last 100 steps),
    "seconds"}.
  """
  if int(num_steps) < 1:
    raise ValueError(f"num_steps must be >= 1, got {num_steps}")
  params = init(jax.random.PRNGKey(seed), config)
  optimizer = make_optimizer(config, num_steps)
  opt_state = optimizer.init(params)
  step_fn = make_train_step(config, optimizer)
  start, history = time.time(), []
  for step in range(int(num_steps)):
    batch = dataset.batch(step)
    batch = {"x": jnp.asarray(batch["x"], jnp.float32), "label": jnp.asarray(batch["label"])}
    params, opt_state, loss, acc = step_fn(params, opt_state, batch)
    history.append((loss, acc))
    if log_every and (step + 1) % int(log_every) == 0:
      recent = np.asarray(jax.device_get(history[-int(log_every) :]))
      log_fn(
          f"step {step + 1}/{num_steps} loss {recent[:, 0].mean():.4f} "
          f"acc {recent[:, 1].mean():.4f} ({time.time() - start:.0f} s)"
      )
  recent = np.asarray(jax.device_get(history[-100:]))
  return params, {
      "train_loss": float(recent[:, 0].mean()),
      "train_accuracy": float(recent[:, 1].mean()),
      "seconds": time.time() - start,
  }


def save(directory: str, params: Any, config: ClassifierConfig) -> str:
  """Writes `<directory>/classifier_params.npz` ('/'-joined param paths) and the config JSON."""
  os.makedirs(directory, exist_ok=True)
  flat = {
      "/".join(str(k.key) for k in path): np.asarray(leaf)
      for path, leaf in jax.tree_util.tree_leaves_with_path(params)
  }
  with open(os.path.join(directory, PARAMS_FILE), "wb") as f:
    np.savez(f, **flat)
  with open(os.path.join(directory, CONFIG_FILE), "w") as f:
    json.dump(dataclasses.asdict(config), f, indent=2)
  return directory


def load(directory: str) -> tuple[ClassifierConfig, Any]:
  """Reads `save` output: (config, params), checking every array's name and shape.

  Raises:
    FileNotFoundError: when the directory lacks the files (how to make them is in the message).
    ValueError: naming missing, unexpected or mis-shaped arrays.
  """
  params_path = os.path.join(directory, PARAMS_FILE)
  config_path = os.path.join(directory, CONFIG_FILE)
  for path in (params_path, config_path):
    if not os.path.isfile(path):
      raise FileNotFoundError(
          f"{path} not found; train the classifier with "
          f"`python experiments/fd_fmnist/train_classifier.py --out_dir=DIR`"
      )
  with open(config_path) as f:
    config = ClassifierConfig(**json.load(f))
  abstract = jax.eval_shape(lambda: init(jax.random.PRNGKey(0), config))
  with np.load(params_path) as f:
    stored = {k: f[k] for k in f.files}
  leaves, expected = [], set()
  for path, leaf in jax.tree_util.tree_leaves_with_path(abstract):
    name = "/".join(str(k.key) for k in path)
    expected.add(name)
    if name not in stored:
      raise ValueError(f"{params_path}: missing array {name!r}")
    if stored[name].shape != leaf.shape:
      raise ValueError(
          f"{params_path}: {name!r} has shape {stored[name].shape}, expected " f"{leaf.shape}"
      )
    leaves.append(jnp.asarray(stored[name], leaf.dtype))
  extra = sorted(set(stored) - expected)
  if extra:
    raise ValueError(f"{params_path}: unexpected arrays {extra}")
  return config, jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(abstract), leaves)
