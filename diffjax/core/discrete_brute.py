"""Brute force over every sequence, V = 4, L = 3: the exact answers of the discrete processes' tests.

Everything is computed on the full state space S^L (S = V + 1 with the mask, or V) with explicit
Kronecker-product transition matrices in float64 NumPy, from the definitions only: q(x_t | x_0) =
⊗_l (α I + (1 − α) 1 mᵀ), Bayes' rule for posteriors, ratios of marginals for concrete scores.
None of diffjax's per-token formulas is used here.
"""

import itertools

import numpy as np

V, L = 4, 3


class Brute:
  """The data law p_0 (random, full support on V^L) and the process on S^L for one graph."""

  def __init__(self, absorbing: bool, seed: int = 0):
    self.absorbing = absorbing
    self.S = V + 1 if absorbing else V
    self.states = np.array(list(itertools.product(range(self.S), repeat=L)))  # [N, L]
    self.N = len(self.states)
    self.m = np.eye(self.S)[V] if absorbing else np.full(self.S, 1.0 / V)
    rng = np.random.default_rng(seed)
    self.data_idx = np.array([self.index(s) for s in itertools.product(range(V), repeat=L)])
    self.p0 = np.zeros(self.N)
    self.p0[self.data_idx] = rng.dirichlet(np.ones(len(self.data_idx)))

  def index(self, seq) -> int:
    return int(np.ravel_multi_index(tuple(seq), (self.S,) * L))

  def token_matrix(self, alpha: float) -> np.ndarray:
    """q(x_t = j | x_0 = i) for one token, [S, S]."""
    return alpha * np.eye(self.S) + (1 - alpha) * self.m[None, :]

  def full_matrix(self, alpha: float) -> np.ndarray:
    """q(x_t | x_0) on S^L [N, N] (rows x_0)."""
    out = np.ones((1, 1))
    for _ in range(L):
      out = np.kron(out, self.token_matrix(alpha))
    return out

  def marginal(self, alpha: float) -> np.ndarray:
    return self.p0 @ self.full_matrix(alpha)

  def posterior_x0(self, alpha: float) -> np.ndarray:
    """p(x_0 | x_t) [N_t, N_0] (rows with p_t = 0 left 0)."""
    joint = self.p0[:, None] * self.full_matrix(alpha)  # [x0, xt]
    pt = joint.sum(0)
    return np.where(pt[:, None] > 0, joint.T / np.where(pt > 0, pt, 1)[:, None], 0.0)

  def token_posterior(self, alpha: float) -> np.ndarray:
    """p(x_0^l = v | x_t) [N, L, S] (no mass on the mask)."""
    post = self.posterior_x0(alpha)
    out = np.zeros((self.N, L, self.S))
    for l in range(L):
      for v in range(self.S):
        out[:, l, v] = post[:, self.states[:, l] == v].sum(1)
    return out

  def concrete_score(self, alpha: float) -> np.ndarray:
    """p_t(x with token l set to y) / p_t(x) [N, L, S] (1 at y = x_l; 0 where p_t(x) = 0)."""
    pt = self.marginal(alpha)
    powers = self.S ** np.arange(L - 1, -1, -1)  # [L]
    y = np.arange(self.S)
    nbr = (
        np.arange(self.N)[:, None, None]
        + (y[None, None, :] - self.states[:, :, None]) * powers[None, :, None]
    )  # index of x with token l set to y, [N, L, S]
    safe = np.where(pt > 0, pt, 1.0)
    return np.where(pt[:, None, None] > 0, pt[nbr] / safe[:, None, None], 0.0)

  def reverse_full(self, alpha_s: float, alpha_t: float) -> np.ndarray:
    """The true reverse q(x_s | x_t) [N_t, N_s] (s < t)."""
    ps = self.marginal(alpha_s)
    step = self.full_matrix(alpha_t / alpha_s)  # q(x_t | x_s) [s, t]
    joint = ps[:, None] * step
    pt = joint.sum(0)
    return np.where(pt[:, None] > 0, joint.T / np.where(pt > 0, pt, 1)[:, None], 0.0)

  def token_kernel(self, per_token: np.ndarray) -> np.ndarray:
    """The full kernel K[x, y] = Π_l k(y_l | x, l) from per-token probabilities [N, L, S]."""
    k = np.ones((self.N, self.N))
    for l in range(L):
      k *= per_token[:, l, :][:, self.states[:, l]]
    return k

  def data_law(self, law: np.ndarray) -> np.ndarray:
    """A law on S^L restricted to the data sequences (what a sampler's output is), [V^L]."""
    return law[self.data_idx]


def tv(p, q) -> float:
  return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def empirical(brute: Brute, samples: np.ndarray) -> np.ndarray:
  """Histogram of samples [n, L] over the data sequences, [V^L] (mass off them is dropped)."""
  idx = np.ravel_multi_index(tuple(np.asarray(samples).T), (brute.S,) * L)
  counts = np.bincount(idx, minlength=brute.N).astype(float) / len(samples)
  return counts[brute.data_idx]


def table_fn(table: np.ndarray, brute: Brute):
  """A JAX function x [B, L] -> table[index(x)] (a brute-force "network")."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  tab = jnp.asarray(table, jnp.float32)
  powers = jnp.asarray(brute.S ** np.arange(L - 1, -1, -1))

  def fn(x):
    return tab[jnp.sum(x * powers, axis=-1)]

  return fn


def gauss_legendre(n: int, a: float = 0.0, b: float = 1.0):
  nodes, weights = np.polynomial.legendre.leggauss(n)
  return a + (b - a) * (nodes + 1) / 2, weights * (b - a) / 2
