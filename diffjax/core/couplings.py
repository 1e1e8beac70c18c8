r"""Minibatch couplings on device: exact assignment and entropic OT (Sinkhorn), pure and jittable.

Minibatch OT-CFM and SB-CFM (Tong et al. 2023, arXiv:2302.00482, §3.2–3.3) pair the B data points
of a batch with B source points (noise or a second domain) through an optimal plan for the cost
C_ij = ‖x_i − y_j‖². torchcfm computes that plan on the host (POT's `ot.emd` / `ot.sinkhorn`) and
per GPU, so under data parallelism each device couples only its own slice (torchcfm#19). Here the
solvers are JAX functions called inside the jitted train step on the *global* batch: under `jit`
with the batch sharded `NamedSharding(mesh, P('data'))`, `pairwise_sq_dists(x, y)` is the
[B, B] matrix of the whole batch (XLA all-gathers the operand it needs along `data`), so every
device solves the same global problem; `tests/core/test_couplings.py` checks that the plan on 8
devices equals the plan on one.

Why not ott-jax: it is not among the GPU image's packages (jax, flax, optax, orbax, chex, torch,
ml_collections) and the solvers needed here are short: a fixed-iteration log-domain Sinkhorn
(static loop length: one compilation, no host sync) and two exact assignments.

Solvers (cost [n, m] float):
  sinkhorn_log(cost, epsilon, num_iters)   entropic plan P [n, m] with uniform marginals 1/n, 1/m
  host_assignment(cost)                     permutation for square cost: SciPy's Jonker–Volgenant
                                            (`linear_sum_assignment`, float64) on the host through
                                            `jax.pure_callback`; the default ("exact"), as torchcfm
                                            solves it with POT's `emd` on the host
  auction_assignment(cost)                  the same permutation on device (exact up to n·ε_final):
                                            no host round trip, but a `while_loop` of many tiny
                                            bidding rounds; at B = 512 on 2-D toys it takes 6–14 s
                                            per batch on 2 CPU cores against SciPy's 0.05 s
                                            (benchmarks/couplings.py), so it is opt-in
                                            (`method.coupling.assignment="auction"`)
  brute_force_assignment(cost)              permutation by enumerating all n! (n ≤ 8): the oracle
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
BRUTE_FORCE_MAX_N = 8


def pairwise_sq_dists(x: Array, y: Array) -> Array:
  """C_ij = ‖x_i − y_j‖² [n, m] for x [n, ...], y [m, ...] (flattened), in float32.

  Computed as ‖x‖² + ‖y‖² − 2 x·y with float32 accumulation, clipped at 0."""
  x = x.reshape(x.shape[0], -1).astype(jnp.float32)
  y = y.reshape(y.shape[0], -1).astype(jnp.float32)
  xy = jnp.dot(x, y.T, precision=jax.lax.Precision.HIGHEST)
  sq = jnp.sum(x * x, axis=1)[:, None] + jnp.sum(y * y, axis=1)[None, :] - 2.0 * xy
  return jnp.maximum(sq, 0.0)


def mask_classes(cost: Array, row_labels: Array, col_labels: Array, penalty: float | Array):
  """cost + penalty where row_labels[i] ≠ col_labels[j]: per-class couplings in one problem.

  With `penalty` larger than n times the cost range, an optimal assignment never pairs two
  classes whenever a within-class one exists (every class has as many rows as columns)."""
  differ = row_labels[:, None] != col_labels[None, :]
  return cost + jnp.where(differ, penalty, 0.0)


def sinkhorn_log(
    cost: Array, epsilon: float | Array, num_iters: int, mask: Array | None = None
) -> Array:
  r"""The entropic OT plan argmin_P ⟨P, C⟩ − ε H(P), marginals 1/n and 1/m (Cuturi 2013).

  Log-domain Sinkhorn (Peyré & Cuturi 2019, §4.4, Remark 4.23): potentials f [n], g [m],
    f ← ε log a − ε LSE_j((g_j − C_ij)/ε),   g ← ε log b − ε LSE_i((f_i − C_ij)/ε),
  P_ij = exp((f_i + g_j − C_ij)/ε); a fixed number of iterations (`lax.fori_loop`), stable for
  any ε > 0. The column marginal is exact after each iteration, the row one converges.

  Args:
    cost: [n, m] float.
    epsilon: entropic regularisation ε > 0, in the cost's units (SB-CFM: 2σ², Tong et al. §3.3).
    num_iters: Sinkhorn iterations (static).
    mask: optional bool [n, m]; False entries get zero mass (per-class couplings). Every row and
      column needs at least one True entry.

  Returns:
    P [n, m] float32, sum 1.
  """
  cost = jnp.asarray(cost, jnp.float32)
  n, m = cost.shape
  eps = jnp.asarray(epsilon, jnp.float32)
  neg = -cost / eps
  if mask is not None:
    neg = jnp.where(mask, neg, -jnp.inf)
  log_a, log_b = -math.log(n), -math.log(m)

  def body(_, fg):
    f, g = fg  # potentials divided by ε
    f = log_a - jax.nn.logsumexp(neg + g[None, :], axis=1)
    g = log_b - jax.nn.logsumexp(neg + f[:, None], axis=0)
    return f, g

  f, g = jax.lax.fori_loop(0, int(num_iters), body, (jnp.zeros(n), jnp.zeros(m)))
  return jnp.exp(neg + f[:, None] + g[None, :])


def sample_plan(rng: Array, plan: Array, num: int) -> tuple[Array, Array]:
  """`num` index pairs (i, j) drawn i.i.d. from the plan P [n, m] (with replacement, as torchcfm's
  `OTPlanSampler.sample_plan`): rows [num] and columns [num], int32."""
  n, m = plan.shape
  logits = jnp.log(jnp.maximum(plan.reshape(-1), 0.0))
  flat = jax.random.categorical(rng, logits, shape=(num,))
  return (flat // m).astype(jnp.int32), (flat % m).astype(jnp.int32)


def _permutations(n: int) -> np.ndarray:
  return np.asarray(list(itertools.permutations(range(n))), np.int32)


def brute_force_assignment(cost: Array) -> Array:
  """argmin_π Σ_i C_{i, π(i)} over all n! permutations (n ≤ 8): π as int32 [n], π[i] = column of
  row i. The test oracle, and usable on device for tiny batches."""
  n = cost.shape[0]
  if cost.shape != (n, n) or n > BRUTE_FORCE_MAX_N:
    raise ValueError(f"brute-force assignment needs a square cost with n ≤ 8, got {cost.shape}")
  perms = jnp.asarray(_permutations(n))  # [n!, n]
  totals = jnp.sum(jnp.asarray(cost, jnp.float32)[jnp.arange(n)[None, :], perms], axis=1)
  return perms[jnp.argmin(totals)]


def auction_assignment(
    cost: Array,
    *,
    eps_final_fraction: float = 1e-6,
    eps_start_fraction: float = 0.1,
    eps_factor: float = 5.0,
    max_rounds: int = 100_000,
) -> Array:
  r"""Optimal assignment of a square cost by Bertsekas's auction with ε-scaling (Bertsekas 1988;
  Bertsekas & Castañón 1991, Jacobi variant: every unassigned row bids in the same round).

  Rows ("persons") bid for columns ("objects") of value −C_ij − p_j: each unassigned row bids on its
  best column j* the price p_{j*} + (best − second best) + ε; each column goes to its highest
  bidder, whose previous owner becomes unassigned. A phase ends when every row holds a column;
  the final assignment is within n·ε of optimal (ε-complementary slackness), hence exactly optimal
  when n·ε is below the gap between the best and second-best assignment. ε starts at
  `eps_start_fraction` of the cost range and shrinks by `eps_factor` per phase down to
  `eps_final_fraction` of the range (prices are kept between phases, assignments restart).

  Args:
    cost: [n, n] float.
    eps_final_fraction, eps_start_fraction, eps_factor: the ε schedule (relative to the range).
    max_rounds: cap on bidding rounds over all phases (a bound for `lax.while_loop`; never reached
      on the batches diffjax solves, and the result is still a permutation if it were).

  Returns:
    π int32 [n]: the column assigned to each row.
  """
  n = cost.shape[0]
  if cost.shape != (n, n):
    raise ValueError(f"assignment needs a square cost matrix, got {cost.shape}")
  if n == 1:
    return jnp.zeros(1, jnp.int32)
  cost = jnp.asarray(cost, jnp.float32)
  lo, hi = jnp.min(cost), jnp.max(cost)
  value = -(cost - lo) / jnp.maximum(hi - lo, 1e-30)  # benefits in [-1, 0]: ε is relative
  eps_final = float(eps_final_fraction)
  num_phases = max(
      1, int(math.ceil(math.log(eps_start_fraction / eps_final) / math.log(eps_factor))) + 1
  )
  rows = jnp.arange(n)

  def bid_round(state):
    prices, owner, assigned, phase, rounds = state
    eps = jnp.maximum(eps_start_fraction / eps_factor**phase, eps_final)
    net = value - prices[None, :]
    j_star = jnp.argmax(net, axis=1)
    second = jnp.max(jnp.where(rows[None, :] == j_star[:, None], -jnp.inf, net), axis=1)
    bidding = assigned < 0
    bid = jnp.where(bidding, value[rows, j_star] - second + eps, -jnp.inf)  # new price offered
    bids = jnp.where((j_star[:, None] == rows[None, :]) & bidding[:, None], bid[:, None], -jnp.inf)
    top_bid, winner = jnp.max(bids, axis=0), jnp.argmax(bids, axis=0)
    won = top_bid > -jnp.inf  # columns that got a bid this round
    # The previous owners of columns that were won lose them; the winners take them.
    lost = jnp.zeros(n, bool).at[jnp.where(won & (owner >= 0), owner, n)].set(True, mode="drop")
    assigned = jnp.where(lost, -1, assigned)
    assigned = assigned.at[jnp.where(won, winner, n)].set(rows, mode="drop")
    owner = jnp.where(won, winner, owner)
    prices = jnp.where(won, top_bid, prices)
    # A finished phase with phases left: restart the assignment at a smaller ε.
    done = jnp.all(assigned >= 0)
    next_phase = done & (phase + 1 < num_phases)
    assigned = jnp.where(next_phase, -1, assigned)
    owner = jnp.where(next_phase, -1, owner)
    return prices, owner, assigned, phase + next_phase.astype(jnp.int32), rounds + 1

  def unfinished(state):
    _, _, assigned, _, rounds = state
    return jnp.any(assigned < 0) & (rounds < max_rounds)

  init = (jnp.zeros(n), -jnp.ones(n, jnp.int32), -jnp.ones(n, jnp.int32), jnp.int32(0), 0)
  _, owner, assigned, _, _ = jax.lax.while_loop(unfinished, bid_round, init)
  # Only if max_rounds cut the last phase short: complete with the free columns in order.
  free_cols = jnp.argsort(owner >= 0, stable=True)
  missing = jnp.cumsum(assigned < 0) - 1
  return jnp.where(assigned >= 0, assigned, free_cols[missing]).astype(jnp.int32)


def host_assignment(cost: Array) -> Array:
  """The optimal assignment π int32 [n] of a square cost, solved on the host by SciPy's
  `linear_sum_assignment` (Jonker–Volgenant, float64) through `jax.pure_callback`: jittable and
  vmappable (one host call per problem). Under a sharded `jit` the callback runs once on the
  gathered [n, n] cost and its result is broadcast, so every device gets the same permutation."""
  n = cost.shape[-1]
  if cost.shape[-2:] != (n, n):
    raise ValueError(f"assignment needs a square cost matrix, got {cost.shape}")

  def solve(c):
    from scipy import optimize  # pylint: disable=g-import-not-at-top

    c = np.asarray(c, np.float64)
    if not np.all(np.isfinite(c)):
      raise ValueError("host_assignment: the cost matrix has non-finite entries")
    return optimize.linear_sum_assignment(c)[1].astype(np.int32)  # rows are 0..n-1 in order

  out = jax.ShapeDtypeStruct(cost.shape[:-1], jnp.int32)
  return jax.pure_callback(solve, out, jax.lax.stop_gradient(cost), vmap_method="sequential")


ASSIGNMENTS = {"host": host_assignment, "auction": auction_assignment}


def assignment_cost(cost: Array, perm: Array) -> Array:
  """Σ_i C_{i, π(i)}."""
  return jnp.sum(cost[jnp.arange(cost.shape[0]), perm])


SOLVERS = ("independent", "exact", "sinkhorn")


def couple(
    rng: Array,
    x: Array,
    y: Array,
    *,
    solver: str,
    epsilon: float = 0.05,
    num_iters: int = 100,
    normalize_cost: bool = False,
    assignment: str = "host",
    row_labels: Array | None = None,
    col_labels: Array | None = None,
) -> tuple[Array, Array]:
  """Index pairs (rows into x, columns into y), int32 [B] each, of a minibatch coupling.

  "independent": (i, i), the product coupling of the batch as drawn (I-CFM).
  "exact": (i, π(i)) with π the optimal assignment for ‖x_i − y_j‖² (OT-CFM, Tong et al. 2023,
    Alg. 3 with POT's exact `emd`), by `assignment` = "host" (`host_assignment`) or "auction".
  "sinkhorn": B pairs drawn from the entropic plan with regularisation `epsilon` (SB-CFM:
    ε = 2σ² on the raw cost, Tong et al. §3.3; torchcfm `OTPlanSampler(method="sinkhorn")`).
  `normalize_cost` divides the cost by its maximum first (torchcfm's option; ε is then relative).
  With labels, pairs never cross classes (per-class couplings): costs between different labels
  are masked (Sinkhorn) or penalised beyond any within-class assignment (exact).
  Everything here is under `stop_gradient`: the coupling is data, not a function of parameters.
  """
  if solver not in SOLVERS:
    raise ValueError(f"method.coupling.solver={solver!r}: expected one of {SOLVERS}")
  if assignment not in ASSIGNMENTS:
    raise ValueError(
        f"method.coupling.assignment={assignment!r}: expected one of {tuple(ASSIGNMENTS)}"
    )
  n = x.shape[0]
  if solver == "independent":
    idx = jnp.arange(n, dtype=jnp.int32)
    return idx, idx
  cost = jax.lax.stop_gradient(pairwise_sq_dists(x, y))
  if normalize_cost:
    cost = cost / jnp.maximum(jnp.max(cost), 1e-30)
  labelled = row_labels is not None
  if solver == "exact":
    if labelled:
      # Costs lie in [0, max]: a penalty of (n + 1)·max exceeds every within-class total.
      cost = mask_classes(cost, row_labels, col_labels, (n + 1.0) * (jnp.max(cost) + 1.0))
    return jnp.arange(n, dtype=jnp.int32), ASSIGNMENTS[assignment](cost)
  mask = (row_labels[:, None] == col_labels[None, :]) if labelled else None
  plan = sinkhorn_log(cost, epsilon, num_iters, mask)
  return sample_plan(rng, plan, n)
