"""config_lib: arg parsing, the paper builders (EDM, DDPM, VDM, DDIM), clip scaling, image
counts, shrink."""

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


class PaperHelpersTest(chex.TestCase, parameterized.TestCase):
  """The paper builders (EDM, DDPM, VDM, DDIM), image counts, clip thresholds vs independent
  answers."""

  def test_edm_gives_each_constant_to_every_section(self):
    """σ_data, P_mean/P_std and (σ_min, σ_max, ρ) given once reach the schedule, the weighting, the
    t-sampler and the sampler's grid; the weighting then makes w/p EDM's loss weight (Eq. 8)."""
    c = dict(sigma_data=0.7, p_mean=-0.4, p_std=1.5, sigma_min=0.01, sigma_max=50.0, rho=5.0)
    out = config_lib.edm(**c, solver="euler", num_steps=7, batch_size=3)
    self.assertEqual(sorted(out), ["method", "sample", "schedule"])
    grid = dict(sigma_min=0.01, sigma_max=50.0, rho=5.0)
    self.assertEqual(out["schedule"], dict(kind="edm", **grid))
    self.assertEqual(out["sample"]["grid_kwargs"], grid)
    self.assertEqual(
        (
            out["sample"]["solver"],
            out["sample"]["num_steps"],
            out["sample"]["grid"],
            out["sample"]["batch_size"],
        ),
        ("euler", 7, "karras", 3),
    )
    m = out["method"]
    self.assertEqual((m["param"], m["weighting"], m["t_sampling"]), ("edm", "edm", "edm_lognormal"))
    self.assertEqual(m["param_kwargs"], dict(sigma_data=0.7))
    self.assertEqual(m["t_sampling_kwargs"], dict(p_mean=-0.4, p_std=1.5))
    w = weighting.make_weighting("edm", **m["weighting_kwargs"])
    lam = jnp.linspace(-8.0, 8.0, 9)
    # ln σ ~ N(P_mean, P_std²) and λ = -2 ln σ: p(λ) = N(λ; -2 P_mean, (2 P_std)²).
    p = jnp.exp(-0.5 * ((lam + 2 * -0.4) / (2 * 1.5)) ** 2) / (2 * 1.5 * math.sqrt(2 * math.pi))
    chex.assert_trees_all_close(w(lam) / p, (jnp.exp(-lam) + 0.49) / 0.49, rtol=1e-5)
    self.assertEqual(
        config_lib.HEUN35,
        dict(
            solver="heun",
            num_steps=18,
            grid="karras",
            grid_kwargs=dict(sigma_min=0.002, sigma_max=80.0, rho=7.0),
        ),
    )

  def test_ddpm_ties_the_chain_length(self):
    out = config_lib.ddpm(num_timesteps=4000, solver_kwargs=dict(clip_denoised=True))
    self.assertEqual(out["schedule"]["num_timesteps"], 4000)
    self.assertEqual(out["method"]["param_kwargs"], dict(noise_cond_scale=3999.0))  # i - 1
    self.assertEqual((out["sample"]["solver"], out["sample"]["num_steps"]), ("ddpm", 4000))
    self.assertEqual(out["sample"]["solver_kwargs"], dict(clip_denoised=True))

  def test_vdm_ties_the_gamma_range(self):
    out = config_lib.vdm(schedule="linear", gamma_min=-10.0, gamma_max=6.0)
    self.assertEqual(out["schedule"], dict(kind="linear_logsnr", logsnr_lo=-6.0, logsnr_hi=10.0))
    kw = out["method"]["schedule_kwargs"]
    self.assertEqual(
        (kw["init_logsnr_min"], kw["init_logsnr_max"], kw["nonlinear"]), (-6.0, 10.0, False)
    )
    self.assertEqual(out["method"]["param_kwargs"]["noise_cond_scale"], -1000.0 / 16.0)
    self.assertFalse(config_lib.vdm(schedule="fixed")["method"]["learned_schedule"])
    with self.assertRaisesRegex(ValueError, "schedule='cubic'"):
      config_lib.vdm(schedule="cubic")

  def test_ddim_sampler_names_the_grid(self):
    sample = config_lib.ddim_sampler(50, "quadratic")
    self.assertEqual((sample["solver"], sample["num_steps"], sample["grid"]), ("ddim", 50, "ddim"))
    self.assertEqual(
        (sample["grid_kwargs"], sample["solver_kwargs"]), (dict(skip="quadratic"), dict(eta=0.0))
    )
    sigmas = solvers.grid("ddim", 50, schedule=schedules.make("ddpm"), **sample["grid_kwargs"])
    self.assertLen(sigmas, 50)  # S = 50 quadratic keeps 49 distinct steps: 49 levels + 0
    with self.assertRaisesRegex(ValueError, "skip='cubic'"):
      config_lib.ddim_sampler(10, "cubic")

  @parameterized.parameters(1, 2, 4)
  def test_euler_steps_are_uniform_in_t_down_to_zero(self, n):
    sample = config_lib.euler_steps(n)
    sigmas = solvers.grid(
        sample["grid"], n, schedule=schedules.make("flow"), **sample["grid_kwargs"]
    )
    t = 0.999 * np.arange(n, -1, -1) / n  # N equal steps of t from 0.999 to 0
    np.testing.assert_allclose(sigmas, t / (1.0 - t), rtol=1e-4)  # flow σ̃ = t/(1 − t), float32

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
          raw_fn,
          x,
          jax.random.key(2),
          schedule=schedules.make("ddpm"),
          param=param,
          weight_fn=weighting.make_weighting("eps_mse", schedule=schedules.make("ddpm")),
          t_sampler=weighting.make_t_sampler("uniform"),
      )
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
    self.assertEqual(
        (config.train.num_steps, config.data.batch_size, config.sample.num_steps), (2, 8, 2)
    )
    for key in ("augment_dim", "learn_sigma", "embedding_type"):
      if key in model:
        self.assertEqual(config.model[key], model[key])
    module = models.make(config.model)
    count = models.param_count(module, (1,) + shape)
    self.assertLess(count, 300_000)  # the paper sizes: 35.7 M (DDPM) to 675 M (DiT-XL/2)
    x = jnp.zeros((2,) + shape)
    out = jax.eval_shape(
        lambda: module.init_with_output({"params": jax.random.key(0)}, x, jnp.ones(2), train=False)[
            0
        ]
    )
    self.assertEqual(out.shape, x.shape)

  def test_explicit_grid_keeps_its_ends(self):
    config = _paper_config(config_lib.ddpm_unet())
    sigmas = [float(v) for v in np.linspace(10.0, 1.0, 10)] + [0.0]
    config.sample = config_lib.sampler("ddim", 10, "array", grid_kwargs=dict(sigmas=sigmas))
    config_lib.shrink(config)
    self.assertEqual(list(config.sample.grid_kwargs.sigmas), [sigmas[0], sigmas[5], 0.0])
    solvers.grid(
        "array", config.sample.num_steps, schedule=None, **config.sample.grid_kwargs
    )  # valid grid

  def test_ddim_grid_shrinks_to_two_steps(self):
    config = _paper_config(config_lib.ddpm_unet())
    config.sample = config_lib.ddim_sampler(100, "quadratic")
    config_lib.shrink(config)
    got = solvers.grid(
        config.sample.grid,
        config.sample.num_steps,
        schedule=schedules.make("ddpm"),
        **config.sample.grid_kwargs,
    )
    self.assertLen(got, 3)  # DDIM's own S = 2 sub-sequence: steps 801 and 1, then 0

  def test_unknown_model_kind_names_it(self):
    config = _paper_config(dict(kind="resnet"))
    with self.assertRaisesRegex(ValueError, "model.kind='resnet'"):
      config_lib.shrink(config)


