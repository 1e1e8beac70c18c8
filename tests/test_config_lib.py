"""config_lib: arg parsing, the paper helpers (DDIM grids, clip scaling, image counts), shrink."""

import glob
import math
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from diffjax import config_lib
from diffjax import models
from diffjax import solvers
from diffjax.core import losses
from diffjax.core import parameterization
from diffjax.core import schedules
from diffjax.core import weighting


class ParseArgTest(chex.TestCase):

  def test_bare_words_and_values(self):
    arg = config_lib.parse_arg("smoke,steps=5", size="default", smoke=False, steps=1)
    self.assertEqual((arg.size, arg.smoke, arg.steps), ("default", True, 5))
    self.assertEqual(config_lib.parse_arg("demo", size="default").size, "demo")
    self.assertEqual(config_lib.parse_arg(None, size="default").size, "default")

  def test_errors_name_the_key(self):
    with self.assertRaisesRegex(ValueError, "'nope'"):
      config_lib.parse_arg("nope=1", size="default")
    with self.assertRaisesRegex(ValueError, "'steps'.*int"):
      config_lib.parse_arg("steps=abc", size="default", steps=1)
    with self.assertRaisesRegex(ValueError, "size='huge'"):
      config_lib.pick("huge", {"default": 1, "smoke": 2})


