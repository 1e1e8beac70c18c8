"""Test set-up: 8 fake CPU devices, so sharding code is exercised on any machine (STYLE.md §7)."""

import os
import tempfile

# Tests are dominated by XLA:CPU compiles of tiny networks: skip LLVM's expensive passes (halves
# the models tests' time on 2 cores; numerics are unaffected at the tests' tolerances).
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=8"
    + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# A persistent compilation cache shared by the test processes (xdist workers, CLI subprocesses): the
# smoke configs compile the same train steps several times (train, then resume), and CPU compiles
# of U-Net gradients take tens of seconds. Keys include the HLO, so stale entries are never used.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "diffjax_test_jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# absltest helpers (`self.create_tempdir()`) read absl flags; pytest never parses them.
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.FLAGS.mark_as_parsed()


# The heaviest tests (whole runner runs, ~10–50 CPU-s each) go first, so that with `-n 2
# --dist worksteal` the cheap ones fill in around them instead of leaving one core idle at the end.
_HEAVY_FIRST = ("FullRunTest", "KillTest", "CliLogTest", "test_vdm.py", "test_augment_wiring.py")


def pytest_collection_modifyitems(config, items):
  del config
  items.sort(key=lambda item: not any(h in item.nodeid for h in _HEAVY_FIRST))
