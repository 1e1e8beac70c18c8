r"""Produces tests/solvers/data/reference_deis.npz by running the official JAX DEIS sampler.

  .venv/bin/python tests/solvers/make_reference_deis.py --deis PATH/TO/qsh-zh/deis \
      --out tests/solvers/data/reference_deis.npz

Data commit: qsh-zh/deis a30709f4. `jax_deis` is imported from the given path (not installed,
not stored here). Runs tAB-DEIS (orders 2, 3) on the linear VP SDE (β 0.1 → 20, t from 1 to
1e-3, time grid quadratic in t) with an exact ε-model of a 2-D Gaussian mixture, float64, and
stores the σ-frame grid, x_init and output. jax_deis integrates its coefficients with a
10⁴-point left Riemann sum, so agreement is only to that quadrature's accuracy.
"""

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

MEANS = np.array([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]])
STDS = np.array([[0.3, 0.5], [0.6, 0.4], [0.5, 0.5]])
WEIGHTS = np.array([0.2, 0.5, 0.3])


def denoiser(x, sigma):
  """E[x0 | x0 + σ ε = x] for the mixture (written out here, independent of diffjax)."""
  var = STDS[None] ** 2 + sigma**2
  diff = x[:, None, :] - MEANS[None]
  logp = -0.5 * jnp.sum(diff**2 / var + jnp.log(2 * jnp.pi * var), -1) + jnp.log(WEIGHTS)
  post = jax.nn.softmax(logp, axis=-1)
  return jnp.sum(post[..., None] * (MEANS[None] + STDS[None] ** 2 / var * diff), axis=1)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--deis", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  sys.path.insert(0, args.deis)
  # jax_deis imports a private helper that newer JAX moved; only its discrete-time interpolation
  # (unused here) calls it.
  import jax._src.numpy.lax_numpy as lax_numpy  # pylint: disable=g-import-not-at-top
  import jax._src.numpy.util as np_util  # pylint: disable=g-import-not-at-top

  if not hasattr(lax_numpy, "_promote_dtypes_inexact"):
    lax_numpy._promote_dtypes_inexact = np_util.promote_dtypes_inexact
  import jax_deis  # pylint: disable=g-import-not-at-top

  t2alpha, alpha2t = jax_deis.get_linear_alpha_fns(0.1, 20.0)  # alpha = ᾱ
  sde = jax_deis.VPSDE(t2alpha, alpha2t, 1e-3, 1.0)

  def eps_fn(z, t):
    abar = t2alpha(t)
    x_tilde, sigma_tilde = z / jnp.sqrt(abar), jnp.sqrt((1.0 - abar) / abar)
    return (x_tilde - denoiser(x_tilde, sigma_tilde)) / sigma_tilde

  num_step = 10
  ts = np.asarray(jax_deis.sampler.get_rev_ts(sde, num_step, 2.0, ts_phase="t"))
  abar = np.asarray(t2alpha(jnp.asarray(ts)))
  sigmas = np.sqrt((1.0 - abar) / abar)
  z_init = np.random.default_rng(7).standard_normal((6, 2))
  arrays = {"sigmas": sigmas, "x_init": z_init / np.sqrt(abar[0]), "ts": ts}
  for order in (2, 3):  # jax_deis: ab_order = polynomial degree = order - 1 (0 is unsupported)
    sampler = jax_deis.get_sampler(
        sde,
        eps_fn,
        ts_phase="t",
        ts_order=2.0,
        num_step=num_step,
        method="t_ab",
        ab_order=order - 1,
    )
    out = np.asarray(sampler(jnp.asarray(z_init)))
    arrays[f"out_order{order}"] = out / np.sqrt(abar[-1])
  np.savez(args.out, **arrays)
  print("wrote", args.out, {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
  main()
