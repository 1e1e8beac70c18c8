r"""diffjax command line: train, evaluate or sample one config in one workdir.

  python -m diffjax.main --config=configs/edm/toy2d.py:smoke --workdir=/tmp/edm_toy --mode=train
  python -m diffjax.main --config=configs/edm/fashion_mnist.py --config.optim.lr=2e-4 --workdir=DIR

Everything but the three flags is a config override (`--config.train.num_steps=1000`); overrides of
keys the config does not have, or of the wrong type, stop with a message naming the key. Rerunning
with the same `--workdir` resumes from its latest checkpoint.
"""

from __future__ import annotations

import jax
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from diffjax.train import evaluate
from diffjax.train import inference
from diffjax.train import loop

MODES = {"train": loop.train_and_evaluate, "eval": evaluate.evaluate, "sample": inference.sample,
         "pairs": inference.pairs}

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, `path.py` or `path.py:arg`.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and samples.")
_MODE = flags.DEFINE_enum("mode", "train", sorted(MODES), "What to do with the config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config.runtime.distributed:
    jax.distributed.initialize()  # the launcher (SLURM, TPU pod, ...) provides the coordinates
  logging.info("jax %s, %d processes, devices: %s", jax.__version__, jax.process_count(), jax.devices())
  MODES[_MODE.value](config, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
