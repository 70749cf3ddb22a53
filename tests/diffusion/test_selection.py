"""Best of K against a NumPy loop."""

import jax.numpy as jnp
import numpy as np

from lumiere_jax.diffusion.selection import best_of, repeat_candidates


def test_repeat_candidates_lays_each_items_copies_side_by_side():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = np.asarray(repeat_candidates(jnp.asarray(x), 2))
    np.testing.assert_array_equal(out, x[[0, 0, 1, 1, 2, 2]])


def test_best_of_keeps_each_items_highest_scoring_candidate():
    rng = np.random.default_rng(0)
    items, k = 5, 4
    candidates = rng.normal(size=(items * k, 3, 2)).astype(np.float32)
    scores = rng.normal(size=(items * k,)).astype(np.float32)
    scores[8:12] = 1.5                           # a tie: the first candidate wins
    expected = np.stack([candidates[b * k + max(range(k), key=lambda i: (scores[b * k + i], -i))]
                         for b in range(items)])
    out = np.asarray(best_of(jnp.asarray(candidates), jnp.asarray(scores), k))
    np.testing.assert_array_equal(out, expected)
    assert np.array_equal(out[2], candidates[8])
