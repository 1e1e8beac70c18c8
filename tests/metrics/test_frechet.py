"""Fréchet distance against closed forms, brute-force scipy.linalg.sqrtm and np.cov."""

import chex
import jax
from absl.testing import parameterized
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from diffjax.metrics import frechet
from diffjax.metrics import inception


def _random_cov(rng, dim, rank=None):
  a = rng.standard_normal((dim, rank or dim))
  return a @ a.T / dim


def _features_fn(images):
  """A fixed non-linear feature map [B, 4, 4, 1] -> [B, 5] (stands in for a network)."""
  flat = jnp.reshape(images, (images.shape[0], -1))
  w = jnp.asarray(np.random.default_rng(42).standard_normal((flat.shape[1], 5)))
  return jnp.tanh(flat @ w)


class FrechetMomentsTest(chex.TestCase):

  @parameterized.parameters(1, 3, 16)
  def test_diagonal_closed_form(self, dim):
    # Commuting (diagonal) covariances: FD = |m1 - m2|² + Σ (√s1 - √s2)².
    rng = np.random.default_rng(dim)
    m1, m2 = rng.standard_normal(dim), rng.standard_normal(dim)
    s1, s2 = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    for method in ("eigh", "sqrtm"):
      fd = frechet.frechet_distance_from_moments(m1, np.diag(s1), m2, np.diag(s2), method=method)
      np.testing.assert_allclose(fd, expected, rtol=1e-10)

  def test_commuting_rotated_closed_form(self):
    # S1 = Q diag(s1) Qᵀ, S2 = Q diag(s2) Qᵀ commute: same closed form in the rotated basis.
    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    s1, s2 = rng.uniform(0.1, 2.0, 6), rng.uniform(0.1, 2.0, 6)
    fd = frechet.frechet_distance_from_moments(
        np.zeros(6), q @ np.diag(s1) @ q.T, np.ones(6), q @ np.diag(s2) @ q.T
    )
    np.testing.assert_allclose(fd, 6.0 + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2), rtol=1e-10)

  @parameterized.parameters((4, None), (32, None), (32, 8))
  def test_general_vs_brute_force_sqrtm(self, dim, rank):
    # Reference: tr sqrtm(S1^½ S2 S1^½) with both roots from scipy.linalg.sqrtm.
    rng = np.random.default_rng(dim + (rank or 0))
    m1, m2 = rng.standard_normal(dim), rng.standard_normal(dim)
    c1, c2 = _random_cov(rng, dim, rank), _random_cov(rng, dim)
    root1 = np.real(scipy.linalg.sqrtm(c1))
    tr_root = np.trace(np.real(scipy.linalg.sqrtm(root1 @ c2 @ root1)))
    expected = np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * tr_root
    fd = frechet.frechet_distance_from_moments(m1, c1, m2, c2)
    np.testing.assert_allclose(fd, expected, rtol=1e-7)
    fd_sqrtm = frechet.frechet_distance_from_moments(m1, c1, m2, c2, method="sqrtm")
    np.testing.assert_allclose(fd_sqrtm, expected, rtol=1e-6)

  def test_symmetric_and_zero_on_identical(self):
    rng = np.random.default_rng(3)
    m1, m2 = rng.standard_normal(10), rng.standard_normal(10)
    c1, c2 = _random_cov(rng, 10), _random_cov(rng, 10, rank=4)
    ab = frechet.frechet_distance_from_moments(m1, c1, m2, c2)
    ba = frechet.frechet_distance_from_moments(m2, c2, m1, c1)
    self.assertGreater(ab, 0.1)
    np.testing.assert_allclose(ab, ba, rtol=1e-9)
    self.assertLess(frechet.frechet_distance_from_moments(m2, c2, m2, c2), 1e-9)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "cov2"):
      frechet.frechet_distance_from_moments(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with self.assertRaisesRegex(ValueError, "method"):
      frechet.frechet_distance_from_moments(
          np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="svd"
      )


class FrechetStatsTest(chex.TestCase):

  def test_one_shot_matches_numpy(self):
    x = np.random.default_rng(0).standard_normal((50, 7)) * 3 + 100.0
    stats = frechet.stats_from_features(x)
    self.assertEqual(stats.count, 50)
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-10)

  def test_streaming_equals_one_shot(self):
    x = np.random.default_rng(1).standard_normal((103, 6)) + 1e3  # large offset: no cancellation
    stats = frechet.empty_stats(6)
    for lo, hi in ((0, 1), (1, 40), (40, 40), (40, 97), (97, 103)):  # uneven, an empty batch
      stats = frechet.update(stats, x[lo:hi])
    one_shot = frechet.stats_from_features(x)
    self.assertEqual(stats.count, 103)
    np.testing.assert_allclose(stats.mean, one_shot.mean, rtol=1e-14)
    np.testing.assert_allclose(stats.cov, one_shot.cov, rtol=1e-10, atol=1e-12)

  def test_feature_stats_array_iterable_and_max_samples(self):
    images = np.random.default_rng(2).uniform(-1, 1, (37, 4, 4, 1)).astype(np.float32)
    reference = frechet.stats_from_features(_features_fn(images))
    from_array = frechet.feature_stats(_features_fn, images, batch_size=8)
    from_iter = frechet.feature_stats(_features_fn, (images[i : i + 5] for i in range(0, 37, 5)))
    for stats in (from_array, from_iter):
      self.assertEqual(stats.count, 37)
      np.testing.assert_allclose(stats.mean, reference.mean, atol=1e-6)  # float32 features
      np.testing.assert_allclose(stats.cov, reference.cov, rtol=1e-5, atol=1e-7)
    capped = frechet.feature_stats(_features_fn, images, batch_size=8, max_samples=20)
    self.assertEqual(capped.count, 20)
    np.testing.assert_allclose(
        capped.mean, np.mean(np.asarray(_features_fn(images[:20])), 0), atol=1e-6
    )

  def test_frechet_distance_api(self):
    rng = np.random.default_rng(4)
    a = rng.uniform(-1, 1, (64, 4, 4, 1)).astype(np.float32)
    b = np.clip(a[::-1] * 0.5 + 0.3, -1, 1)
    self.assertLess(frechet.frechet_distance(_features_fn, a, a, batch_size=16), 1e-9)
    ab = frechet.frechet_distance(_features_fn, a, b, batch_size=16)
    ba = frechet.frechet_distance(_features_fn, b, a, batch_size=7)
    self.assertGreater(ab, 0.1)
    np.testing.assert_allclose(ab, ba, rtol=1e-6)
    fa, fb = (np.asarray(_features_fn(v), np.float64) for v in (a, b))
    expected = frechet.frechet_distance_from_moments(
        fa.mean(0), np.cov(fa, rowvar=False), fb.mean(0), np.cov(fb, rowvar=False)
    )
    np.testing.assert_allclose(ab, expected, rtol=1e-5)
    stats_b = frechet.feature_stats(_features_fn, b)
    np.testing.assert_allclose(frechet.frechet_distance(_features_fn, a, stats_b), ab, rtol=1e-9)

  def test_sample_fd_converges_to_closed_form(self):
    # Samples of N(m, diag(s)) vs N(0, I): FD of fitted Gaussians -> |m|² + Σ(√s - 1)².
    rng = np.random.default_rng(5)
    m, s = np.array([0.5, -1.0, 0.0]), np.array([0.25, 1.0, 4.0])
    x = rng.standard_normal((200_000, 3)) * np.sqrt(s) + m
    y = rng.standard_normal((200_000, 3))
    fd = frechet.frechet_distance_from_stats(
        frechet.stats_from_features(x), frechet.stats_from_features(y)
    )
    np.testing.assert_allclose(fd, 1.25 + 0.25 + 1.0, rtol=0.01)

  def test_save_load_round_trip(self):
    stats = frechet.stats_from_features(np.random.default_rng(6).standard_normal((20, 3)))
    path = self.create_tempdir().full_path + "/stats.npz"
    frechet.save_stats(path, stats)
    loaded = frechet.load_stats(path)
    self.assertEqual(loaded.count, 20)
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.scatter, stats.scatter)

  def test_bad_inputs(self):
    with self.assertRaisesRegex(ValueError, "dimension"):
      frechet.update(frechet.empty_stats(3), np.zeros((2, 4)))
    with self.assertRaisesRegex(ValueError, "NaN"):
      frechet.stats_from_features(np.array([[0.0], [np.nan]]))
    with self.assertRaisesRegex(ValueError, "at least 2"):
      frechet.feature_stats(_features_fn, np.zeros((1, 4, 4, 1), np.float32))
    with self.assertRaisesRegex(ValueError, "batch_size"):
      frechet.feature_stats(_features_fn, np.zeros((4, 4, 4, 1), np.float32), batch_size=0)


