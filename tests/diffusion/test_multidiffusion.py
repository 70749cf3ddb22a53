"""MultiDiffusion windowing / merge against NumPy-loop and least-squares references."""

import einops
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from lumiere_jax.diffusion.multidiffusion import (
    merge_windows,
    multidiffusion_denoiser,
    split_windows,
    window_starts,
    window_weights,
)

# ----------------------------------------------------------------------------- references


def starts_ref(num_frames, window, stride):
    """Plain loop: step by stride, then one window flush with the end if needed."""
    out, s = [], 0
    while s + window <= num_frames:
        out.append(s)
        s += stride
    if out[-1] + window < num_frames:
        out.append(num_frames - window)
    return out


def merge_ref(windows, starts, num_frames, weights=None):
    """Per-frame weighted average of every window value that covers the frame."""
    windows = np.asarray(windows, np.float64)
    n, b, w = windows.shape[:3]
    weights = np.ones((n, w)) if weights is None else np.broadcast_to(weights, (n, w))
    total = np.zeros((b, num_frames) + windows.shape[3:])
    count = np.zeros(num_frames)
    for i, s in enumerate(starts):
        for f in range(w):
            total[:, s + f] += weights[i, f] * windows[i, :, f]
            count[s + f] += weights[i, f]
    assert np.all(count > 0), "reference: a frame is uncovered"
    return total / count.reshape((1, num_frames) + (1,) * (total.ndim - 2))


def mixing_np(xw, t):
    """A window denoiser that mixes frames (so windows matter): NumPy version."""
    mean = xw.mean(axis=1, keepdims=True)
    ramp = np.arange(xw.shape[1]).reshape((1, -1) + (1,) * (xw.ndim - 2))
    return np.tanh(0.7 * xw + 0.5 * mean + 0.1 * ramp + t.reshape((-1,) + (1,) * (xw.ndim - 1)))


def mixing_jnp(xw, t):
    """Same function written independently in jnp (B, window, ...) -> (B, window, ...)."""
    mean = jnp.mean(xw, axis=1, keepdims=True)
    extra = (1,) * (xw.ndim - 2)
    ramp = jnp.arange(xw.shape[1], dtype=xw.dtype).reshape((1, -1) + extra)
    return jnp.tanh(0.7 * xw + 0.5 * mean + 0.1 * ramp + t.reshape((-1, 1) + extra))


def md_ref(np_fn, x, t, window, stride, weights=None, extra=None):
    """MultiDiffusion by a Python loop: denoise each window, average per frame."""
    num_frames = x.shape[1]
    starts = starts_ref(num_frames, window, stride)
    preds = []
    for s in starts:
        args = () if extra is None else (extra[:, s : s + window],)
        preds.append(np_fn(x[:, s : s + window], t, *args))
    return merge_ref(np.stack(preds), starts, num_frames, weights)


# ----------------------------------------------------------------------------- window_starts

GEOMS = [(16, 4, 2), (16, 8, 4), (10, 4, 3), (9, 4, 4), (8, 8, 1), (8, 8, 8), (7, 1, 1),
         (13, 5, 5), (13, 5, 1), (80, 16, 8), (80, 16, 12), (1, 1, 1), (12, 6, 5)]


@pytest.mark.parametrize("num_frames,window,stride", GEOMS)
def test_window_starts_matches_loop(num_frames, window, stride):
    np.testing.assert_array_equal(window_starts(num_frames, window, stride),
                                  starts_ref(num_frames, window, stride))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_window_starts_properties(data):
    num_frames = data.draw(st.integers(1, 200))
    window = data.draw(st.integers(1, num_frames))
    stride = data.draw(st.integers(1, window))
    s = window_starts(num_frames, window, stride)
    assert s[0] == 0 and s[-1] == num_frames - window
    gaps = np.diff(s)
    assert np.all(gaps >= 1) and np.all(gaps <= stride)
    assert np.all(gaps[:-1] == stride)
    covered = np.zeros(num_frames, bool)
    for v in s:
        covered[v : v + window] = True
    assert covered.all()
    np.testing.assert_array_equal(s, starts_ref(num_frames, window, stride))


