"""Inference modes on a trained workdir: `--mode=sample` (samples as .npz + PNG, or the decoded .txt
for text) and `--mode=pairs` (reflow couples for rectified flow)."""

from __future__ import annotations

import os

import jax
import ml_collections
import numpy as np

from diffjax import methods
from diffjax.train import experiment
from diffjax.train import progress


def sample(config: ml_collections.ConfigDict, workdir: str, devices=None) -> np.ndarray:
  """Draws `config.sample.num_samples` samples from the latest checkpoint's EMA parameters.

  Writes `<workdir>/samples/final_<step>.npz` and a PNG (text models: the decoded .txt) beside it.
  """
  exp, state, step = experiment.restore_for_inference(config, workdir, devices)
  scfg = config.sample
  samples = methods.sample_in_batches(
      exp.method, state.ema_params, jax.random.PRNGKey(scfg.seed), scfg.num_samples, scfg.batch_size
  )
  if jax.process_index() == 0:
    path = os.path.join(workdir, "samples", f"final_{step:08d}")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path + ".npz", samples=samples)
    shown = progress.save_samples(
        samples[:256], path + ".png", decode=exp.dataset.info.get("decode")
    )
    print(f"wrote {path}.npz ({samples.shape}) and {shown}")
  return samples


def pairs(config: ml_collections.ConfigDict, workdir: str, devices=None) -> str:
  """Reflow pairs (Liu et al. 2023, §2.3): `config.sample.num_samples` couples (ε, x) where x is the
  config's sampler run from the initial noise ε, with the latest checkpoint's EMA parameters.

  Writes `<workdir>/reflow/pairs_<step>.npz` with arrays eps and x, [N, ...] each (the `pairs` data
  source reads it), and returns its path. Batch i draws ε from fold_in(fold_in(seed, i), 1).
  """
  exp, state, step = experiment.restore_for_inference(config, workdir, devices)
  scfg = config.sample
  shape = tuple(exp.dataset.element_shape)
  rng = jax.random.PRNGKey(scfg.seed)
  eps, xs = [], []
  for i in range(-(-int(scfg.num_samples) // int(scfg.batch_size))):
    key = jax.random.fold_in(rng, i)
    noise = jax.random.normal(jax.random.fold_in(key, 1), (int(scfg.batch_size),) + shape)
    xs.append(
        np.asarray(
            jax.device_get(
                exp.method.sample(state.ema_params, key, int(scfg.batch_size), noise=noise)
            )
        )
    )
    eps.append(np.asarray(jax.device_get(noise)))
  n = int(scfg.num_samples)
  path = os.path.join(workdir, "reflow", f"pairs_{step:08d}.npz")
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez(path, eps=np.concatenate(eps)[:n], x=np.concatenate(xs)[:n])
    print(f"wrote {path} ({n} pairs)")
  return path
