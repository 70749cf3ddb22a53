"""Parametrizations (eps / v / x0), exact conversions, and the training loss.

With `x_t = alpha x0 + sigma eps` and `alpha^2 + sigma^2 = 1`:
  eps-prediction:  x0 = (x_t - sigma eps) / alpha
  v-prediction:    v = alpha eps - sigma x0;  x0 = alpha x_t - sigma v;  eps = sigma x_t + alpha v
  x0-prediction:   eps = (x_t - alpha x0) / sigma
`alpha` and `sigma` are per example, shape (B,), broadcast over the remaining axes of x.
"""

from __future__ import annotations

from typing import Callable

import einops
import jax
import jax.numpy as jnp

from lumiere_jax.diffusion.schedules import Schedule

PREDICTIONS = ("eps", "v", "x0")
WEIGHTINGS = ("plain", "min_snr")

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


def check_prediction(prediction: str) -> None:
    """ValueError unless `prediction` is one of 'eps', 'v', 'x0'."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction={prediction!r}; expected one of {PREDICTIONS}.")


def bcast(a: jax.Array, x: jax.Array) -> jax.Array:
    """Per-example values a: (B,) (or scalar) -> shape (B, 1, ..., 1) broadcastable to x."""
    a = jnp.asarray(a)
    return jnp.expand_dims(a, tuple(range(a.ndim, x.ndim))) if a.ndim else a


def to_x0_eps(output: jax.Array, x_t: jax.Array, alpha: jax.Array, sigma: jax.Array,
              prediction: str) -> tuple[jax.Array, jax.Array]:
    """Model output -> (x0, eps), both x_t's shape. alpha, sigma: (B,) or scalars."""
    check_prediction(prediction)
    a, s = bcast(alpha, x_t), bcast(sigma, x_t)
    if prediction == "eps":
        return (x_t - s * output) / a, output
    if prediction == "v":
        return a * x_t - s * output, s * x_t + a * output
    return output, (x_t - a * output) / s


def from_x0_eps(x0: jax.Array, eps: jax.Array, alpha: jax.Array, sigma: jax.Array,
                prediction: str) -> jax.Array:
    """(x0, eps) -> the quantity a `prediction`-type model outputs (the training target)."""
    check_prediction(prediction)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    return bcast(alpha, x0) * eps - bcast(sigma, x0) * x0


def convert(output: jax.Array, x_t: jax.Array, alpha: jax.Array, sigma: jax.Array,
            source: str, target: str) -> jax.Array:
    """Re-express a `source`-type model output as a `target`-type output."""
    check_prediction(target)
    if source == target:
        check_prediction(source)
        return output
    x0, eps = to_x0_eps(output, x_t, alpha, sigma, source)
    return from_x0_eps(x0, eps, alpha, sigma, target)


def eps_to_x0(eps, x_t, alpha, sigma):
    """x0 = (x_t - sigma eps) / alpha."""
    return to_x0_eps(eps, x_t, alpha, sigma, "eps")[0]


def x0_to_eps(x0, x_t, alpha, sigma):
    """eps = (x_t - alpha x0) / sigma."""
    return to_x0_eps(x0, x_t, alpha, sigma, "x0")[1]


def v_to_x0(v, x_t, alpha, sigma):
    """x0 = alpha x_t - sigma v."""
    return to_x0_eps(v, x_t, alpha, sigma, "v")[0]


def v_to_eps(v, x_t, alpha, sigma):
    """eps = sigma x_t + alpha v."""
    return to_x0_eps(v, x_t, alpha, sigma, "v")[1]


def x0_eps_to_v(x0, eps, alpha, sigma):
    """v = alpha eps - sigma x0."""
    return from_x0_eps(x0, eps, alpha, sigma, "v")