@pytest.mark.parametrize(
    "args,match",
    [((8, 9, 1), "window=9 is longer"), ((8, 4, 0), "stride must be >= 1"),
     ((8, 4, 5), "stride=5 > window=4"), ((8, 0, 1), "window must be >= 1"),
     ((0, 1, 1), "num_frames"), ((8, 4.0, 1), "window must be an int")],
)
def test_window_starts_rejects_bad_settings(args, match):
    with pytest.raises(ValueError, match=match):
        window_starts(*args)


# ----------------------------------------------------------------------------- split / merge


@pytest.mark.parametrize("num_frames,window,stride", GEOMS)
def test_split_then_merge_against_loop(num_frames, window, stride):
    rng = np.random.default_rng(num_frames * 100 + window * 10 + stride)
    video = rng.normal(size=(2, num_frames, 3, 2)).astype(np.float32)
    starts = window_starts(num_frames, window, stride)
    windows = split_windows(jnp.asarray(video), starts, window)
    assert windows.shape == (len(starts), 2, window, 3, 2)
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(windows[i], video[:, s : s + window])
    # Independent per-window values (not a split of one clip), uniform and tapered weights.
    preds = rng.normal(size=windows.shape).astype(np.float32)
    for weights in (None, "tapered", rng.uniform(0.1, 2.0, size=(len(starts), window))):
        ref_w = window_weights(window, weights) if isinstance(weights, str) else weights
        got = merge_windows(jnp.asarray(preds), starts, num_frames, weights)
        np.testing.assert_allclose(got, merge_ref(preds, starts, num_frames, ref_w),
                                   rtol=1e-5, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_merge_property_random_geometry(data):
    num_frames = data.draw(st.integers(1, 24))
    window = data.draw(st.integers(1, num_frames))
    stride = data.draw(st.integers(1, window))
    seed = data.draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    starts = window_starts(num_frames, window, stride)
    preds = rng.normal(size=(len(starts), 1, window, 2)).astype(np.float32)
    weights = rng.uniform(0.05, 3.0, size=(window,)).astype(np.float32)
    got = merge_windows(jnp.asarray(preds), starts, num_frames, weights)
    np.testing.assert_allclose(got, merge_ref(preds, starts, num_frames, weights),
                               rtol=1e-5, atol=1e-5)
    # Merging the split of a clip gives the clip back for any geometry.
    video = rng.normal(size=(1, num_frames, 2)).astype(np.float32)
    back = merge_windows(split_windows(jnp.asarray(video), starts, window), starts, num_frames,
                         weights)
    np.testing.assert_allclose(back, video, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("num_frames,window,stride", [(12, 5, 3), (16, 8, 4), (9, 4, 1)])
def test_merge_is_least_squares_solution(num_frames, window, stride, weighted):
    """argmin_J sum_i sum_f w_f ||J[s_i+f] - Phi_i[f]||^2 via numpy.linalg.lstsq."""
    rng = np.random.default_rng(7)
    starts = window_starts(num_frames, window, stride)
    n, dim = len(starts), 6
    preds = rng.normal(size=(n, 1, window, dim))
    w = rng.uniform(0.1, 3.0, size=(n, window)) if weighted else np.ones((n, window))
    # Stacked system: one row per (window, frame-in-window) selecting frame s_i + f of J.
    a = np.zeros((n * window, num_frames))
    b = np.zeros((n * window, dim))
    for i, s in enumerate(starts):
        for f in range(window):
            a[i * window + f, s + f] = 1.0
            b[i * window + f] = preds[i, 0, f]
    sw = np.sqrt(w.reshape(-1, 1))
    j_star = np.linalg.lstsq(sw * a, sw * b, rcond=None)[0]
    got = merge_windows(jnp.asarray(preds, jnp.float32), starts, num_frames,
                        w if weighted else None)
    np.testing.assert_allclose(got[0], j_star, rtol=1e-4, atol=1e-5)
    if weighted:  # The weights matter: the unweighted merge is a different answer.
        plain = merge_windows(jnp.asarray(preds, jnp.float32), starts, num_frames)
        assert np.abs(np.asarray(plain[0]) - j_star).max() > 1e-2


def test_split_merge_under_jit_need_static_starts_and_weights():
    """Inside jit the geometry stays static (closed over): the round trip is exact; traced
    starts or weights are refused with a clear error instead of a silent slow path."""
    video = jnp.asarray(np.random.default_rng(0).normal(size=(2, 11, 3)), jnp.float32)
    starts = window_starts(11, 4, 3)
    w = window_weights(4, "tapered")
    roundtrip = jax.jit(lambda v: merge_windows(split_windows(v, starts, 4) * 2.0, starts, 11, w))
    np.testing.assert_allclose(roundtrip(video), 2.0 * video, rtol=1e-6)
    with pytest.raises(ValueError, match="starts must be static"):
        jax.jit(lambda v, s: split_windows(v, s, 4))(video, jnp.asarray(starts))
    with pytest.raises(ValueError, match="weights must be static"):
        jax.jit(lambda p, ww: merge_windows(p, starts, 11, ww))(
            split_windows(video, starts, 4), jnp.asarray(w))


def test_merge_and_split_reject_bad_inputs():
    preds = jnp.zeros((3, 1, 4, 2))
    with pytest.raises(ValueError, match="starts must have shape"):
        merge_windows(preds, np.array([0, 4]), 12)
    with pytest.raises(ValueError, match="covered by no window"):
        merge_windows(preds, np.array([0, 4, 8]), 13)
    with pytest.raises(ValueError, match="starts must lie in"):
        merge_windows(preds, np.array([0, 4, 9]), 12)
    with pytest.raises(ValueError, match="weights must have shape"):
        merge_windows(preds, np.array([0, 4, 8]), 12, np.ones(3))
    with pytest.raises(ValueError, match="strictly positive"):
        merge_windows(preds, np.array([0, 4, 8]), 12, np.zeros(4))
    with pytest.raises(ValueError, match="weights must be one of"):
        merge_windows(preds, np.array([0, 4, 8]), 12, "gaussian")
    with pytest.raises(ValueError, match="longer than the clip"):
        split_windows(jnp.zeros((1, 3, 2)), np.array([0]), 4)


def test_tapered_weights_shape():
    w = window_weights(7, "tapered")
    assert w.shape == (7,) and np.all(w > 0)
    np.testing.assert_allclose(w, w[::-1], rtol=1e-6)  # symmetric
    assert np.argmax(w) == 3 and w[0] < 0.25 * w[3]


# ----------------------------------------------------------------------------- denoiser


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 12, 3, 3, 2)).astype(np.float32)
    t = np.array([0.3, 0.8], np.float32)
    return x, t


