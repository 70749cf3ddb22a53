"""Stage 'critic': a `VideoTextCritic` trained on noisy clips, for guidance while sampling.

    critic = VideoTextCritic(runs.critic_config(config))
    tx, lr_schedule = make_optimizer(config.optim)
    state = init_critic_state(critic, tx, config)
    step = jax.jit(make_critic_step(critic, tx, runs.noise_schedule(config), config,
                                    lr_schedule))
    state, metrics = step(state, batch)           # batch: pixels uint8, ids, mask

Each batch is made of time-reversal pairs (`data.time_reversal_pairs`): a clip and itself
played backwards with its caption's directions reversed, noised with the same t and the
same noise played backwards. Within a pair everything but the direction of motion is
equal, so the contrastive loss can only rank the pair by reading the motion and the
direction word (`models.critic.critic_loss`). `train.py` runs the loop (`train_critic`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from lumiere_jax.diffusion.objectives import bcast
from lumiere_jax.diffusion.schedules import Schedule
from lumiere_jax.models.critic import VideoTextCritic, critic_loss, init_critic_params
from lumiere_jax.training.step import reversal_pair_noise, to_float

CRITIC_FIELDS = ("widths", "text_width", "embed_dim")


def check_critic_config(config: Any) -> None:
    """Early `ValueError`s for a critic run's config."""
    if "critic" not in config:
        raise ValueError("config.stage='critic' needs a config.critic block with "
                         f"{CRITIC_FIELDS} (configs/demo_critic.py)")
    if not config.data.get("time_reversal_pairs", False):
        raise ValueError("config.stage='critic' trains on time-reversal pairs: set "
                         "config.data.time_reversal_pairs=True (a moving_shapes source)")
    if config.data.batch_size % 2 or config.data.batch_size < 4:
        raise ValueError(f"config.data.batch_size={config.data.batch_size}: a critic run needs "
                         "an even batch of at least 4 clips (pairs, and negatives to contrast)")
    if config.model.image_size % 2 ** len(config.critic.widths):
        raise ValueError(f"config.model.image_size={config.model.image_size} must be divisible "
                         f"by 2^{len(config.critic.widths)} (config.critic.widths halve it)")


def init_critic_state(critic: VideoTextCritic, tx: optax.GradientTransformation,
                      config: Any) -> dict:
    """`{'params', 'ema', 'opt_state', 'step', 'nonfinite'}` of a fresh critic (key
    `config.seed`; weights under `{'critic': ...}`, as `runs.param_shapes` lays them out);
    `nonfinite` counts consecutive skipped (non-finite) steps."""
    params = {"critic": init_critic_params(critic, jax.random.key(config.seed),
                                           config.model.num_frames, config.model.image_size)}
    return dict(params=params, ema=jax.tree.map(jnp.copy, params), opt_state=tx.init(params),
                step=jnp.zeros((), jnp.int32), nonfinite=jnp.zeros((), jnp.int32))


def noisy_pairs(key: jax.Array, pixels: jax.Array, schedule: Schedule, t_power: float
                ) -> tuple[jax.Array, jax.Array]:
    """uint8 reversal-pair clips (2P, T, H, W, 3) -> (x_t float32, t (2P,)): each pair
    shares t and its noise played backwards."""
    x0 = to_float(pixels)
    t, eps = reversal_pair_noise(key, x0, t_power)
    alpha, sigma = schedule.alpha_sigma(t)
    return bcast(alpha, x0) * x0 + bcast(sigma, x0) * eps, t


def make_critic_step(critic: VideoTextCritic, tx: optax.GradientTransformation,
                     schedule: Schedule, config: Any,
                     lr_schedule: Callable[[Any], Any] | None = None
                     ) -> Callable[[dict, dict], tuple]:
    """`step(state, batch) -> (state, metrics)`, pure (jit it): one AdamW update of the
    contrastive loss on freshly noised pairs, and the EMA of the weights; a step whose loss
    or gradient is not finite changes nothing but the `nonfinite` count."""
    t_power, decay = float(config.diffusion.t_power), float(config.optim.ema_decay)

    def step(state, batch):
        key = jax.random.fold_in(jax.random.key(config.seed + 1), state["step"])
        x_t, t = noisy_pairs(key, batch["pixels"], schedule, t_power)

        def loss_fn(params):
            return critic_loss(critic, {"params": params["critic"]}, x_t, t, batch["ids"],
                               batch["mask"])

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        ema = optax.incremental_update(params, state["ema"], 1.0 - decay)
        ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        new = jax.tree.map(lambda a, b: jnp.where(ok, a, b),
                           dict(params=params, ema=ema, opt_state=opt_state),
                           {k: state[k] for k in ("params", "ema", "opt_state")})
        nonfinite = jnp.where(ok, 0, state["nonfinite"] + 1)
        metrics = dict(loss=loss, accuracy=aux["accuracy"], grad_norm=grad_norm,
                       nonfinite=nonfinite)
        if lr_schedule is not None:
            metrics["lr"] = lr_schedule(state["step"])
        return dict(new, step=state["step"] + 1, nonfinite=nonfinite), metrics

    return step
