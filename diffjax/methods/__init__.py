"""Method families the training loop drives; `methods.make(config, dataset)` picks one by `method.kind`.

The protocol is `base.Method`; sampling for every Method is `sampling.sample`.
"""

from diffjax.methods import autoregressive
from diffjax.methods import blurring_diffusion
from diffjax.methods import classifier
from diffjax.methods import cold
from diffjax.methods import consistency
from diffjax.methods import ctm
from diffjax.methods import discrete
from diffjax.methods import dsbm
from diffjax.methods import gaussian
from diffjax.methods import ihdm
from diffjax.methods import interpolant
from diffjax.methods import meanflow
from diffjax.methods import ot_cfm
from diffjax.methods import progressive
from diffjax.methods import shortcut
from diffjax.methods import vdm
from diffjax.methods.base import Method
from diffjax.methods.sampling import sample_in_batches

__all__ = ["METHODS", "Method", "make", "sample_in_batches"]

METHODS = {
    "gaussian": gaussian.GaussianDiffusion,
    "vdm": vdm.VDM,
    "discrete": discrete.Discrete,
    "autoregressive": autoregressive.Autoregressive,
    "consistency": consistency.Consistency,
    "ctm": ctm.CTM,
    "progressive_distillation": progressive.ProgressiveDistillation,
    "meanflow": meanflow.MeanFlow,
    "shortcut": shortcut.Shortcut,
    "ot_cfm": ot_cfm.MinibatchOTFlow,
    "interpolant": interpolant.StochasticInterpolant,
    "dsbm": dsbm.DSBM,
    "noisy_classifier": classifier.NoisyClassifier,  # classifier guidance
    "cold": cold.ColdDiffusion,
    "ihdm": ihdm.IHDM,
    "blurring": blurring_diffusion.BlurringDiffusion,
}


def make(config, dataset) -> Method:
  """The Method that `config.method.kind` names, for data like `dataset` (shape, classes)."""
  kind = config.method.kind
  if kind not in METHODS:
    raise ValueError(f"method.kind={kind!r}: expected one of {sorted(METHODS)}")
  return METHODS[kind](
      config, element_shape=tuple(dataset.element_shape), num_classes=int(dataset.num_classes)
  )
