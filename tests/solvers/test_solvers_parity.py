"""Parity with the official implementations (NVlabs/edm, crowsonkb/k-diffusion,
LuChengTHU/dpm-solver) on a fixed float64 problem: a 2-D Gaussian mixture with its exact denoiser.

The reference outputs in data/reference_parity.npz were produced by running the official sampler
functions once (tests/solvers/make_reference.py, which states the commits); the same σ grid and
initial state are fed to diffjax here, and the outputs must agree to 1e-6.
"""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import solvers
from diffjax.core import schedules
from diffjax.solvers import testing

DATA = np.load(os.path.join(os.path.dirname(__file__), "data", "reference_parity.npz"))
CASES = json.loads(str(DATA["cases_json"]))
GMM = testing.GaussianMixture(DATA["means"], DATA["stds"], DATA["weights"])


class ParityTest(parameterized.TestCase):

  def test_all_required_solvers_are_covered(self):
    pairs = {(name.split("_")[0], case["solver"]) for name, case in CASES.items()}
    for required in (
        ("edm", "heun"),
        ("kdiff", "euler"),
        ("kdiff", "heun"),
        ("kdiff", "lms"),
        ("kdiff", "dpmpp_2m"),
        ("dpm", "dpm_solver_2"),
        ("dpm", "dpm_solver_3"),
        ("dpm", "dpmpp_2m"),
        ("dpm", "dpmpp_3m"),
    ):
      self.assertIn(required, pairs)

  @parameterized.named_parameters(*[(name, name) for name in sorted(CASES)])
  def test_matches_reference(self, name):
    case = CASES[name]
    with jax.enable_x64(True):
      x_init = jnp.asarray(DATA[f"{name}/x_init"], jnp.float64)
      out = solvers.solve(
          case["solver"], GMM.denoiser, x_init, DATA[f"{name}/sigmas"], **case["options"]
      )
      chex.assert_type(out, jnp.float64)
      np.testing.assert_allclose(
          np.asarray(out), DATA[f"{name}/out"], atol=1e-6, rtol=0, err_msg=case["source"]
      )

  def test_grids_match_reference_grids(self):
    edm = DATA["edm_heun_18/sigmas"]
    np.testing.assert_allclose(solvers.grid("karras", 18, schedule=None), edm, rtol=1e-14, atol=0)
    kdiff = DATA["kdiff_euler_10/sigmas"]
    np.testing.assert_allclose(solvers.grid("karras", 10, schedule=None), kdiff, rtol=1e-12, atol=0)
    # DPM-Solver's logSNR grid on its linear VP SDE: diffjax's core schedules are float32.
    dpm = DATA["dpm_dpmpp_2m_12/sigmas"]
    vp = schedules.make("vp", beta_min=0.1, beta_max=20.0, t_min=0.0)
    np.testing.assert_allclose(
        solvers.grid("logSNR", 12, schedule=vp, t_end=1e-3, append_zero=False), dpm, rtol=2e-5
    )


class DeisParityTest(parameterized.TestCase):
  """tAB-DEIS against qsh-zh/deis `jax_deis` (data/reference_deis.npz, make_reference_deis.py).

  jax_deis integrates its coefficients with a 10⁴-point left Riemann sum and diffjax's VP schedule
  is float32, so agreement is to 1e-3, not 1e-6; ρAB-DEIS (polynomial in σ instead of t) on the
  same grid is 5e-2 away, so the check tells the time variables apart.
  """

  @parameterized.parameters(2, 3)
  def test_tab_deis_matches_jax_deis(self, order):
    ref = np.load(os.path.join(os.path.dirname(__file__), "data", "reference_deis.npz"))
    vp = schedules.make("vp", beta_min=0.1, beta_max=20.0, t_min=0.0)
    with jax.enable_x64(True):
      x_init = jnp.asarray(ref["x_init"], jnp.float64)
      tab = solvers.solve("deis", GMM.denoiser, x_init, ref["sigmas"], order=order, schedule=vp)
      rho = solvers.solve("deis", GMM.denoiser, x_init, ref["sigmas"], order=order)
    np.testing.assert_allclose(np.asarray(tab), ref[f"out_order{order}"], atol=1e-3, rtol=0)
    self.assertGreater(float(np.max(np.abs(np.asarray(rho) - ref[f"out_order{order}"]))), 1e-2)
