"""Model tests are dominated by XLA:CPU compiles of tiny networks: skip LLVM's expensive passes.

Effective when the models tests start the JAX backend (e.g. `pytest tests/models`); harmless
otherwise. It halves this directory's run time on 2 cores; numerics are unaffected at our
tolerances.
"""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
).strip()
