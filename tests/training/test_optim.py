"""Optimizer (AdamW + warmup-cosine + global-norm clipping + accumulation) and EMA against
a NumPy re-implementation from the formulas."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from lumiere_jax.training import ema_update, make_lr_schedule, make_optimizer


def cfg(**kw):
    base = dict(lr=0.1, warmup_steps=2, decay_steps=6, end_lr_factor=0.1, b1=0.9, b2=0.99,
                eps=1e-8, weight_decay=0.01, clip_norm=1.0, accum_steps=2)
    base.update(kw)
    return ml_collections.ConfigDict(base)


def np_lr(c, n):
    if n < c.warmup_steps:
        return c.lr * n / c.warmup_steps
    frac = (min(n - c.warmup_steps, c.decay_steps - c.warmup_steps)
            / (c.decay_steps - c.warmup_steps))
    end = c.lr * c.end_lr_factor
    return end + (c.lr - end) * 0.5 * (1 + math.cos(math.pi * frac))


def np_train(c, params, grads_seq):
    """AdamW on the mean of every `accum_steps` clipped... (clip after averaging) grads."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    acc, t, out = [], 0, []
    for g in grads_seq:
        acc.append(g)
        if len(acc) == c.accum_steps:
            mean = {k: np.mean([a[k] for a in acc], axis=0) for k in p}
            acc = []
            norm = math.sqrt(sum(float(np.sum(x**2)) for x in mean.values()))
            scale = 1.0 if norm < c.clip_norm else c.clip_norm / norm
            lr = np_lr(c, t)
            t += 1
            for k in p:
                gk = mean[k] * scale
                m[k] = c.b1 * m[k] + (1 - c.b1) * gk
                v[k] = c.b2 * v[k] + (1 - c.b2) * gk**2
                mh, vh = m[k] / (1 - c.b1**t), v[k] / (1 - c.b2**t)
                p[k] = p[k] - lr * (mh / (np.sqrt(vh) + c.eps) + c.weight_decay * p[k])
        out.append({k: x.copy() for k, x in p.items()})
    return out


@pytest.mark.parametrize("accum", [1, 3])
def test_optimizer_matches_numpy(accum):
    c = cfg(accum_steps=accum)
    rng = np.random.default_rng(accum)
    params = {"a": rng.normal(size=(3, 4)).astype(np.float32),
              "b": rng.normal(size=(5,)).astype(np.float32)}
    # Norms both below and above clip_norm = 1.
    grads = [{k: (rng.normal(size=x.shape) * s).astype(np.float32) for k, x in params.items()}
             for s in (0.05, 2.0, 0.1, 3.0, 0.02, 1.5, 0.3, 0.5, 4.0)]
    tx, _ = make_optimizer(c)
    update = jax.jit(tx.update)
    state, p = tx.init(params), params
    expected = np_train(c, params, grads)
    for i, g in enumerate(grads):
        u, state = update(g, state, p)
        p = optax.apply_updates(p, u)
        for k in params:
            np.testing.assert_allclose(np.asarray(p[k]), expected[i][k], rtol=2e-5, atol=2e-6,
                                       err_msg=f"micro-step {i} leaf {k}")
        assert bool(tx.has_updated(state)) == ((i + 1) % accum == 0)


def test_lr_schedule_and_errors():
    c = cfg()
    lr = make_lr_schedule(c)
    for n in range(9):
        np.testing.assert_allclose(float(lr(n)), np_lr(c, n), rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="decay_steps"):
        make_lr_schedule(cfg(warmup_steps=6))
    with pytest.raises(ValueError, match="accum_steps"):
        make_optimizer(cfg(accum_steps=0))


def test_ema_update():
    rng = np.random.default_rng(0)
    ema = {"w": rng.normal(size=(4,)).astype(np.float32)}
    p = {"w": rng.normal(size=(4,)).astype(np.float32)}
    out = ema_update(ema, p, 0.9)
    np.testing.assert_allclose(np.asarray(out["w"]), 0.9 * ema["w"] + 0.1 * p["w"], rtol=1e-6)
    half = ema_update({"w": jnp.ones(2, jnp.bfloat16)}, {"w": jnp.zeros(2, jnp.bfloat16)}, 0.5)
    assert half["w"].dtype == jnp.bfloat16 and float(half["w"][0]) == 0.5


def test_ema_warmup_decay_closed_form():
    from lumiere_jax.training import ema_decay_at
    steps = np.arange(0, 3000, 7)
    got = np.asarray(jax.vmap(lambda s: ema_decay_at(0.999, s, True))(steps))
    np.testing.assert_allclose(got, np.minimum(0.999, (1 + steps) / (10 + steps)), rtol=1e-6)
    assert float(ema_decay_at(0.999, 5, False)) == np.float32(0.999)
    # After 1000 warmed-up updates the init's weight in the EMA is negligible (vs 37%).
    init_weight = np.prod(np.minimum(0.999, (1 + np.arange(1000)) / (10 + np.arange(1000))))
    assert init_weight < 1e-6 < 0.999 ** 1000
