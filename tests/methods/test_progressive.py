"""Progressive distillation: the target is the x̂ whose one DDIM step equals two exact-teacher DDIM
steps (Gaussian mixture, exact denoiser), the paper's eq. 8 in z/α/σ form, and the loss on fixed
tensors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import absltest

from diffjax import config_lib
from diffjax import methods
from diffjax import solvers
from diffjax.methods import ctm_lib
from diffjax.methods import progressive
from diffjax.solvers import testing

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GMM = testing.GaussianMixture(
    means=np.array([[-1.0, 0.5], [1.2, -0.3]]),
    stds=np.array([[0.3, 0.5], [0.4, 0.2]]),
    weights=np.array([0.4, 0.6]),
)


class _Data:
  element_shape, num_classes = (2,), 0


def _config(n=4):
  config = config_lib.load(os.path.join(REPO, "configs", "edm", "toy2d.py"), "smoke")
  config.method.update(kind="progressive_distillation", num_student_steps=n, teacher="random")
  return config


class TargetTest(absltest.TestCase):

  def test_one_student_ddim_step_equals_two_exact_teacher_steps(self):
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    for s, s_mid, s_end in ((3.0, 1.5, 0.7), (0.9, 0.4, 0.0)):
      full = lambda v: jnp.full((8,), v)
      target = progressive.target_x0(GMM.denoiser, x, full(s), full(s_mid), full(s_end))
      two = solvers.solve("euler", GMM.denoiser, x, np.array([s, s_mid, s_end]))  # = DDIM η = 0
      one = solvers.solve("euler", lambda *_: target, x, np.array([s, s_end]))
      np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-5)

  def test_target_is_the_papers_eq_8(self):
    # Salimans & Ho on a VP schedule, in their frame: DDIM z' = α'x̂ + σ'(z − αx̂)/σ twice with the
    # teacher x̂ = D(z/α, σ/α), then eq. 8 x̃ = (z'' − (σ''/σ) z)/(α'' − (σ''/σ) α).
    alphas = np.array([0.6, 0.8, 0.95])
    sigmas = np.sqrt(1 - alphas**2)
    z = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)), jnp.float32)
    zi = z
    for k in range(2):
      (a, s), (a2, s2) = (alphas[k], sigmas[k]), (alphas[k + 1], sigmas[k + 1])
      xh = GMM.denoiser(zi / a, jnp.full((5,), s / a))
      zi = a2 * xh + s2 * (zi - a * xh) / s
    a, s, a2, s2 = alphas[0], sigmas[0], alphas[2], sigmas[2]
    want = (zi - s2 / s * z) / (a2 - s2 / s * a)
    st = sigmas / alphas
    full = lambda v: jnp.full((5,), v, jnp.float32)
    got = progressive.target_x0(GMM.denoiser, z / a, full(st[0]), full(st[1]), full(st[2]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

  @pytest.mark.slow
  def test_loss_on_fixed_tensors(self):
    method = methods.make(_config(4), _Data)
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 16)[0])
    params = method.init(jax.random.PRNGKey(1), {"x": x})
    state = method.init_state_with_params(params)
    rng = jax.random.PRNGKey(2)
    loss, _ = method.loss_with_state(params, state, {"x": x}, rng)
    rng_i, rng_eps, rng_drop = jax.random.split(rng, 3)
    t = jax.random.randint(rng_i, (16,), 1, 5) / 4.0
    alpha, sigma = method.schedule().alpha_sigma(t)
    st = sigma / alpha
    x_t = x + st[:, None] * jax.random.normal(rng_eps, x.shape)
    sig = lambda u: jnp.where(u <= 0, 0.0, jnp.divide(*method.schedule().alpha_sigma(u)[::-1]))
    teacher = method.denoiser(params)
    d = teacher(x_t, st)
    s_mid, s_end = sig(t - 0.125), sig(t - 0.25)
    x_mid = d + (s_mid / st)[:, None] * (x_t - d)
    d_mid = teacher(x_mid, s_mid)
    x_end = d_mid + (s_end / s_mid)[:, None] * (x_mid - d_mid)
    r = (s_end / st)[:, None]
    target = (x_end - r * x_t) / (1 - r)
    student = solvers.adapters.from_raw(
        method.mean_raw_fn(params, train=True, rng=rng_drop), method.schedule(), method.param
    )
    want = jnp.mean(0.5 * (1 + 1 / st**2) * jnp.sum((student(x_t, st) - target) ** 2, -1))
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)

  def test_bad_config(self):
    config = _config(0)
    with self.assertRaisesRegex(ValueError, "num_student_steps"):
      methods.make(config, _Data)
    config = _config(2)
    config.method.teacher = "checkpoint"
    with self.assertRaisesRegex(ValueError, "init_from"):
      methods.make(config, _Data)


class _Labelled:
  element_shape, num_classes = (2,), 2


def _guided_config(stage, n=4, **kwargs):
  config = _config(n)
  guided = dict(stage=stage, w_min=0.5, w_max=3.0, w=1.0)
  guided.update(kwargs)
  config.method.update(conditional=True, guided=guided)
  return config


def _cond_denoiser(label):
  """The exact class-conditional denoiser: class k is the GMM's component k."""
  d0, d1 = GMM.component_denoiser(0), GMM.component_denoiser(1)
  return lambda x, s: jnp.where((label == 0)[:, None], d0(x, s), d1(x, s))


