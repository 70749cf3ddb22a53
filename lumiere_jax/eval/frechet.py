"""Fréchet distance between two sets of features (FID / FVD's final step).

    d = frechet_distance(feats_a, feats_b)   # (N, D), (M, D) -> float

d = |mu_a - mu_b|^2 + Tr(S_a) + Tr(S_b) - 2 Tr((S_a^1/2 S_b S_a^1/2)^1/2), with the
unbiased (N - 1) covariances, in float64. The trace term is computed in a symmetric form
that never takes square roots of round-off:
- fewer samples than features (FVD: tens of clips, 400 logits): with centred data X_a,
  X_b, S_a^1/2 S_b S_a^1/2 has the eigenvalues of C C^T, C = X_a X_b^T / sqrt((N-1)(M-1)),
  so the term is the sum of C's singular values (exact zero for the null space);
- otherwise: S_a^1/2 from `eigh`, then the eigenvalues of the symmetric PSD
  S_a^1/2 S_b S_a^1/2 (as tensorflow_gan's `trace_sqrt_product`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["frechet_distance", "gaussian_stats"]


def _check_features(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (N, D) features, got shape {arr.shape}.")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}.")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples for a covariance, got {arr.shape[0]}.")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf.")
    return arr


def gaussian_stats(feats: Any, name: str = "feats") -> tuple[np.ndarray, np.ndarray]:
    """(N, D) -> mean (D,), covariance (D, D) with the (N - 1) normalization, float64."""
    x = _check_features(feats, name)
    return x.mean(0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray, cov_a: np.ndarray,
                        cov_b: np.ndarray) -> float:
    """Tr((S_a^1/2 S_b S_a^1/2)^1/2) for samples a (N, D), b (M, D) and their covariances."""
    n, m, dim = len(a), len(b), a.shape[1]
    if min(n, m) <= dim:
        xa, xb = a - a.mean(0), b - b.mean(0)
        cross = (xa @ xb.T) / np.sqrt((n - 1) * (m - 1))
        return float(np.linalg.svd(cross, compute_uv=False).sum())
    root_a = _sqrt_psd(cov_a)
    inner = root_a @ cov_b @ root_a
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum())


def frechet_distance(feats_a: Any, feats_b: Any) -> float:
    """Fréchet distance of Gaussians fitted to (N, D) and (M, D) features (float64).

    ValueError (naming the argument) for non-2-D or non-numeric input, fewer than 2 rows,
    non-finite values, or different feature sizes D.
    """
    a, b = _check_features(feats_a, "feats_a"), _check_features(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have the same feature size D, got "
                         f"{a.shape[1]} and {b.shape[1]}.")
    (mu_a, cov_a), (mu_b, cov_b) = gaussian_stats(a), gaussian_stats(b)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b)
                 - 2.0 * _trace_sqrt_product(a, b, cov_a, cov_b))
