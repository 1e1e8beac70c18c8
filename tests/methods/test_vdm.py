"""VDM Method: loss = likelihood.vdm_elbo, VDM's gradient routing against brute-force autodiff,
the ELBO of Gaussian data against the exact -log p, learned end points in training, sampling."""

import math

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from absl.testing import parameterized

from diffjax import methods
from diffjax.methods import sampling
from diffjax.core import gaussian_reference
from diffjax.core import likelihood
from diffjax.methods import vdm

DIM = 4
GAMMA_RANGE = 18.3  # VDM's γ_max - γ_min = 5 - (-13.3)


class _Data:
  element_shape, num_classes = (DIM,), 0


def _config(
    learned=True, variance_minimization=True, num_steps=0, decoder="vdm", **schedule_kwargs
):
  config = ml_collections.ConfigDict()
  config.schedule = dict(kind="linear_logsnr", logsnr_lo=-5.0, logsnr_hi=13.3)
  config.method = dict(
      kind="vdm",
      learned_schedule=learned,
      variance_minimization=variance_minimization,
      num_steps=num_steps,
      decoder=decoder,
      schedule_kwargs=dict(num_features=16, **schedule_kwargs),
      param="eps",
      param_kwargs=dict(noise_cond="logsnr", noise_cond_scale=-1000 / GAMMA_RANGE),
  )
  config.model = dict(kind="mlp", width=16, depth=1, emb_dim=8)
  config.sample = dict(
      solver="ddpm", num_steps=11, grid="uniform_t", grid_kwargs=dict(t_min=0.0), batch_size=8
  )
  config.eval = dict(num_projections=16)
  return config


def _pixels(n, seed=0):
  """n × DIM 8-bit values scaled to [-1, 1] as diffjax.data does (k/127.5 - 1)."""
  return jnp.asarray(
      np.random.default_rng(seed).integers(0, 256, (n, DIM)) / 127.5 - 1.0, jnp.float32
  )