class PaperScheduleHelpersTest(chex.TestCase, parameterized.TestCase):
  """DDIM sub-sequences, DDPM noise levels, image counts, clip thresholds vs independent answers."""

  def test_ddim_uniform_is_every_cth_step(self):
    # Official code: seq = range(0, 1000, 1000 // S), ᾱ read at seq + 1.
    for s in (10, 20, 50, 100):
      want = [i + 1 for i in range(0, 1000, 1000 // s)][::-1]
      self.assertEqual(config_lib.ddim_timesteps(s, "uniform"), want)
    self.assertEqual(config_lib.ddim_timesteps(10, "uniform"),
                     [901, 801, 701, 601, 501, 401, 301, 201, 101, 1])

  def test_ddim_quadratic_matches_the_formula(self):
    # ⌊(k·sqrt(800)/(S - 1))²⌋ + 1, by plain float arithmetic (not NumPy's linspace).
    for s in (10, 20):
      want = sorted({int((k * math.sqrt(800.0) / (s - 1)) ** 2) + 1 for k in range(s)},
                    reverse=True)
      self.assertEqual(config_lib.ddim_timesteps(s, "quadratic"), want)
    self.assertEqual(config_lib.ddim_timesteps(10, "quadratic"),
                     [801, 633, 484, 356, 247, 159, 89, 40, 10, 1])
    # S = 100 repeats small steps (k = 0..3 all round to 0, k = 5, 6 to 2, ...): kept once each.
    steps = config_lib.ddim_timesteps(100, "quadratic")
    self.assertEqual((len(steps), steps[0], steps[-1]), (96, 801, 1))
    self.assertEqual(len(steps), len({int((k * math.sqrt(800.0) / 99) ** 2) for k in range(100)}))
    self.assertTrue(all(a > b for a, b in zip(steps, steps[1:])))

  def test_ddim_bad_arguments_name_them(self):
    with self.assertRaisesRegex(ValueError, "skip='cubic'"):
      config_lib.ddim_timesteps(10, "cubic")
    with self.assertRaisesRegex(ValueError, "steps=0"):
      config_lib.ddim_timesteps(0, "uniform")

  def test_ddpm_sigmas_match_the_discrete_chain(self):
    chain = schedules.make("ddpm")  # core's DiscreteChain: ᾱ from NumPy's cumprod
    abar = chain.alphas_cumprod()
    steps = [1000, 777, 500, 2, 1]
    got = config_lib.ddpm_sigmas(steps)
    want = [math.sqrt((1 - abar[i - 1]) / abar[i - 1]) for i in steps] + [0.0]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    self.assertAlmostEqual(got[-2], math.sqrt(1e-4 / (1 - 1e-4)), places=13)  # ᾱ_1 = 1 - β_1

  def test_ddim_grid_reproduces_the_papers_update(self):
    """Config grid + `ddim` solver = DDIM eq. 12 (η = 0) in the VP frame, exact N(0, I) denoiser."""
    sample = config_lib.ddim_sampler(10, "quadratic")
    sigmas = np.asarray(sample["grid_kwargs"]["sigmas"])
    denoiser = lambda x, sigma: x / (1.0 + jnp.reshape(sigma, (-1, 1)) ** 2)
    x_init = sigmas[0] * jax.random.normal(jax.random.key(0), (4, 3))
    got = solvers.solve("ddim", denoiser, x_init, jnp.asarray(sigmas, jnp.float32), eta=0.0)
    abar = np.concatenate([schedules.make("ddpm").alphas_cumprod()[
        np.asarray(config_lib.ddim_timesteps(10, "quadratic")) - 1], [1.0]])
    z = np.sqrt(abar[0]) * np.asarray(x_init, np.float64)  # x_T in DDPM's own frame
    for a, a_prev in zip(abar[:-1], abar[1:]):
      x0 = np.sqrt(a) * z  # E[x0 | z] for x0 ~ N(0, I): ᾱ-weighted, √ᾱ z / (ᾱ + 1 - ᾱ)
      eps = (z - np.sqrt(a) * x0) / np.sqrt(1.0 - a)
      z = np.sqrt(a_prev) * x0 + np.sqrt(1.0 - a_prev) * eps
    np.testing.assert_allclose(np.asarray(got), z, rtol=2e-4, atol=1e-5)

  def test_steps_for_images(self):
    self.assertEqual(config_lib.steps_for_images(200e6, 512), 390_625)  # EDM CIFAR-10
    self.assertEqual(config_lib.steps_for_images(10e6, 512), 19_532)  # ⌈19 531.25⌉
    self.assertEqual(config_lib.steps_for_images(2500e6, 4096), 610_352)  # EDM ImageNet-64

  @parameterized.parameters(("mean", 3 * 4 * 2 / 2.0), ("sum", 0.5))
  def test_grad_clip_scales_like_the_gradients(self, paper_loss, factor):
    """‖∇ diffjax loss‖ / ‖∇ paper loss‖ is the factor grad_clip_for applies, by autodiff."""
    shape = (3, 4, 2)
    self.assertAlmostEqual(config_lib.grad_clip_for(1.0, shape, paper_loss), factor)
    x = jax.random.normal(jax.random.key(1), (5,) + shape)
    param = parameterization.make("eps")

    def losses_of(w):
      raw_fn = lambda z, noise_cond: w * z  # ε̂ = w·z_t: one scalar parameter
      ours, aux = losses.weighted_loss(
          raw_fn, x, jax.random.key(2), schedule=schedules.make("ddpm"), param=param,
          weight_fn=weighting.make_weighting("eps_mse", schedule=schedules.make("ddpm")),
          t_sampler=weighting.make_t_sampler("uniform"))
      sq = aux["eps_mse"]  # ‖ε - ε̂‖² summed over the D values
      paper = sq / math.prod(shape) if paper_loss == "mean" else sq
      return jnp.mean(ours), jnp.mean(paper)

    g_ours = jax.grad(lambda w: losses_of(w)[0])(0.3)
    g_paper = jax.grad(lambda w: losses_of(w)[1])(0.3)
    self.assertAlmostEqual(float(g_ours / g_paper), factor, places=4)
    with self.assertRaisesRegex(ValueError, "paper_loss='median'"):
      config_lib.grad_clip_for(1.0, shape, "median")


class ShrinkTest(chex.TestCase, parameterized.TestCase):

  def test_every_model_kind_has_a_tiny_size(self):
    tiny = config_lib._TINY_MODELS  # pylint: disable=protected-access
    self.assertEqual(set(tiny), set(models.MODELS))

  @parameterized.parameters(
      (config_lib.ddpm_unet(), (8, 8, 3)),
      (config_lib.song_unet("ddpmpp", augment_dim=9), (8, 8, 3)),
      (config_lib.song_unet("ncsnpp", channel_mult=(1, 2, 2, 2)), (8, 8, 3)),
      (config_lib.adm(), (8, 8, 3)),
      (config_lib.dit("XL/2", learn_sigma=False), (8, 8, 3)),
      (config_lib.small_unet(), (8, 8, 1)),
      (config_lib.mlp(), (2,)),
  )
  def test_shrunk_networks_are_tiny_and_keep_the_paper_options(self, model, shape):
    config = _paper_config(model)
    config_lib.shrink(config)
    self.assertEqual(config.data.image_size, 8)
    self.assertEqual((config.train.num_steps, config.data.batch_size, config.sample.num_steps),
                     (2, 8, 2))
    for key in ("augment_dim", "learn_sigma", "embedding_type"):
      if key in model:
        self.assertEqual(config.model[key], model[key])
    module = models.make(config.model)
    count = models.param_count(module, (1,) + shape)
    self.assertLess(count, 300_000)  # the paper sizes: 35.7 M (DDPM) to 675 M (DiT-XL/2)
    x = jnp.zeros((2,) + shape)
    out = jax.eval_shape(lambda: module.init_with_output(
        {"params": jax.random.key(0)}, x, jnp.ones(2), train=False)[0])
    self.assertEqual(out.shape, x.shape)

  def test_explicit_grid_keeps_its_ends(self):
    config = _paper_config(config_lib.ddpm_unet())
    config.sample = config_lib.ddim_sampler(10, "uniform")
    sigmas = list(config.sample.grid_kwargs.sigmas)
    config_lib.shrink(config)
    self.assertEqual(list(config.sample.grid_kwargs.sigmas), [sigmas[0], sigmas[5], 0.0])
    solvers.grid("array", config.sample.num_steps, **config.sample.grid_kwargs)  # valid grid

  def test_unknown_model_kind_names_it(self):
    config = _paper_config(dict(kind="resnet"))
    with self.assertRaisesRegex(ValueError, "model.kind='resnet'"):
      config_lib.shrink(config)


class SmokeArgsTest(chex.TestCase):

  def test_default_and_declared_smoke_args(self):
    root = self.create_tempdir()
    plain = root.create_file("plain.py", "def get_config(arg=None):\n  return arg\n")
    listed = root.create_file(
        "listed.py", "SMOKE_ARGS = ('a=1,smoke', 'a=2,smoke')\ndef get_config(arg=None):\n"
        "  return arg\n")
    self.assertEqual(config_lib.smoke_args(plain.full_path), ("smoke",))
    self.assertEqual(config_lib.smoke_args(listed.full_path), ("a=1,smoke", "a=2,smoke"))
    self.assertEqual(config_lib.load(listed.full_path, "x"), "x")
    with self.assertRaisesRegex(ValueError, "expected a .py file"):
      config_lib.load(str(root.full_path) + "/listed.txt")


def _paper_config(model):
  config = config_lib.base()
  config.data = config_lib.cifar10(batch_size=128)
  config.model = model
  config.optim = config_lib.adam(2e-4, warmup_steps=5000)
  config.train = config_lib.train(1000)
  config.sample = config_lib.sampler("heun", 18, "karras")
  config.eval = config_lib.evaluation()
  return config


class FashionTwinProtocolTest(chex.TestCase):
  """The Fashion-MNIST table compares papers at one protocol (experiments/results/fashion_mnist.md):
  every twin must share data, network shape, budget and evaluation."""

  def test_every_twin_shares_the_protocol(self):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(repo, "configs", "*", "fashion_mnist.py")))
    self.assertGreaterEqual(len(paths), 9)
    unet = config_lib.small_unet()
    for path in paths:
      c = config_lib.load(path)
      name = os.path.relpath(path, repo)
      self.assertEqual((c.data.name, c.data.batch_size, c.data.pad_to_32),
                       ("fashion_mnist", 256, True), name)
      self.assertEqual(c.train.num_steps, 6000, name)
      for key in ("kind", "ch", "ch_mult", "num_res_blocks", "attn_resolutions"):
        self.assertEqual(c.model[key], unet[key], f"{name}: model.{key}")
      self.assertEqual((c.sample.num_samples, c.eval.num_samples, c.eval.fd_num_samples),
                       (10_000, 2000, 10_000), name)
      self.assertEqual(c.eval.fd_samplers["default"].to_dict(), {}, name)
      self.assertEqual(c.eval.fd_samplers["heun35"].to_dict(), config_lib.HEUN35, name)
      self.assertEqual(c.seed, 0, name)