@pytest.mark.parametrize("chunk_size", [None, 1, 2, 3, 4, 10])
@pytest.mark.parametrize("weights", ["uniform", "tapered"])
def test_denoiser_matches_loop_reference(clip, chunk_size, weights):
    x, t = clip
    window, stride = 5, 2  # starts 0 2 4 6 7: N=5, chunk 2 and 3 leave a remainder
    md = jax.jit(multidiffusion_denoiser(mixing_jnp, 12, window, stride, chunk_size, weights))
    ref = md_ref(mixing_np, x, t, window, stride,
                 None if weights == "uniform" else window_weights(window, weights))
    np.testing.assert_allclose(md(x, t), ref, rtol=1e-5, atol=1e-5)


def test_denoiser_windows_frame_args_alongside(clip):
    """Per-frame conditioning (SSR low-res video) is windowed together with x_t."""
    x, t = clip
    cond = np.random.default_rng(4).normal(size=x.shape).astype(np.float32)
    fn_j = lambda xw, tt, c: mixing_jnp(xw + 0.5 * jnp.roll(c, 1, axis=1), tt)
    fn_n = lambda xw, tt, c: mixing_np(xw + 0.5 * np.roll(c, 1, axis=1), tt)
    for chunk_size in (None, 2):
        md = jax.jit(multidiffusion_denoiser(fn_j, 12, 4, 3, chunk_size))
        np.testing.assert_allclose(md(x, t, cond), md_ref(fn_n, x, t, 4, 3, extra=cond),
                                   rtol=1e-5, atol=1e-5)


