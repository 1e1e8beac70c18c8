"""experiments/quick_train.py: the exact W2 the experiment scripts report is the optimal matching."""

import itertools
import os
import sys

import numpy as np

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments")
)
import quick_train  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_exact_w2_is_the_best_of_all_matchings():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + 1.0
  cost = ((a[:, None] - b[None]) ** 2).sum(-1)
  best = min(cost[np.arange(6), list(p)].mean() for p in itertools.permutations(range(6)))
  np.testing.assert_allclose(quick_train.exact_w2(a, b), np.sqrt(best), rtol=1e-5)
  assert quick_train.exact_w2(a, a) == 0.0
