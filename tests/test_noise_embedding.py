"""The noise-level input of every shipped MLP config is resolved by its embedding, not aliased.

Random Fourier features cos/sin(2π f c) with f ~ N(0, 16²) suit a noise input c spanning a few units
(EDM's c_noise = ¼ ln σ̃ spans 2.65 units: at most ~90 turns of the fastest feature over the
range). Fed the DDPM-style 1000·t they turn ~3·10⁴ times, so neighbouring times get unrelated
features: the flow-matching, OT-CFM, MeanFlow and shortcut toys shipped that way, and the I-CFM
toy learned a field 10× off its exact one (W2 0.97 to eight Gaussians against the exact field's
0.41). Each config's loss runs once with the embeddings recording what they receive.
"""

import glob
import os

import jax
import numpy as np
import pytest

from diffjax import config_lib
from diffjax.models import embeddings
from diffjax.train import experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# EDM's own NCSN++ input (c_noise over σ ∈ [0.002, 80] with scale-16 frequencies) turns ~92 times.
MAX_TURNS = 150.0


def _mlp_configs():
  out = []
  for path in sorted(glob.glob(os.path.join(REPO, "configs", "*", "*.py"))):
    config = config_lib.load(path, "smoke")
    if config.get("model", {}).get("kind") == "mlp":
      out.append(os.path.relpath(path, REPO))
  return out


@pytest.mark.parametrize("path", _mlp_configs())
def test_fourier_noise_embedding_is_not_aliased(path, monkeypatch):
  seen = []  # (min, max of the embedded values, max |frequency| or None for positional)

  def record(kind):
    original = getattr(embeddings, kind)

    def wrapped(x, *args, **kwargs):
      if kind == "fourier_embedding":
        jax.debug.callback(
            lambda a, f: seen.append((float(a.min()), float(a.max()), float(abs(f).max()))),
            x,
            args[0],
        )
      else:
        jax.debug.callback(lambda a: seen.append((float(a.min()), float(a.max()), None)), x)
      return original(x, *args, **kwargs)

    monkeypatch.setattr(embeddings, kind, wrapped)

  # The coupling does not change the noise levels; OT-CFM's host assignment (a pure_callback)
  # beside the recording callback aborts the CPU runtime, so its configs run with the product one.
  arg = "smoke,coupling=independent" if "/ot_cfm/" in path else "smoke"
  config = config_lib.load(os.path.join(REPO, path), arg)
  config.data.batch_size = 256  # enough draws of t to see most of the loss's range
  exp = experiment.Experiment(config)
  state = exp.init_state()
  record("fourier_embedding")
  record("positional_embedding")
  loss = jax.jit(exp.method.loss_with_state)(
      state.params, state.method_state, exp.global_batch(0), jax.random.PRNGKey(0)
  )
  jax.block_until_ready(loss)
  jax.effects_barrier()
  assert seen, f"{path}: the loss called no noise embedding"
  lo, hi = min(s[0] for s in seen), max(s[1] for s in seen)
  freqs = [s[2] for s in seen if s[2] is not None]
  if freqs:
    turns = max(freqs) * (hi - lo)
    assert turns <= MAX_TURNS, (
        f"{path}: noise_cond spans [{lo:.3g}, {hi:.3g}] and the Fourier features' fastest frequency"
        f" is {max(freqs):.3g}: {turns:.3g} turns over the range (limit {MAX_TURNS}); use"
        " model.embedding='positional' or feed the network t or c_noise"
    )
