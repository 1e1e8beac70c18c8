"""DDPM++, NCSN++ and ADM at EDM's settings: parameter counts and the augmentation-label input."""

import chex
import jax
import jax.numpy as jnp
from absl.testing import parameterized

from diffjax import models

DDPMPP_EDM_CIFAR10 = 55_733_891  # NVlabs/edm DDPM++, unconditional CIFAR-10, augment_dim=9


def _conv(cin, cout, k):
  return cin * cout * k * k + cout


class CountTest(chex.TestCase, parameterized.TestCase):

  def test_ddpmpp_exact_edm_count(self):
    n = models.param_count(models.make({"kind": "ddpmpp", "augment_dim": 9}), (1, 32, 32, 3))
    self.assertEqual(n, DDPMPP_EDM_CIFAR10)

  def test_ddpmpp_label_and_augment_layers(self):
    # Without augmentation: minus the bias-free 9 -> 128 map. Conditional (10 classes): plus a
    # 10 -> 128 linear map with bias.
    count = lambda **kw: models.param_count(models.make({"kind": "ddpmpp", **kw}), (1, 32, 32, 3))
    self.assertEqual(count(), DDPMPP_EDM_CIFAR10 - 9 * 128)
    self.assertEqual(count(augment_dim=9, num_classes=10), DDPMPP_EDM_CIFAR10 + 10 * 128 + 128)

  def test_ncsnpp_count_from_ddpmpp_by_hand(self):
    # NCSN++ differs from DDPM++ (EDM train.py) in parameters only by: a 256-wide noise embedding
    # (map_layer0 gains 128 x 512 weights, map_augment 9 x 128), and the residual encoder's two
    # fused conv3x3 branches (3 -> 256 at 16x16 and 256 -> 256 at 8x8). FIR vs box filters and
    # Fourier vs positional features are parameter-free.
    want = DDPMPP_EDM_CIFAR10 + 128 * 512 + 9 * 128 + _conv(3, 256, 3) + _conv(256, 256, 3)
    n = models.param_count(models.make({"kind": "ncsnpp", "augment_dim": 9}), (1, 32, 32, 3))
    self.assertEqual(n, want)
    self.assertEqual(n, 56_397_827)

  def test_adm_imagenet64_count(self):
    # EDM's ADM for class-conditional ImageNet-64: "296 M" parameters (Karras et al. 2022).
    n = models.param_count(models.make({"kind": "adm"}), (1, 64, 64, 3))
    self.assertAlmostEqual(n / 296e6, 1.0, delta=0.01)
    self.assertEqual(n, 295_899_267)
    # The class map is a bias-free 1000 x 768 matrix; learn_sigma adds 3 output channels.
    uncond = models.param_count(models.make({"kind": "adm", "num_classes": 0}), (1, 64, 64, 3))
    self.assertEqual(n - uncond, 1000 * 768)
    sig = models.param_count(models.make({"kind": "adm", "learn_sigma": True}), (1, 64, 64, 3))
    self.assertEqual(sig - n, 3 * (9 * 192 + 1))


class AugmentTest(chex.TestCase, parameterized.TestCase):

  def test_zero_augment_labels_equal_none(self):
    # The augmentation map is bias-free, so zeros mean "no augmentation", which is what None means.
    module = models.make(
        dict(
            kind="ddpmpp",
            model_channels=8,
            channel_mult=(1,),
            num_blocks=1,
            attn_resolutions=(),
            augment_dim=9,
            dropout=0.0,
        )
    )
    x, c = jnp.ones((2, 4, 4, 3)), jnp.array([0.1, -0.3])
    v = models.random_variables(module, x, c, augment_labels=jnp.ones((2, 9)))
    run = jax.jit(lambda aug: module.apply(v, x, c, train=False, augment_labels=aug))
    chex.assert_trees_all_close(run(jnp.zeros((2, 9))), run(None), atol=1e-6)
    self.assertGreater(float(jnp.abs(run(jnp.ones((2, 9))) - run(None)).max()), 1e-4)

  @parameterized.parameters("ddpmpp", "ncsnpp")
  def test_interval_cond_is_one_more_map_into_the_conditioning_sum(self, kind):
    # interval_cond adds `interval_map` (noise_ch -> noise_ch, with bias) on the embedding of the
    # second time input; zeroed, the network is the one without it (CTM's graft from a teacher).
    module = models.make(
        dict(
            kind=kind,
            model_channels=8,
            channel_mult=(1, 1),
            num_blocks=1,
            attn_resolutions=(),
            dropout=0.0,
        )
    )
    x, c, s = jnp.ones((2, 8, 8, 3)), jnp.array([0.1, -0.3]), jnp.array([-0.5, 0.2])
    v = models.random_variables(module, x, c, interval_cond=s)
    noise_ch = v["params"]["interval_map"]["kernel"].shape[0]
    base = models.random_variables(module, x, c)
    n = lambda tree: sum(a.size for a in jax.tree.leaves(tree))
    self.assertEqual(n(v) - n(base), noise_ch * noise_ch + noise_ch)
    run = jax.jit(lambda p, cond: module.apply(p, x, c, train=False, interval_cond=cond))
    zeroed = {"params": dict(v["params"])}
    zeroed["params"]["interval_map"] = jax.tree.map(jnp.zeros_like, v["params"]["interval_map"])
    without = {"params": {k: a for k, a in v["params"].items() if k != "interval_map"}}
    plain = jax.jit(lambda p: module.apply(p, x, c, train=False))(without)
    chex.assert_trees_all_close(run(zeroed, s), plain, atol=1e-5, rtol=1e-5)  # float32 rounding
    self.assertGreater(float(jnp.abs(run(v, s) - run(v, -s)).max()), 1e-5)

  def test_bad_options(self):
    x = jnp.ones((1, 8, 8, 3))
    for kw, word in [
        ({"embedding_type": "gauss"}, "embedding_type"),
        ({"encoder_type": "dense"}, "encoder_type"),
        ({"decoder_type": "residual"}, "decoder_type"),
    ]:
      module = models.make(
          dict(kind="ddpmpp", model_channels=8, channel_mult=(1,), num_blocks=1, **kw)
      )
      with self.assertRaisesRegex(ValueError, word):
        jax.eval_shape(
            lambda: module.init({"params": jax.random.key(0)}, x, jnp.ones(1), train=False)
        )

  @parameterized.parameters("skip", "residual")
  def test_encoder_decoder_variants_run(self, encoder_type):
    module = models.make(
        dict(
            kind="ncsnpp",
            model_channels=8,
            channel_mult=(1, 2, 2),
            num_blocks=1,
            attn_resolutions=(4,),
            encoder_type=encoder_type,
            decoder_type="skip",
        )
    )
    x = jnp.ones((1, 16, 16, 3))
    out = jax.eval_shape(
        lambda: module.init_with_output({"params": jax.random.key(0)}, x, jnp.ones(1), train=False)[
            0
        ]
    )
    self.assertEqual(out.shape, (1, 16, 16, 3))
