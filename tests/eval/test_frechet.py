"""frechet_distance against SciPy's closed form (non-symmetric sqrtm of S_a S_b)."""

import warnings

import numpy as np
import pytest
import scipy.linalg

from lumiere_jax.eval import frechet_distance


def scipy_reference(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():  # singular products (N < D) warn, yet are accurate
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * covmean))


@pytest.mark.parametrize("n_a, n_b, dim, seed", [
    (500, 400, 8, 0), (300, 300, 32, 1), (2000, 1500, 64, 2),
    (60, 50, 64, 3), (16, 16, 160, 4),  # fewer samples than features, as in FVD
])
def test_matches_scipy_closed_form(n_a, n_b, dim, seed):
    rng = np.random.default_rng(seed)
    mix_a, mix_b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
    a = rng.normal(size=(n_a, dim)) @ mix_a + rng.normal(size=dim)
    b = 0.7 * rng.normal(size=(n_b, dim)) @ mix_b + 2 * rng.normal(size=dim)
    got, want = frechet_distance(a, b), scipy_reference(a, b)
    assert abs(got - want) <= 1e-6 * abs(want)
    assert abs(frechet_distance(b, a) - got) <= 1e-9 * abs(got)  # symmetric


def test_identical_sets_give_zero_even_rank_deficient():
    rng = np.random.default_rng(3)
    for n, dim in ((200, 16), (16, 400)):  # the second: FVD-like, N < D
        x = 5 * rng.normal(size=(n, dim)).astype(np.float32)
        assert abs(frechet_distance(x, x)) < 1e-6


def test_shifted_mean_adds_its_squared_norm():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 10))
    shift = rng.normal(size=10)
    assert frechet_distance(x, x + shift) == pytest.approx(shift @ shift, rel=1e-9)


@pytest.mark.parametrize("a, b, message", [
    (np.zeros(5), np.zeros((5, 2)), "feats_a must be"),
    (np.zeros((5, 2)), np.zeros((1, 2)), "feats_b needs at least 2"),
    (np.zeros((5, 2)), np.zeros((5, 3)), "same feature size"),
    (np.full((5, 2), np.nan), np.zeros((5, 2)), "feats_a holds NaN"),
    (np.zeros((5, 2), str), np.zeros((5, 2)), "feats_a must be real"),
])
def test_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        frechet_distance(a, b)