# Inception-v3 loader (diffjax/metrics/inception.py): the FID feature network from a user's .npz.


def _synthetic_checkpoint(divisor, seed=0):
  """Random arrays with the state-dict names and PyTorch-layout shapes, plus ignorable extras."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for name, shape in inception.expected_arrays(divisor).items():
    if name.endswith("running_var"):
      arrays[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    elif name.endswith("conv.weight"):
      arrays[name] = (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32)
    else:
      arrays[name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
  arrays["fc.weight"] = np.zeros((1008, 2048 // divisor), np.float32)  # pytorch-fid's head
  arrays["fc.bias"] = np.zeros((1008,), np.float32)
  arrays["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.zeros((), np.int64)
  return arrays


def _brute_conv_bn_relu(x, weight, gamma, beta, mean, var, stride, pad):
  """NumPy reference of torch Conv2d(bias=False) + BatchNorm2d(eps=1e-3) + ReLU; NHWC x, OIHW w."""
  ph, pw = pad
  x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  o, _, kh, kw = weight.shape
  h_out = (x.shape[1] - kh) // stride + 1
  w_out = (x.shape[2] - kw) // stride + 1
  y = np.zeros((x.shape[0], h_out, w_out, o))
  for i in range(h_out):
    for j in range(w_out):
      patch = x[:, i * stride : i * stride + kh, j * stride : j * stride + kw, :]  # [B, kh, kw, I]
      y[:, i, j, :] = np.einsum("bhwi,oihw->bo", patch, weight)
  return np.maximum((y - mean) / np.sqrt(var + 1e-3) * gamma + beta, 0.0)


class InceptionLoaderTest(chex.TestCase):

  def test_architecture_matches_published_parameter_count(self):
    # Keras InceptionV3(include_top=False): 21,802,784 parameters = conv kernels + 3 per BN
    # channel (beta, moving mean, moving variance; no gamma), 34,432 of them non-trainable (the
    # moving statistics), i.e. 17,216 BN channels; 94 conv layers.
    shapes = inception.expected_arrays()
    conv = sum(np.prod(s) for n, s in shapes.items() if n.endswith("conv.weight"))
    bn_channels = sum(s[0] for n, s in shapes.items() if n.endswith("bn.running_mean"))
    self.assertEqual(len(shapes), 94 * 5)
    self.assertEqual(2 * bn_channels, 34_432)
    self.assertEqual(conv + 3 * bn_channels, 21_802_784)
    self.assertEqual(shapes["Mixed_6b.branch7x7_2.conv.weight"], (128, 128, 1, 7))
    self.assertEqual(shapes["Mixed_7c.branch_pool.conv.weight"], (192, 2048, 1, 1))

  def test_synthetic_checkpoint_every_array_consumed(self):
    divisor = 8
    arrays = _synthetic_checkpoint(divisor)
    path = self.create_tempdir().full_path + "/inception.npz"
    np.savez(path, **arrays)
    params = inception.load_npz(path, channel_divisor=divisor)
    module = inception.InceptionV3(image_size=75, channel_divisor=divisor)
    init = jax.eval_shape(module.init, jax.random.PRNGKey(0), jnp.zeros((1, 75, 75, 3)))
    chex.assert_trees_all_equal_shapes(params, init["params"])
    consumed = 0
    for name, shape in inception.expected_arrays(divisor).items():
      prefix, layer, leaf = name.rsplit(".", 2)
      block = params[prefix.replace(".", "_")]
      got = {
          ("conv", "weight"): lambda b: np.transpose(b["kernel"], (3, 2, 0, 1)),
          ("bn", "weight"): lambda b: b["scale"],
          ("bn", "bias"): lambda b: b["bias"],
          ("bn", "running_mean"): lambda b: b["mean"],
          ("bn", "running_var"): lambda b: b["var"],
      }[(layer, leaf)](block)
      np.testing.assert_array_equal(got, arrays[name])
      consumed += 1
    self.assertEqual(consumed, sum(len(v) for v in params.values()))
    feats = inception.features_fn(params, image_size=75, channel_divisor=divisor)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 28, 28, 1)).astype(np.float32)
    out = np.asarray(feats(images))
    chex.assert_shape(out, (2, 2048 // divisor))
    self.assertTrue(np.all(np.isfinite(out)) and np.all(out >= 0) and np.any(out > 0))

  def test_validation_errors_name_the_arrays(self):
    arrays = _synthetic_checkpoint(16)
    missing = {k: v for k, v in arrays.items() if k != "Mixed_5b.branch_pool.bn.running_var"}
    with self.assertRaisesRegex(
        ValueError, r"1 missing arrays.*Mixed_5b\.branch_pool\.bn\.running_var"
    ):
      inception.convert(missing, channel_divisor=16)
    with self.assertRaisesRegex(ValueError, r"unexpected arrays.*Mixed_8a\.conv\.weight"):
      inception.convert(dict(arrays, **{"Mixed_8a.conv.weight": np.zeros(1)}), channel_divisor=16)
    arrays = _synthetic_checkpoint(8)
    bad = dict(arrays, **{"Conv2d_1a_3x3.conv.weight": np.zeros((2, 3, 3, 3), np.float32)})
    with self.assertRaisesRegex(
        ValueError, r"Conv2d_1a_3x3\.conv\.weight: got \(2, 3, 3, 3\), " r"expected \(4, 3, 3, 3\)"
    ):
      inception.convert(bad, channel_divisor=8)  # divisor 8: 32 // 8 = 4 output channels
    with self.assertRaisesRegex(ValueError, "wrong shapes"):
      inception.convert(_synthetic_checkpoint(16), channel_divisor=8)

  @parameterized.parameters(
      ((3, 3), 2, (0, 0)), ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0)), ((5, 5), 1, (2, 2))
  )
  def test_basic_conv_matches_torch_semantics(self, kernel, stride, pad):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
    weight = rng.standard_normal((4, 3, *kernel)).astype(np.float32)  # OIHW
    gamma, beta, mean = (rng.standard_normal(4).astype(np.float32) for _ in range(3))
    var = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    layer = inception.BasicConv2d(4, kernel, stride, pad)
    params = {
        "kernel": np.transpose(weight, (2, 3, 1, 0)),
        "scale": gamma,
        "bias": beta,
        "mean": mean,
        "var": var,
    }
    got = layer.apply({"params": params}, jnp.asarray(x))
    expected = _brute_conv_bn_relu(x, weight, gamma, beta, mean, var, stride, pad)
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-4)

  def test_pools_and_resize_match_brute_force(self):
    x = np.random.default_rng(1).standard_normal((1, 5, 6, 2)).astype(np.float32)
    avg, mx = np.zeros_like(x), np.zeros_like(x)
    for i in range(5):
      for j in range(6):
        window = x[:, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2, :]
        avg[:, i, j] = window.mean(axis=(1, 2))  # count_include_pad=False
        mx[:, i, j] = window.max(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(inception.avg_pool_exclude_pad(x)), avg, atol=1e-6)
    np.testing.assert_allclose(np.asarray(inception.max_pool(x, 1, padding=1)), mx, atol=0)
    np.testing.assert_allclose(
        np.asarray(inception.max_pool(x, 2))[0, 1, 1], x[0, 2:5, 2:5].max(axis=(0, 1))
    )
    # Bilinear, align_corners=False: src = (j + ½)·in/out - ½, clamped to [0, in - 1].
    img = np.random.default_rng(2).standard_normal((1, 4, 4, 1)).astype(np.float32)
    src = np.clip((np.arange(11) + 0.5) * 4 / 11 - 0.5, 0, 3)
    lo = np.floor(src).astype(int)
    hi, frac = np.minimum(lo + 1, 3), src - np.floor(src)
    interp = img[0, :, :, 0][lo] * (1 - frac)[:, None] + img[0, :, :, 0][hi] * frac[:, None]
    expected = interp[:, lo] * (1 - frac)[None] + interp[:, hi] * frac[None]
    np.testing.assert_allclose(
        np.asarray(inception.resize(img, 11))[0, :, :, 0], expected, atol=1e-5
    )