def test_window_equal_to_clip_is_plain_model(clip):
    x, t = clip
    md = jax.jit(multidiffusion_denoiser(mixing_jnp, 12, 12, 5, chunk_size=2, weights="tapered"))
    np.testing.assert_allclose(md(x, t), mixing_np(x, t), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("window,stride,chunk_size", [(4, 1, None), (5, 3, 2), (3, 3, 1)])
def test_per_frame_denoiser_is_unchanged(clip, window, stride, chunk_size):
    """A denoiser that treats frames independently gives the full-clip result."""
    x, t = clip
    per_frame = lambda xw, tt: jnp.sin(1.3 * xw) * (1.0 + tt[:, None, None, None, None])
    md = jax.jit(multidiffusion_denoiser(per_frame, 12, window, stride, chunk_size, "tapered"))
    np.testing.assert_allclose(md(x, t), per_frame(jnp.asarray(x), jnp.asarray(t)),
                               rtol=1e-6, atol=1e-6)


def test_denoiser_rejects_bad_settings():
    f = lambda xw, t: xw
    with pytest.raises(ValueError, match="longer than the clip"):
        multidiffusion_denoiser(f, 8, 16, 4)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        multidiffusion_denoiser(f, 8, 4, 0)
    with pytest.raises(ValueError, match="uncovered"):
        multidiffusion_denoiser(f, 8, 4, 6)
    with pytest.raises(ValueError, match="chunk_size"):
        multidiffusion_denoiser(f, 8, 4, 2, chunk_size=0)
    with pytest.raises(ValueError, match="weights must be one of"):
        multidiffusion_denoiser(f, 8, 4, 2, weights="hann")
    md = multidiffusion_denoiser(f, 8, 4, 2)
    with pytest.raises(ValueError, match="T=8"):
        md(jnp.zeros((1, 9, 2)), jnp.zeros((1,)))


# ----------------------------------------------------------------------------- DDIM


def ddim_step_np(x_t, eps, alpha_t, sigma_t, alpha_s, sigma_s):
    """Deterministic DDIM (eta=0) from time t to s for an eps prediction."""
    x0 = (x_t - sigma_t * eps) / alpha_t
    return alpha_s * x0 + sigma_s * eps


def test_ddim_merge_then_step_equals_average_of_window_steps(clip):
    """Reference MultiDiffusion (Bar-Tal et al.): step each window, then average."""
    x, t = clip
    window, stride = 5, 3
    a_t, s_t, a_s, s_s = np.cos(0.6), np.sin(0.6), np.cos(0.35), np.sin(0.35)
    md = jax.jit(multidiffusion_denoiser(mixing_jnp, 12, window, stride, chunk_size=2))
    merged_then_step = ddim_step_np(x, np.asarray(md(x, t), np.float64), a_t, s_t, a_s, s_s)
    starts = starts_ref(12, window, stride)
    stepped = [ddim_step_np(x[:, s : s + window], mixing_np(x[:, s : s + window], t),
                            a_t, s_t, a_s, s_s) for s in starts]
    np.testing.assert_allclose(merged_then_step, merge_ref(np.stack(stepped), starts, 12),
                               rtol=1e-5, atol=1e-5)


def test_ddim_sampler_loop_equals_per_window_reference(clip):
    """The library's jitted DDIM (eta=0) over the MultiDiffusion denoiser equals a NumPy
    loop that, at every step, steps each window on its own and averages the windows."""
    from lumiere_jax.diffusion.samplers import sample
    from lumiere_jax.diffusion.schedules import cosine_schedule

    x, _ = clip
    window, stride, num_steps = 5, 2, 4
    schedule = cosine_schedule(32, 64)
    md = multidiffusion_denoiser(mixing_jnp, 12, window, stride, chunk_size=2,
                                 weights="tapered")
    got = jax.jit(lambda x0, k: sample(md, x0, k, schedule=schedule, sampler="ddim",
                                       num_steps=num_steps, prediction="v", eta=0.0))(
        x, jax.random.key(0))

    ts = np.linspace(1.0, 0.0, num_steps + 1)
    alphas, sigmas = (np.asarray(a, np.float64) for a in schedule.alpha_sigma(jnp.asarray(ts)))
    alphas[-1], sigmas[-1] = 1.0, 0.0  # t = 0 is clean data
    starts, w = starts_ref(12, window, stride), window_weights(window, "tapered")
    xt = x.astype(np.float64)
    for i in range(num_steps):
        a, s, a_n, s_n = alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1]
        stepped = []
        for st0 in starts:
            xw = xt[:, st0 : st0 + window]
            v = mixing_np(xw, np.full((xt.shape[0],), ts[i]))
            x0, eps = a * xw - s * v, s * xw + a * v  # v-prediction -> (x0, eps)
            stepped.append(a_n * x0 + s_n * eps)
        xt = merge_ref(np.stack(stepped), starts, 12, w)
    np.testing.assert_allclose(got, xt, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- memory


def _conv_window_fn(key):
    """A small conv net per frame + temporal mix; its activations dominate memory."""
    k1, k2 = jax.random.split(key)
    w1 = jax.random.normal(k1, (3, 3, 4, 64)) * 0.1
    w2 = jax.random.normal(k2, (3, 3, 64, 4)) * 0.1
    dn = ("NHWC", "HWIO", "NHWC")

    def fn(xw, t):
        b = xw.shape[0]
        h = einops.rearrange(xw, "b f h w c -> (b f) h w c")
        h = jax.nn.gelu(jax.lax.conv_general_dilated(h, w1, (1, 1), "SAME", dimension_numbers=dn))
        h = jax.lax.conv_general_dilated(h, w2, (1, 1), "SAME", dimension_numbers=dn)
        h = einops.rearrange(h, "(b f) h w c -> b f h w c", b=b)
        return h + jnp.mean(h, axis=1, keepdims=True) * t[:, None, None, None, None]

    return fn


# XLA:CPU fuses conv chains into YNNPACK custom fusions whose scratch memory is outside
# XLA's buffer assignment (memory_analysis would then under-count the unchunked step);
# turning those fusions off makes temp_size_in_bytes account for every activation.
NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _temp_bytes(fn, x, t):
    return jax.jit(fn).lower(x, t).compile(NO_YNN).memory_analysis().temp_size_in_bytes


def test_chunked_temp_memory_flat_in_number_of_windows():
    fn = _conv_window_fn(jax.random.key(0))
    num_frames, window = 32, 8
    x = jax.ShapeDtypeStruct((1, num_frames, 16, 16, 4), jnp.float32)
    t = jax.ShapeDtypeStruct((1,), jnp.float32)
    strides = (8, 4, 2, 1)  # N = 4, 7, 13, 25 windows
    chunked = [_temp_bytes(multidiffusion_denoiser(fn, num_frames, window, s, chunk_size=2), x, t)
               for s in strides]
    unchunked = [_temp_bytes(multidiffusion_denoiser(fn, num_frames, window, s), x, t)
                 for s in strides]
    # One chunk of 2 windows holds (2 * 8 frames * 16 * 16 * 64) f32 activations = 512 KiB.
    assert max(chunked) <= 1.05 * min(chunked), chunked
    # The unchunked step is the honest contrast: its memory grows with N.
    assert unchunked[-1] > 4 * unchunked[0], unchunked
    assert max(chunked) < unchunked[-1] / 4