def _perturb_schedule(params, seed=1):
  """Random, non-initial schedule parameters (shape network and end points), so that gradients of
  the shape parameters are not special; end points kept ordered."""
  leaves, tree = jax.tree.flatten(params["schedule"])
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  leaves = [a + 0.3 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
  return dict(params, schedule=jax.tree.unflatten(tree, leaves))


def _assert_close(got, want, rtol=1e-4):
  """Leafwise |got - want| <= rtol · max|want| (gradients are sums of float32 terms of both signs,
  so elementwise relative tolerances fail on entries that nearly cancel)."""
  chex.assert_trees_all_equal_shapes(got, want)
  for path, g in jax.tree_util.tree_leaves_with_path(got):
    w = np.asarray(dict(jax.tree_util.tree_leaves_with_path(want))[path])
    np.testing.assert_allclose(
        np.asarray(g),
        w,
        rtol=0,
        atol=rtol * np.max(np.abs(w)) + 1e-7,
        err_msg=jax.tree_util.keystr(path),
    )


def _shape_leaves(tree):
  return {k: v for k, v in tree.items() if k not in vdm.ENDPOINTS}


def _end_leaves(tree):
  return {k: tree[k] for k in vdm.ENDPOINTS}


class VDMLossTest(chex.TestCase, parameterized.TestCase):

  def test_make_picks_vdm_and_names_bad_options(self):
    self.assertIsInstance(methods.make(_config(), _Data()), vdm.VDM)
    config = _config(decoder="nope")
    with self.assertRaisesRegex(ValueError, "method.decoder"):
      methods.make(config, _Data())
    config = _config()
    config.method.schedule_kwargs = dict(bogus=1)
    with self.assertRaisesRegex(ValueError, "method.schedule_kwargs"):
      methods.make(config, _Data())
    config = _config(learned=False)
    config.schedule = dict(kind="ve")
    with self.assertRaisesRegex(ValueError, "variance-preserving"):
      methods.make(config, _Data())

  @parameterized.parameters((False, 0), (False, 10), (True, 0), (True, 10))
  def test_loss_equals_vdm_elbo(self, learned, num_steps):
    """Same rng -> the same value as `likelihood.vdm_elbo` (fixed or learned schedule; the learned
    one through the gradient-routing custom VJP)."""
    method = methods.make(_config(learned, True, num_steps), _Data())
    x = _pixels(8)
    params = method.init(jax.random.key(0), {"x": x})
    if learned:
      params = _perturb_schedule(params)
      self.assertEqual(set(params), {"model", "schedule"})
    else:
      self.assertEqual(set(params), {"model"})
    rng = jax.random.key(3)
    loss, metrics = jax.jit(method.loss)(params, {"x": x}, rng)
    want, aux = jax.jit(
        lambda p: likelihood.vdm_elbo(
            method.raw_fn(p["model"]),
            x,
            jax.random.split(rng)[0],
            schedule=method.schedule(p),
            param=method.param,
            num_steps=num_steps or None,
        )
    )(params)
    chex.assert_trees_all_close(loss, jnp.mean(want), rtol=1e-5)
    scale = 1.0 / (DIM * math.log(2.0))
    chex.assert_trees_all_close(
        metrics["bpd_diffusion"], jnp.mean(aux["diffusion"]) * scale, rtol=1e-5
    )
    chex.assert_trees_all_close(metrics["bpd_prior"], jnp.mean(aux["prior"]) * scale, rtol=1e-5)

  @parameterized.parameters(0, 10)
  def test_gradients_are_elbo_and_squared_diffusion_loss(self, num_steps):
    """Network and end points: d ELBO; schedule shape: d mean(L_diff²) (+ the prior/decoder terms,
    whose shape-gradient is zero), both computed by plain autodiff of `likelihood.vdm_elbo`."""
    method = methods.make(_config(True, True, num_steps), _Data())
    x = _pixels(16)
    params = _perturb_schedule(method.init(jax.random.key(0), {"x": x}))
    rng = jax.random.key(5)
    plain = methods.make(_config(True, False, num_steps), _Data())  # the released code's gradient
    scale = 1.0 / (DIM * math.log(2.0))

    def reference(p, squared):
      _, aux = likelihood.vdm_elbo(
          method.raw_fn(p["model"]),
          x,
          jax.random.split(rng)[0],
          schedule=method.schedule(p),
          param=method.param,
          num_steps=num_steps or None,
      )
      diffusion = aux["diffusion"] * scale
      return jnp.mean(
          (aux["prior"] + aux["recon"]) * scale + (jnp.square(diffusion) if squared else diffusion)
      )

    @jax.jit
    def all_grads(p):
      return (
          jax.grad(lambda q: method.loss(q, {"x": x}, rng)[0])(p),
          jax.grad(lambda q: plain.loss(q, {"x": x}, rng)[0])(p),
          jax.grad(reference)(p, False),
          jax.grad(reference)(p, True),
      )

    grads, plain_grads, elbo_grads, var_grads = all_grads(params)
    # Tolerance: the schedule computes in float32 and the two gradients associate the per-example
    # products differently; with float64 data and parameters they agree to 4e-6 (measured).
    _assert_close(grads["model"], elbo_grads["model"])
    _assert_close(_end_leaves(grads["schedule"]), _end_leaves(elbo_grads["schedule"]), 3e-3)
    _assert_close(_shape_leaves(grads["schedule"]), _shape_leaves(var_grads["schedule"]), 3e-3)
    _assert_close(plain_grads, elbo_grads, 3e-3)
    # The routing matters: the shape's variance gradient is far from its ELBO gradient.
    flat_var = jnp.concatenate(
        [a.ravel() for a in jax.tree.leaves(_shape_leaves(var_grads["schedule"]))]
    )
    flat_elbo = jnp.concatenate(
        [a.ravel() for a in jax.tree.leaves(_shape_leaves(elbo_grads["schedule"]))]
    )
    self.assertGreater(
        float(jnp.max(jnp.abs(flat_var - flat_elbo)) / jnp.max(jnp.abs(flat_var))), 0.1
    )


class GaussianDataTest(chex.TestCase):
  """x ~ N(μ, diag v) with the exact ε-network and a Gaussian decoder: the continuous ELBO on the
  initial (non-linear) learned schedule is -log p(x) up to the end-point gaps (closed form)."""

  def test_elbo_matches_exact_nll(self):
    mean = jnp.asarray([0.3, -0.2, 0.0, 0.5])
    var = jnp.asarray([0.5, 1.0, 0.2, 0.05])
    method = methods.make(_config(decoder="gaussian"), _Data())
    n = 16384
    x = mean + jnp.sqrt(var) * jax.random.normal(jax.random.key(0), (n, DIM))
    params = method.init(jax.random.key(1), {"x": x[:2]})
    schedule = method.schedule(params)
    exact = gaussian_reference.optimal_raw_fn(schedule, method.param, mean, var)
    method.raw_fn = lambda *a, **k: exact  # the Bayes-optimal network instead of the MLP
    bpd, terms = jax.jit(method.elbo)(params, x, jax.random.key(2))
    scale = DIM * math.log(2.0)
    nats = bpd * scale
    nll = 0.5 * jnp.sum(jnp.log(2 * math.pi * var) + jnp.square(x - mean) / var, axis=1)
    closed = gaussian_reference.elbo(mean, var, schedule)
    # Closed-form gap: E[ELBO] - E[-log p] from the end points (λ_max = 13.3, λ_min = -5).
    gap = float(closed["total"] - gaussian_reference.nll(mean, var))
    self.assertLess(abs(gap), 0.05)
    err = jnp.mean(nats - nll)
    stderr = jnp.std(nats - nll) / math.sqrt(n)
    self.assertLess(abs(float(err) - gap), 4.0 * float(stderr) + 1e-3, (err, stderr, gap))
    # Each term's mean against its closed form.
    for key in ("prior", "recon", "diffusion"):
      got = terms[key] * scale
      se = float(jnp.std(got)) / math.sqrt(n)
      self.assertLess(abs(float(jnp.mean(got)) - float(closed[key])), 4.0 * se + 1e-3, key)

  def test_end_point_gradients_match_closed_form(self):
    """d E[ELBO]/dλ_max = -½ Σ_d 1/(1 + v e^λmax) and d E[ELBO]/dλ_min = Σ_d ½ s(1 - s)(μ² + v - 1)
    + ½ s - ½ v e^λmin/(1 + v e^λmin), s = sigmoid(λ_min) (prior KL + decoder + eq. 17 with the
    exact network), against per-example forward-mode derivatives of the estimate (mean ± 4 SE)."""
    mean = jnp.asarray([0.3, -0.2, 0.0, 0.5])
    var = jnp.asarray([0.5, 1.0, 0.2, 0.05])
    lam_max, lam_min = 4.0, -3.0
    method = methods.make(
        _config(decoder="gaussian", init_logsnr_max=lam_max, init_logsnr_min=lam_min), _Data()
    )
    n = 4096
    x = mean + jnp.sqrt(var) * jax.random.normal(jax.random.key(0), (n, DIM))
    params = _perturb_schedule(method.init(jax.random.key(1), {"x": x[:2]}))
    params["schedule"] = dict(
        params["schedule"], logsnr_max=jnp.asarray(lam_max), logsnr_min=jnp.asarray(lam_min)
    )
    exact = gaussian_reference.optimal_raw_fn(method.schedule(params), method.param, mean, var)
    method.raw_fn = lambda *a, **k: exact
    nats = lambda p: method.elbo(p, x, jax.random.key(2))[0] * DIM * math.log(2.0)
    s = jax.nn.sigmoid(lam_min)
    want = {
        "logsnr_max": -0.5 * jnp.sum(1.0 / (1.0 + var * math.exp(lam_max))),
        "logsnr_min": jnp.sum(
            0.5 * s * (1 - s) * (jnp.square(mean) + var - 1.0)
            + 0.5 * s
            - 0.5 * var * math.exp(lam_min) / (1.0 + var * math.exp(lam_min))
        ),
    }
    for key, value in want.items():
      tangent = jax.tree.map(jnp.zeros_like, params)
      tangent["schedule"][key] = jnp.ones_like(params["schedule"][key])
      per_example = jax.jit(lambda p, d: jax.jvp(nats, (p,), (d,))[1])(params, tangent)
      got, se = float(jnp.mean(per_example)), float(jnp.std(per_example)) / math.sqrt(n)
      self.assertLess(abs(got - float(value)), 4.0 * se + 1e-3, (key, got, se, float(value)))


class TrainingAndSamplingTest(chex.TestCase):

  def test_learned_end_points_move_in_training(self):
    """Five Adam steps (lr 1e-2) on 8-bit toy data: λ_max and λ_min move (the ELBO gradient
    reaches them) and so does the shape network (the variance gradient reaches it); the loss
    stays finite. Fails if either gradient is cut (Adam does not move a parameter with zero
    gradient)."""
    method = methods.make(_config(), _Data())
    x = _pixels(64, seed=2)
    params = method.init(jax.random.key(0), {"x": x[:2]})
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, rng):
      (loss, metrics), grads = jax.value_and_grad(method.loss, has_aux=True)(params, {"x": x}, rng)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss, metrics

    start = params
    for i in range(5):
      params, opt_state, loss, metrics = step(params, opt_state, jax.random.key(10 + i))
      self.assertTrue(bool(jnp.isfinite(loss)))
    moved = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), params["schedule"], start["schedule"]
    )
    self.assertGreater(moved["logsnr_max"], 1e-3)
    self.assertGreater(moved["logsnr_min"], 1e-3)
    self.assertGreater(moved["l2"]["kernel"], 1e-3)
    self.assertEqual(
        set(metrics),
        {
            "bpd_prior",
            "bpd_recon",
            "bpd_diffusion",
            "bpd_diffusion_var",
            "logsnr_max",
            "logsnr_min",
        },
    )

  def test_sampling_grid_is_the_learned_schedule(self):
    method = methods.make(_config(), _Data())
    params = _perturb_schedule(method.init(jax.random.key(0), {"x": _pixels(2)}))
    sigmas = sampling.sigmas(method, params, 11, "uniform_t", dict(t_min=0.0))
    t = np.linspace(1.0, 0.0, 11)
    lam = np.asarray(method.schedule(params).logsnr(jnp.asarray(t, jnp.float32)))
    np.testing.assert_allclose(sigmas[:-1], np.exp(-0.5 * lam), rtol=1e-5)
    self.assertEqual(sigmas[-1], 0.0)
    np.testing.assert_allclose(
        -2 * np.log(sigmas[[0, -2]]),
        [params["schedule"]["logsnr_min"], params["schedule"]["logsnr_max"]],
        rtol=1e-5,
    )

  def test_karras_grid_stays_inside_the_learned_range(self):
    # EDM's Heun on VDM: σ̃_max is the learned schedule's exp(-λ_min/2) (≈ 12 at VDM's init), not 80.
    method = methods.make(_config(), _Data())
    params = _perturb_schedule(method.init(jax.random.key(0), {"x": _pixels(2)}))
    sigmas = sampling.sigmas(
        method, params, 18, "karras", dict(sigma_min=0.002, sigma_max=80.0, rho=7.0)
    )
    want_max = float(np.exp(-0.5 * params["schedule"]["logsnr_min"]))
    self.assertLess(want_max, 80.0)
    np.testing.assert_allclose(sigmas[0], want_max, rtol=1e-5)
    np.testing.assert_allclose(
        sigmas[-2], max(0.002, float(np.exp(-0.5 * params["schedule"]["logsnr_max"]))), rtol=1e-5
    )

  def test_samples_finite_with_default_and_overridden_solver(self):
    method = methods.make(_config(), _Data())
    params = _perturb_schedule(method.init(jax.random.key(0), {"x": _pixels(2)}))
    x = method.sample(params, jax.random.key(1), 8)
    chex.assert_shape(x, (8, DIM))
    chex.assert_tree_all_finite(x)
    x = method.sample(
        params,
        jax.random.key(1),
        8,
        solver="euler",
        num_steps=4,
        grid="uniform_logsnr",
        grid_kwargs=dict(t_min=0.0),
    )
    chex.assert_shape(x, (8, DIM))
    chex.assert_tree_all_finite(x)
    with self.assertRaisesRegex(ValueError, "bogus"):
      method.sample(params, jax.random.key(1), 8, bogus=1)

  @pytest.mark.slow  # about 70 s on 2 shared CPU cores (T = 1000 steps, bisection in each)
  def test_ancestral_sampling_with_exact_network_recovers_gaussian(self):
    """VDM's sampler (`ddpm`, β̃, t = i/T, T = 1000) on the learned schedule with the exact
    ε-network draws from N(μ, v): sample mean and variance within 5 standard errors (measured
    z ≤ 1.5; with T = 100 the variance is 4.7 SE off: the O(1/T) bias of β̃ ancestral steps)."""
    mean = jnp.asarray([0.3, -0.2, 0.0, 0.5])
    var = jnp.asarray([0.5, 1.0, 0.2, 0.05])
    method = methods.make(_config(decoder="gaussian"), _Data())
    params = _perturb_schedule(method.init(jax.random.key(0), {"x": _pixels(2)}))
    exact = gaussian_reference.optimal_raw_fn(method.schedule(params), method.param, mean, var)
    method.raw_fn = lambda *a, **k: exact
    n = 4000
    x = method.sample(params, jax.random.key(4), n, num_steps=1001)
    se_mean = jnp.sqrt(var / n)
    se_var = var * math.sqrt(2.0 / (n - 1))
    self.assertLess(float(jnp.max(jnp.abs(jnp.mean(x, 0) - mean) / se_mean)), 5.0)
    self.assertLess(float(jnp.max(jnp.abs(jnp.var(x, 0) - var) / se_var)), 5.0)

  def test_bpd_keys_and_equals_vdm_elbo(self):
    method = methods.make(_config(), _Data())
    x = _pixels(8)
    params = _perturb_schedule(method.init(jax.random.key(0), {"x": x}))
    out = jax.jit(method.bpd)(params, jax.random.key(7), x)
    self.assertEqual(set(out), {"bpd", "prior", "recon", "diffusion"})
    want, _ = jax.jit(
        lambda p: likelihood.vdm_elbo(
            method.raw_fn(p["model"]),
            x,
            jax.random.key(7),
            schedule=method.schedule(p),
            param=method.param,
        )
    )(params)
    chex.assert_trees_all_close(out["bpd"], want, rtol=1e-5)
    chex.assert_trees_all_close(
        out["prior"] + out["recon"] + out["diffusion"], out["bpd"], rtol=1e-5
    )
