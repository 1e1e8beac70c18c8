"""Test set-up: 8 fake CPU devices, so sharding code is exercised on any machine (STYLE.md §7)."""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# absltest helpers (`self.create_tempdir()`) read absl flags; pytest never parses them.
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.FLAGS.mark_as_parsed()
