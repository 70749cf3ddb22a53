"""End-to-end text-to-video cascade with tiny random-init models (CPU, ~1 min)."""

import flax.linen as nn
import imageio.v2 as imageio
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.models import UNet, dummy_inputs
from lumiere_jax.models.configs import tiny_ssr, tiny_stunet
from lumiere_jax.pipeline import LumierePipeline, SamplingConfig, to_uint8
from lumiere_jax.text.t5 import T5Config, T5Encoder
from lumiere_jax.text.tokenizers import ByteTokenizer

TEXT_DIM = 16


def _random_params(config, seed):
    """Random weights of the right tree / shapes (fan-in scaled normal kernels, unit norm
    scales, small random biases). Cheaper than compiling `UNet.init` (minutes on a shared
    2-core CPU) and, unlike init, leaves no zero-initialised block as an identity."""
    shapes = jax.eval_shape(
        lambda: UNet(config).init(jax.random.key(0), **dummy_inputs(config))["params"])
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(fan_in), leaf.dtype)
        if "scale" in name:
            return jnp.ones(leaf.shape, leaf.dtype)
        return jnp.asarray(0.05 * rng.normal(size=leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, nn.meta.unbox(shapes))


@pytest.fixture(scope="module")
def parts():
    # 8 frames 16 px -> 32 px, SSR window 4. Two levels keep the compile short.
    base_cfg = tiny_stunet(channel_mults=(1, 2), attention_levels=(1,), cross_attention_levels=(1,),
                           temporal_downsample=(True,))
    ssr_cfg = tiny_ssr()
    assert base_cfg.text_dim == ssr_cfg.text_dim == TEXT_DIM
    tokenizer = ByteTokenizer(max_length=12)
    t5 = T5Encoder(T5Config(vocab_size=ByteTokenizer.vocab_size, d_model=TEXT_DIM, d_kv=8,
                            d_ff=32, num_layers=1, num_heads=2))
    ids, mask = tokenizer.encode(["x"])
    t5_params = t5.init(jax.random.key(3), ids, mask)
    encode = jax.jit(t5.apply)

    def text_encoder(prompts):
        return encode(t5_params, *tokenizer.encode(prompts))

    return (base_cfg, _random_params(base_cfg, 1), ssr_cfg, _random_params(ssr_cfg, 2),
            text_encoder)


@pytest.fixture(scope="module")
def pipe(parts):
    sampling = SamplingConfig(base_steps=2, ssr_steps=2, base_guidance=3.0, stride=2,
                              chunk_size=2, window_weights="tapered")
    return LumierePipeline(*parts, sampling=sampling)


@pytest.fixture(scope="module")
def videos(pipe):
    return pipe(["a red ball bounces", "waves"], jax.random.key(1), return_low_res=True)


def test_cascade_shapes_and_range(videos):
    low, high = videos
    assert low.shape == (2, 8, 16, 16, 3) and low.dtype == np.uint8
    assert high.shape == (2, 8, 32, 32, 3) and high.dtype == np.uint8
    # Random-init models still produce varied pixels, not a constant / saturated clip.
    assert high.std() > 1.0 and len(np.unique(high)) > 16


def test_cascade_is_deterministic_in_key(pipe, videos):
    _, high = videos
    again = pipe(["a red ball bounces", "waves"], jax.random.key(1))
    np.testing.assert_array_equal(again, high)
    other = pipe(["a red ball bounces", "waves"], jax.random.key(2))
    assert np.abs(other.astype(int) - high.astype(int)).mean() > 1.0


def test_writes_playable_mp4_and_gif(pipe, videos, tmp_path):
    _, high = videos
    mp4, gif = tmp_path / "clip.mp4", tmp_path / "clip.gif"
    pipe.save_mp4(high[0], mp4)
    pipe.save_gif(high[1], gif)
    frames = _read_ffmpeg(mp4)
    assert frames.shape == (8, 32, 32, 3)
    # H.264 + yuv420p is lossy on per-pixel noise; coarse luma still tracks the clip.
    err = np.abs(_coarse_luma(frames) - _coarse_luma(high[0])).mean()
    assert err < 10.0 and err < 0.5 * np.abs(_coarse_luma(frames) - _coarse_luma(high[1])).mean()
    gif_frames = iio.imread(gif, index=None)
    assert gif_frames.shape[0] == 8 and gif_frames.shape[1:3] == (32, 32)


def _coarse_luma(video):
    """uint8 (T, H, W, 3) -> (T, H/8, W/8) mean luma of 8x8 blocks."""
    luma = video.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    t, h, w = luma.shape
    return luma.reshape(t, h // 8, 8, w // 8, 8).mean(axis=(2, 4))


def _read_ffmpeg(path):
    """Decode with imageio's ffmpeg reader (an independent path from the writer's)."""
    with imageio.get_reader(str(path), format="ffmpeg") as reader:
        return np.stack([frame for frame in reader])  # list(reader) trips on len() == inf


def test_to_uint8_matches_numpy():
    x = np.linspace(-1.3, 1.3, 101, dtype=np.float32)
    ref = np.clip(np.round((x.astype(np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(to_uint8(jnp.asarray(x)), ref)


def test_bad_settings_raise_before_tracing(parts, pipe):
    def boom(*a, **k):
        raise AssertionError("traced despite bad settings")

    pipe_jit = pipe._jitted
    pipe._jitted = boom
    try:
        with pytest.raises(ValueError, match="num_temporal_downsamples"):
            pipe(["a"], jax.random.key(0), num_frames=7)  # the STUNet halves time once
        with pytest.raises(ValueError, match="num_frames must be an int"):
            pipe(["a"], jax.random.key(0), num_frames=0)
        with pytest.raises(ValueError, match="prompts"):
            pipe([], jax.random.key(0))
    finally:
        pipe._jitted = pipe_jit
    with pytest.raises(ValueError, match="stride=5 > window=4"):
        LumierePipeline(*parts, sampling=SamplingConfig(stride=5))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        LumierePipeline(*parts, sampling=SamplingConfig(stride=0))
    with pytest.raises(ValueError, match="longer than the clip"):
        # 12-frame SSR windows on the default 8-frame clip.
        LumierePipeline(*parts, sampling=SamplingConfig(window=12))(["a"], jax.random.key(0))
    with pytest.raises(ValueError, match="cond_channels must be 3"):
        LumierePipeline(parts[0], parts[1], tiny_ssr(cond_channels=0), parts[3], parts[4])
    with pytest.raises(ValueError, match="temporal"):
        LumierePipeline(tiny_stunet(temporal=False, temporal_downsample=()), *parts[1:])
    with pytest.raises(ValueError, match="sampler"):
        SamplingConfig(sampler="euler")
    with pytest.raises(ValueError, match="text_dim"):
        LumierePipeline(parts[0], parts[1], tiny_ssr(text_dim=8), parts[3], parts[4])
