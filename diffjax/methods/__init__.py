"""Method families the training loop drives; `methods.make(config, dataset)` picks one by `method.kind`.

The protocol is `base.Method`; sampling for every Method is `sampling.sample`.
"""

from diffjax.methods import classifier
from diffjax.methods import cold
from diffjax.methods import gaussian
from diffjax.methods import vdm
from diffjax.methods.base import Method
from diffjax.methods.sampling import sample_in_batches

__all__ = ["METHODS", "Method", "make", "sample_in_batches"]

METHODS = {"gaussian": gaussian.GaussianDiffusion, "vdm": vdm.VDM}
METHODS["noisy_classifier"] = classifier.NoisyClassifier  # classifier guidance (issue 16)
METHODS["cold"] = cold.ColdDiffusion  # Cold Diffusion, blur and mask (issue 16)


def make(config, dataset) -> Method:
  """The Method that `config.method.kind` names, for data like `dataset` (shape, classes)."""
  kind = config.method.kind
  if kind not in METHODS:
    raise ValueError(f"method.kind={kind!r}: expected one of {sorted(METHODS)}")
  return METHODS[kind](
      config, element_shape=tuple(dataset.element_shape), num_classes=int(dataset.num_classes)
  )
