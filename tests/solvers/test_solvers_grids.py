"""Grids that every caller builds with the model's schedule; DDIM's sub-sequence grid (`ddim`)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import solvers
from diffjax.core import schedules
from diffjax.solvers import grids


def _ddpm_sigmas(timesteps, num_timesteps=1000, beta_start=1e-4, beta_end=0.02):
  """σ̃ = sqrt((1 − ᾱ_i)/ᾱ_i) at 1-based steps i of Ho et al.'s linear β chain, then 0, by plain
  float arithmetic (β_j re-derived, ᾱ as a running product): an answer independent of core's
  DiscreteChain."""
  abar, prod = [], 1.0
  for j in range(num_timesteps):
    prod *= 1.0 - (beta_start + (beta_end - beta_start) * j / (num_timesteps - 1))
    abar.append(prod)
  return [math.sqrt((1.0 - abar[i - 1]) / abar[i - 1]) for i in timesteps] + [0.0]


# The options a grid cannot do without.
_REQUIRED = {"array": dict(sigmas=[3.0, 1.0, 0.5, 0.0]), "karras_subset": dict(num_levels=18)}


class EveryGridTakesTheScheduleTest(parameterized.TestCase):

  @parameterized.parameters(*sorted(grids.GRIDS))
  def test_model_call_works_for_every_grid(self, name):
    """What a Method does: `grid(name, n, schedule=its schedule, **config kwargs)`."""
    chain = schedules.make("ddpm")  # a discrete VP chain: every grid is defined on it
    kwargs = _REQUIRED.get(name, {})
    g = solvers.grid(name, 3, schedule=chain, **kwargs)
    self.assertLen(g, 4)
    self.assertEqual(g[-1], 0.0)
    grids.check_sigmas(g)
    self.assertEqual(g.dtype, np.float64)

  def test_schedule_may_be_a_config_dict(self):
    np.testing.assert_array_equal(
        solvers.grid("ddim", 10, schedule=dict(kind="ddpm"), skip="quadratic"),
        solvers.grid("ddim", 10, schedule=schedules.make("ddpm"), skip="quadratic"),
    )

  @parameterized.parameters(
      "uniform_t", "uniform_logsnr", "quadratic", "time_uniform", "logSNR", "ddim"
  )
  def test_grids_in_t_or_logsnr_name_themselves_without_a_schedule(self, name):
    with self.assertRaisesRegex(ValueError, f"grid '{name}' .*needs schedule="):
      solvers.grid(name, 5, schedule=None)

  @parameterized.parameters(*sorted(grids.GRIDS))
  def test_built_on_the_host_inside_a_trace(self, name):
    """A sampling call that is jitted or `eval_shape`d still gets the grid as NumPy data."""
    chain = schedules.make("ddpm")
    kwargs = _REQUIRED.get(name, {})
    want = solvers.grid(name, 3, schedule=chain, **kwargs)
    got = []
    jax.eval_shape(lambda: got.append(solvers.grid(name, 3, schedule=chain, **kwargs)))
    self.assertIsInstance(got[0], np.ndarray)
    np.testing.assert_array_equal(got[0], want)

  def test_schedule_is_a_required_keyword(self):
    with self.assertRaises(TypeError):
      solvers.grid("karras", 5)  # pylint: disable=missing-kwoa


class KarrasSubsetTest(parameterized.TestCase):

  @parameterized.parameters((1, [0, 17]), (2, [0, 8, 17]), (4, [0, 4, 8, 13, 17]), (17, range(18)))
  def test_levels_of_the_training_grid(self, steps, index):
    """The levels are those of the N-point Karras grid (by its formula, written out) at the
    listed indices: round(i·17/steps), NumPy's half to even (8.5 -> 8, 12.75 -> 13)."""
    n, lo, hi, rho = 18, 0.002, 80.0, 7.0
    level = lambda i: (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    got = solvers.grid("karras_subset", steps, schedule=None, num_levels=n, append_zero=False)
    np.testing.assert_allclose(got, [level(i) for i in index], rtol=1e-12)
    with_zero = solvers.grid("karras_subset", steps + 1, schedule=None, num_levels=n)
    np.testing.assert_array_equal(with_zero, np.append(got, 0.0))

  def test_all_levels_is_karras(self):
    np.testing.assert_array_equal(
        grids.karras_subset(9, num_levels=10, append_zero=False),
        grids.karras(9, append_zero=False),
    )

  def test_more_levels_than_the_grid_names_the_option(self):
    with self.assertRaisesRegex(ValueError, "num_levels=18"):
      grids.karras_subset(18, num_levels=18, append_zero=False)


class DdimTimestepsTest(parameterized.TestCase):
  """DDIM's sub-sequences (Song et al. 2021a, App. D.2) against the official code's formulas."""

  def test_uniform_is_every_cth_step(self):
    # Official code: seq = range(0, 1000, 1000 // S), ᾱ read at seq + 1.
    for s in (10, 20, 50, 100):
      want = [i + 1 for i in range(0, 1000, 1000 // s)][::-1]
      self.assertEqual(grids.ddim_timesteps(s, "uniform"), want)
    self.assertEqual(
        grids.ddim_timesteps(10, "uniform"), [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]
    )

  def test_quadratic_matches_the_formula(self):
    # ⌊(k·sqrt(800)/(S - 1))²⌋ + 1, by plain float arithmetic (not NumPy's linspace).
    for s in (10, 20):
      want = sorted(
          {int((k * math.sqrt(800.0) / (s - 1)) ** 2) + 1 for k in range(s)}, reverse=True
      )
      self.assertEqual(grids.ddim_timesteps(s, "quadratic"), want)
    self.assertEqual(
        grids.ddim_timesteps(10, "quadratic"), [801, 633, 484, 356, 247, 159, 89, 40, 10, 1]
    )
    # S = 100 repeats small steps (k = 0..3 all round to 0, k = 5, 6 to 2, ...): kept once each.
    steps = grids.ddim_timesteps(100, "quadratic")
    self.assertEqual((len(steps), steps[0], steps[-1]), (96, 801, 1))
    self.assertEqual(len(steps), len({int((k * math.sqrt(800.0) / 99) ** 2) for k in range(100)}))
    self.assertTrue(all(a > b for a, b in zip(steps, steps[1:])))

  def test_bad_arguments_name_them(self):
    with self.assertRaisesRegex(ValueError, "skip='cubic'"):
      grids.ddim_timesteps(10, "cubic")
    with self.assertRaisesRegex(ValueError, "steps=0"):
      grids.ddim_timesteps(0, "uniform")
    with self.assertRaisesRegex(ValueError, "bad option for grid 'ddim'"):
      solvers.grid("ddim", 10, schedule=schedules.make("ddpm"), skp="uniform")


class DdimGridTest(chex.TestCase, parameterized.TestCase):

  @parameterized.product(steps=(10, 20, 50, 100), skip=("uniform", "quadratic"))
  def test_equals_the_chains_noise_levels(self, steps, skip):
    """σ̃ at DDIM's steps of the T = 1000 linear-β chain, as the DDIM configs' explicit σ lists
    were written, to rounding; with de-duplication the grid is shorter than num_steps + 1."""
    got = solvers.grid("ddim", steps, schedule=schedules.make("ddpm"), skip=skip)
    want = _ddpm_sigmas(grids.ddim_timesteps(steps, skip))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    want_len = {(50, "quadratic"): 50, (100, "quadratic"): 97}.get((steps, skip), steps + 1)
    self.assertLen(got, want_len)

  def test_ends(self):
    chain = schedules.make("ddpm")
    g = solvers.grid("ddim", 10, schedule=chain, skip="uniform")
    self.assertAlmostEqual(g[-2], math.sqrt(1e-4 / (1 - 1e-4)), places=13)  # ᾱ_1 = 1 - β_1
    np.testing.assert_array_equal(
        solvers.grid("ddim", 10, schedule=chain, skip="uniform", append_zero=False), g[:-1]
    )

  def test_reads_the_schedules_own_chain(self):
    """The grid follows the chain it is given (IDDPM's cosine chain of 4000 steps here)."""
    chain = schedules.make("iddpm_cosine", num_timesteps=4000)
    abar = chain.alphas_cumprod()
    taus = np.asarray(grids.ddim_timesteps(20, "quadratic", 4000))
    self.assertEqual(taus[0], 3201)  # ⌊0.8·4000⌋ + 1
    np.testing.assert_allclose(
        solvers.grid("ddim", 20, schedule=chain, skip="quadratic")[:-1],
        np.sqrt((1 - abar[taus - 1]) / abar[taus - 1]),
        rtol=1e-14,
    )

  def test_needs_a_discrete_chain(self):
    with self.assertRaisesRegex(ValueError, "grid 'ddim' .*discrete chain.*VP"):
      solvers.grid("ddim", 10, schedule=schedules.make("vp"))

  def test_reproduces_the_papers_update(self):
    """`ddim` grid + `ddim` solver = DDIM Eq. 12 (η = 0) in the VP frame, exact N(0, I) denoiser."""
    chain = schedules.make("ddpm")
    sigmas = solvers.grid("ddim", 10, schedule=chain, skip="quadratic")
    denoiser = lambda x, sigma: x / (1.0 + jnp.reshape(sigma, (-1, 1)) ** 2)
    x_init = sigmas[0] * jax.random.normal(jax.random.key(0), (4, 3))
    got = solvers.solve("ddim", denoiser, x_init, jnp.asarray(sigmas, jnp.float32), eta=0.0)
    abar = np.concatenate(
        [chain.alphas_cumprod()[np.asarray(grids.ddim_timesteps(10, "quadratic")) - 1], [1.0]]
    )
    z = np.sqrt(abar[0]) * np.asarray(x_init, np.float64)  # x_T in DDPM's own frame
    for a, a_prev in zip(abar[:-1], abar[1:]):
      x0 = np.sqrt(a) * z  # E[x0 | z] for x0 ~ N(0, I): ᾱ-weighted, √ᾱ z / (ᾱ + 1 - ᾱ)
      eps = (z - np.sqrt(a) * x0) / np.sqrt(1.0 - a)
      z = np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps
    np.testing.assert_allclose(np.asarray(got), z, rtol=2e-4, atol=1e-5)
