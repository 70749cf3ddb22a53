"""Noise schedules in continuous time: `x_t = alpha(t) x0 + sigma(t) eps`, t in [0, 1].

t = 0 is (nearly) clean data, t = 1 is (nearly) pure noise. Every schedule is defined by
its log signal-to-noise ratio `log_snr(t) = log(alpha^2 / sigma^2)`, strictly decreasing in
t and finite at both ends; `alpha^2 = sigmoid(log_snr)` and `sigma^2 = sigmoid(-log_snr)`,
so `alpha^2 + sigma^2 = 1` (variance preserving).

Two families:
  * `cosine_schedule(image_size, base_size)`: the cosine schedule in log-SNR form with the
    resolution shift of "simple diffusion" (Hoogeboom et al. 2023):
    `log_snr(t) = -2 log tan(pi t / 2) + 2 log(base_size / image_size)`, with t mapped onto
    the `[logsnr_min, logsnr_max]` range before the shift. A 1024 px SSR with
    `base_size=128` sees the same per-128px-patch SNR as a 128 px base model.
  * `discrete_schedule(ddpm_betas('linear'|'cosine', N))`: the DDPM beta schedules, with
    log-SNR linearly interpolated between the N discrete steps placed at `t = i / (N - 1)`.
    `discrete_timesteps(t, N)` maps continuous t back to the integer index such a model
    was trained with.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

_KINDS = ("cosine", "discrete")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A variance-preserving noise schedule; hashable, so usable as a static jit argument.

    Attributes:
      kind: 'cosine' (shifted cosine log-SNR) or 'discrete' (interpolated DDPM betas).
      logsnr_min, logsnr_max: the cosine log-SNR range before the shift (t = 1 and t = 0).
      shift: added to the cosine log-SNR, `2 log(base_size / image_size)`.
      betas: the DDPM betas for kind 'discrete' (a tuple so the dataclass stays hashable).
    """

    kind: str = "cosine"
    logsnr_min: float = -15.0
    logsnr_max: float = 15.0
    shift: float = 0.0
    betas: tuple[float, ...] = ()

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"Schedule.kind={self.kind!r}; expected one of {_KINDS}.")
        if self.kind == "cosine":
            if not (math.isfinite(self.logsnr_min) and math.isfinite(self.logsnr_max)
                    and self.logsnr_min < self.logsnr_max):
                raise ValueError(
                    f"Schedule.logsnr_min={self.logsnr_min}, logsnr_max={self.logsnr_max}: "
                    "need finite values with logsnr_min < logsnr_max (e.g. -15, 15).")
            if not math.isfinite(self.shift):
                raise ValueError(f"Schedule.shift={self.shift} must be finite.")
        else:
            b = np.asarray(self.betas, dtype=np.float64)
            if b.ndim != 1 or b.size < 2 or not np.all((b > 0) & (b < 1)):
                raise ValueError(
                    "Schedule.betas must hold >= 2 values in (0, 1) for kind 'discrete'; "
                    "build them with ddpm_betas('linear'|'cosine', num_timesteps).")

    # -- core ------------------------------------------------------------------------
    def log_snr(self, t: jax.Array) -> jax.Array:
        """log(alpha^2 / sigma^2) at time t (any shape, float in [0, 1]); same shape, f32."""
        t = jnp.asarray(t, jnp.float32)
        if self.kind == "cosine":
            t_min, t_max = self._cosine_angle_range()
            return -2.0 * jnp.log(jnp.tan(t_min + t * (t_max - t_min))) + self.shift
        grid_t, grid_logsnr = _discrete_grid(self.betas)
        return jnp.interp(t, jnp.asarray(grid_t, jnp.float32),
                          jnp.asarray(grid_logsnr, jnp.float32))

    def _cosine_angle_range(self) -> tuple[float, float]:
        """The angles `atan(exp(-log_snr / 2))` of logsnr_max and logsnr_min (unshifted):
        the cosine schedule maps t in [0, 1] linearly onto them."""
        return (math.atan(math.exp(-0.5 * self.logsnr_max)),
                math.atan(math.exp(-0.5 * self.logsnr_min)))

    def time_of_log_snr(self, log_snr: jax.Array) -> jax.Array:
        """The inverse of `log_snr`: the time t in [0, 1] with that log-SNR (clipped to the
        schedule's range); same shape, float32."""
        lsnr = jnp.asarray(log_snr, jnp.float32)
        if self.kind == "cosine":
            t_min, t_max = self._cosine_angle_range()
            angle = jnp.arctan(jnp.exp(-0.5 * (lsnr - self.shift)))
            return jnp.clip((angle - t_min) / (t_max - t_min), 0.0, 1.0)
        grid_t, grid_logsnr = _discrete_grid(self.betas)  # decreasing log-SNR: flip it
        return jnp.interp(lsnr, jnp.asarray(grid_logsnr[::-1], jnp.float32),
                          jnp.asarray(grid_t[::-1], jnp.float32))

    def alpha_sigma(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(alpha(t), sigma(t)), each t's shape; alpha^2 + sigma^2 = 1."""
        lsnr = self.log_snr(t)
        return jnp.sqrt(jax.nn.sigmoid(lsnr)), jnp.sqrt(jax.nn.sigmoid(-lsnr))

    def snr(self, t: jax.Array) -> jax.Array:
        """alpha^2 / sigma^2 at time t."""
        return jnp.exp(self.log_snr(t))

    @property
    def num_timesteps(self) -> int | None:
        """N for a discrete schedule, None for a continuous one."""
        return len(self.betas) if self.kind == "discrete" else None


def cosine_schedule(image_size: int = 64, base_size: int = 64, *,
                    logsnr_min: float = -15.0, logsnr_max: float = 15.0) -> Schedule:
    """Shifted cosine schedule of "simple diffusion" for `image_size` px, matched to `base_size` px.

    `shift = 2 log(base_size / image_size)`: a larger image is noised more, so its
    `base_size` patches see the SNR the base model sees.
    """
    for name, v in (("image_size", image_size), ("base_size", base_size)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise ValueError(f"cosine_schedule: {name}={v!r} must be a positive number of pixels.")
    return Schedule(kind="cosine", logsnr_min=float(logsnr_min), logsnr_max=float(logsnr_max),
                    shift=2.0 * math.log(base_size / image_size))


def ddpm_betas(kind: str = "linear", num_timesteps: int = 1000, *, beta_start: float = 1e-4,
               beta_end: float = 0.02, cosine_s: float = 8e-3,
               max_beta: float = 0.999) -> np.ndarray:
    """DDPM betas: (num_timesteps,) float64.

    'linear': Ho et al. 2020, `linspace(beta_start, beta_end)` (scaled for N != 1000 as in
    improved DDPM: `beta * 1000 / N`). 'cosine': Nichol & Dhariwal 2021,
    `alpha_bar(t) = cos((t + s) / (1 + s) * pi / 2)^2`, betas clipped to `max_beta`.
    """
    if not (isinstance(num_timesteps, int) and num_timesteps >= 2):
        raise ValueError(f"ddpm_betas: num_timesteps={num_timesteps!r} must be an int >= 2.")
    if kind == "linear":
        scale = 1000.0 / num_timesteps
        if not 0.0 < beta_start * scale <= beta_end * scale < 1.0:
            raise ValueError(
                f"ddpm_betas: linear betas scaled to num_timesteps={num_timesteps} run from "
                f"{beta_start * scale} to {beta_end * scale}; need 0 < start <= end < 1 "
                f"(use num_timesteps > {int(1000 * beta_end)} or a smaller beta_end).")
        return np.linspace(beta_start * scale, beta_end * scale, num_timesteps, dtype=np.float64)
    if kind == "cosine":
        steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
        alpha_bar = np.cos((steps + cosine_s) / (1 + cosine_s) * np.pi / 2) ** 2
        return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], max_beta)
    raise ValueError(f"ddpm_betas: kind={kind!r}; expected 'linear' or 'cosine'.")


def discrete_schedule(betas: np.ndarray) -> Schedule:
    """A continuous-time view of DDPM betas: step i of N sits at t = i / (N - 1)."""
    return Schedule(kind="discrete", betas=tuple(float(b) for b in np.asarray(betas).ravel()))


def discrete_timesteps(t: jax.Array, num_timesteps: int) -> jax.Array:
    """Continuous t in [0, 1] -> nearest DDPM step index in [0, N - 1], int32, t's shape."""
    idx = jnp.round(jnp.asarray(t, jnp.float32) * (num_timesteps - 1))
    return jnp.clip(idx, 0, num_timesteps - 1).astype(jnp.int32)


@functools.lru_cache(maxsize=16)
def _discrete_grid(betas: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(t grid (N,), log-SNR (N,)) for DDPM betas, computed in float64."""
    b = np.asarray(betas, dtype=np.float64)
    log_alpha_bar = np.cumsum(np.log1p(-b))
    # log(alpha_bar / (1 - alpha_bar)), written to stay accurate when alpha_bar ~ 1.
    log_snr = log_alpha_bar - np.log(-np.expm1(log_alpha_bar))
    return np.linspace(0.0, 1.0, b.size), log_snr
