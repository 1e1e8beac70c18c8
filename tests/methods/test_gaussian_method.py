"""GaussianDiffusion builds every schedule-based σ grid under the model's own schedule."""

import os

import chex
import numpy as np
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import methods
from diffjax import solvers
from diffjax.core import schedules


CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "configs", "ddpm", "toy2d.py")


class _Data:
  element_shape, num_classes = (2,), 0


class GridTest(chex.TestCase, parameterized.TestCase):

  @parameterized.parameters("uniform_t", "uniform_logsnr", "quadratic", "time_uniform", "logSNR",
                            "karras")
  def test_grid_uses_the_model_schedule(self, name):
    config = config_lib.load(CONFIG, "smoke")
    method = methods.make(config, _Data())
    got = method.sigmas(5, name)
    kwargs = {} if name == "karras" else {"schedule": schedules.make(**config.schedule)}
    np.testing.assert_array_equal(got, solvers.grid(name, 5, **kwargs))

  def test_unknown_grid_is_named(self):
    method = methods.make(config_lib.load(CONFIG, "smoke"), _Data())
    with self.assertRaisesRegex(ValueError, "'nope'"):
      method.sigmas(5, "nope")