class GuidedTest(absltest.TestCase):
  """Guided distillation (Meng et al. 2023) on the class-conditional GMM (class k = component k,
  the null class = the mixture): exact conditional and unconditional denoisers."""

  def test_stage_one_target_gives_the_exact_guided_ddim_step(self):
    x = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 2))
    label = jnp.arange(8) % 2
    for w, (s, s_next) in ((0.0, (2.0, 0.5)), (1.5, (0.8, 0.3)), (4.0, (3.0, 0.0))):
      full = lambda v: jnp.full((8,), v)
      target = progressive.guided_x0(_cond_denoiser(label), GMM.denoiser, x, full(s), full(w))
      one = solvers.solve("euler", lambda *_: target, x, np.array([s, s_next]))
      guided = solvers.guidance.cfg(_cond_denoiser(label), GMM.denoiser, 1.0 + w)  # s = 1 + w
      want = solvers.solve("euler", guided, x, np.array([s, s_next]))
      np.testing.assert_allclose(one, want, rtol=1e-5, atol=1e-5)
      if w == 0.0:  # w = 0: the conditional teacher's own step
        np.testing.assert_allclose(target, _cond_denoiser(label)(x, full(s)), rtol=1e-6)

  @pytest.mark.slow
  def test_stage_one_loss_on_fixed_tensors(self):
    method = methods.make(_guided_config("guide"), _Labelled)
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 16)[0])
    label = jnp.arange(16) % 2
    params = method.init(jax.random.PRNGKey(1), {"x": x, "label": label})
    state = method.init_state_with_params(params)
    self.assertNotIn("interval_dense0", state["teacher"])
    rng = jax.random.PRNGKey(2)
    loss, _ = method.loss_with_state(params, state, {"x": x, "label": label}, rng)
    rng_i, rng_eps, rng_drop = jax.random.split(rng, 3)
    w = jax.random.uniform(jax.random.fold_in(rng, 1), (16,), minval=0.5, maxval=3.0)
    t = 1.0 - jax.random.uniform(rng_i, (16,))
    alpha, sigma = method.schedule().alpha_sigma(t)
    st = sigma / alpha
    x_t = x + st[:, None] * jax.random.normal(rng_eps, x.shape)
    net = lambda p, lab, **kw: (
        lambda z, c: method.model.apply({"params": p}, z, c, lab, train=False, **kw)
    )
    den = lambda raw: solvers.adapters.from_raw(raw, method.schedule(), method.param)
    d_c = den(net(state["teacher"], label))(x_t, st)
    d_u = den(net(state["teacher"], jnp.full((16,), 2)))(x_t, st)
    target = (1 + w)[:, None] * d_c - w[:, None] * d_u
    student = den(net(params, label, interval_cond=w))(x_t, st)
    want = jnp.mean(0.5 * (1 + 1 / st**2) * jnp.sum((student - target) ** 2, -1))
    np.testing.assert_allclose(float(loss), float(want), rtol=1e-5)
    del rng_drop

  def test_w_zero_stage_two_is_unguided_pd(self):
    # A guided student whose w layers are grafted with the last one zeroed computes the
    # conditional network; with w = 0 its stage-two loss is PD's on that network, draw for draw.
    x = jnp.asarray(GMM.sample(jax.random.PRNGKey(0), 16)[0])
    batch = {"x": x, "label": jnp.arange(16) % 2}
    plain = _config(4)
    plain.method.conditional = True
    plain = methods.make(plain, _Labelled)
    guided = methods.make(_guided_config("halve", w_min=0.0, w_max=0.0), _Labelled)
    params = plain.init(jax.random.PRNGKey(1), batch)
    fresh = guided.init(jax.random.PRNGKey(2), batch)
    g_params = ctm_lib.graft_interval(params, fresh, "test", "student")
    rng = jax.random.PRNGKey(3)
    want, _ = plain.loss_with_state(params, {"teacher": params}, batch, rng)
    got, _ = guided.loss_with_state(g_params, {"teacher": g_params}, batch, rng)
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    self.assertGreater(float(want), 0.0)

  def test_bad_guided_config(self):
    config = _guided_config("guide")
    config.method.conditional = False
    with self.assertRaisesRegex(ValueError, "conditional"):
      methods.make(config, _Labelled)
    with self.assertRaisesRegex(ValueError, "method.guided.stage"):
      methods.make(_guided_config("both"), _Labelled)
    with self.assertRaisesRegex(ValueError, "w_min"):
      methods.make(_guided_config("guide", w_min=2.0, w_max=1.0), _Labelled)
    with self.assertRaisesRegex(ValueError, "unknown keys"):
      methods.make(_guided_config("guide", scale=2.0), _Labelled)


if __name__ == "__main__":
  absltest.main()