def loss_weight(log_snr: jax.Array, prediction: str, weighting: str = "plain",
                gamma: float = 5.0) -> jax.Array:
    """Per-example weight on the `prediction`-space MSE, log_snr: (B,) -> (B,).

    'plain': 1. 'min_snr' (Hang et al. 2023): the weight that makes the loss equal
    `min(snr, gamma) * ||x0_hat - x0||^2`, i.e. `min(snr, gamma) / snr` for eps,
    `min(snr, gamma) / (snr + 1)` for v and `min(snr, gamma)` for x0.
    """
    check_prediction(prediction)
    if weighting == "plain":
        return jnp.ones_like(log_snr)
    if weighting != "min_snr":
        raise ValueError(f"weighting={weighting!r}; expected one of {WEIGHTINGS}.")
    if not gamma > 0:
        raise ValueError(f"gamma={gamma!r} must be > 0 for min_snr weighting (5.0 is usual).")
    snr = jnp.exp(log_snr)
    clipped = jnp.minimum(snr, gamma)
    if prediction == "eps":
        # min(snr, gamma) / snr, written so snr -> 0 stays finite.
        return jnp.minimum(1.0, gamma * jnp.exp(-log_snr))
    if prediction == "v":
        return clipped / (snr + 1.0)
    return clipped


def sample_times(key: jax.Array, batch: int, power: float = 1.0) -> jax.Array:
    """(batch,) diffusion times `t = 1 - (1 - u)^power`, u ~ U(0, 1): uniform for power 1,
    towards high noise (t near 1) for power > 1 (CDF `1 - (1 - t)^(1 / power)`)."""
    u = jax.random.uniform(key, (batch,), jnp.float32)
    return 1.0 - (1.0 - u) ** power


def diffusion_loss(denoise_fn: DenoiseFn, x0: jax.Array, key: jax.Array, schedule: Schedule,
                   prediction: str = "v", weighting: str = "plain", gamma: float = 5.0,
                   *, t: jax.Array | None = None, eps: jax.Array | None = None) -> jax.Array:
    """Denoising loss, a scalar: mean over the batch of weight(t) * mean((output - target)^2).

    denoise_fn(x_t, t) -> output with x_t's shape; x0: (B, ...) float clean data;
    t: optional (B,) times, else t ~ U(0, 1) per example; eps: optional noise of x0's
    shape, else drawn N(0, I) from `key`. The target is eps, v or x0
    according to `prediction`; `weighting` is 'plain' or 'min_snr' (see `loss_weight`).
    """
    return jnp.mean(per_example_loss(denoise_fn, x0, key, schedule, prediction, weighting,
                                     gamma, t=t, eps=eps))


def per_example_loss(denoise_fn: DenoiseFn, x0: jax.Array, key: jax.Array, schedule: Schedule,
                     prediction: str = "v", weighting: str = "plain", gamma: float = 5.0,
                     *, t: jax.Array | None = None, eps: jax.Array | None = None
                     ) -> jax.Array:
    """`diffusion_loss` before the batch mean: (B,) of weight(t) * mean((output - target)^2)."""
    check_prediction(prediction)
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting={weighting!r}; expected one of {WEIGHTINGS}.")
    if x0.ndim < 1:
        raise ValueError(f"x0 must have a leading batch axis, got shape {x0.shape}.")
    batch = x0.shape[0]
    key_t, key_eps = jax.random.split(key)
    if t is None:
        t = jax.random.uniform(key_t, (batch,), jnp.float32)
    t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,))
    if eps is None:
        eps = jax.random.normal(key_eps, x0.shape, x0.dtype)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps has shape {eps.shape}; expected x0's {x0.shape}.")
    alpha, sigma = schedule.alpha_sigma(t)
    x_t = bcast(alpha, x0) * x0 + bcast(sigma, x0) * eps
    output = denoise_fn(x_t.astype(x0.dtype), t)
    if output.shape != x0.shape:
        raise ValueError(f"denoise_fn returned shape {output.shape}; expected x0's {x0.shape}.")
    target = from_x0_eps(x0, eps, alpha, sigma, prediction)
    err = jnp.square(output.astype(jnp.float32) - target.astype(jnp.float32))
    per_example = jnp.mean(einops.rearrange(err, 'b ... -> b (...)'), axis=1)
    return loss_weight(schedule.log_snr(t), prediction, weighting, gamma) * per_example