class SmokeArgsTest(chex.TestCase):

  def test_default_and_declared_smoke_args(self):
    root = self.create_tempdir()
    plain = root.create_file("plain.py", "def get_config(arg=None):\n  return arg\n")
    listed = root.create_file(
        "listed.py",
        "SMOKE_ARGS = ('a=1,smoke', 'a=2,smoke')\ndef get_config(arg=None):\n" "  return arg\n",
    )
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
    """Every Fashion-MNIST config trains the same U-Net on the same data for the same steps and
    reports FD on 10k samples; the table's PF-ODE families (gaussian, vdm) also share its sample
    sizes and the rows `default` and `heun35`; the other families name their own FD rows (1/2/4
    steps, ...)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    paths = sorted(glob.glob(os.path.join(repo, "configs", "*", "fashion_mnist.py")))
    self.assertGreaterEqual(len(paths), 9)
    unet = config_lib.small_unet()
    for path in paths:
      c = config_lib.load(path)
      name = os.path.relpath(path, repo)
      data = c.data.x if c.data.name == "unpaired" else c.data  # DSBM: two class groups
      self.assertEqual((data.name, data.pad_to_32), ("fashion_mnist", True), name)
      self.assertEqual(c.train.num_steps, 6000, name)
      for key in ("kind", "ch", "ch_mult", "num_res_blocks", "attn_resolutions"):
        self.assertEqual(c.model[key], unet[key], f"{name}: model.{key}")
      self.assertEqual(c.eval.fd_num_samples, 10_000, name)
      self.assertTrue(c.eval.fd_samplers, name)
      self.assertEqual(c.seed, 0, name)
      if c.method.kind not in ("gaussian", "vdm"):
        continue
      self.assertEqual(c.data.batch_size, 256, name)
      self.assertEqual((c.sample.num_samples, c.eval.num_samples), (10_000, 2000), name)
      self.assertEqual(c.eval.fd_samplers["default"].to_dict(), {}, name)
      self.assertEqual(c.eval.fd_samplers["heun35"].to_dict(), config_lib.HEUN35, name)


class LoadOverridesTest(chex.TestCase):

  def test_overrides_set_nested_keys_and_name_unknown_ones(self):
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "edm", "toy2d.py"
    )
    config = config_lib.load(path, "smoke", {"train.num_steps": 7, "optim.ema.decay": 0.5})
    self.assertEqual((config.train.num_steps, config.optim.ema.decay), (7, 0.5))
    with self.assertRaisesRegex(ValueError, "'train.nope'"):
      config_lib.load(path, "smoke", {"train.nope": 1})
    with self.assertRaisesRegex(ValueError, "no section 'nope'"):
      config_lib.load(path, "smoke", {"nope.x": 1})
