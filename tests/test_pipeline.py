"""End-to-end cascade (text-to-video and the applications) with tiny random-weight models."""

import dataclasses

import flax.linen as nn
import imageio.v2 as imageio
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.models import UNet, dummy_inputs
from lumiere_jax.models.presets import tiny_ssr, tiny_stunet
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


def test_clips_per_call_bounds_the_base_networks_batch(parts, pipe):
    """The base STUNet sees at most `clips_per_call` clips per call (2 prompts with guidance
    are 4 clips; the default on CPU, 16, takes them at once), and the clips are the
    whole-batch clips."""
    seen = []

    def spy(next_fun, args, kwargs, context):  # the batch of every UNet call traced
        if isinstance(context.module, UNet) and context.method_name == "__call__":
            seen.append(args[0].shape[0])
        return next_fun(*args, **kwargs)

    prompts, key = ["a red ball bounces", "waves"], jax.random.key(4)
    clips = {}
    for k in (None, 1):
        sampler = LumierePipeline(*parts, sampling=dataclasses.replace(pipe.sampling,
                                                                       clips_per_call=k))
        seen.clear()
        with nn.intercept_methods(spy):
            clips[k] = sampler(prompts, key, base_only=True)
        assert set(seen) == ({4} if k is None else {1}), (k, seen)
    assert np.abs(clips[1].astype(int) - clips[None].astype(int)).max() <= 1
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"clips_per_call={bad!r} must be an int >= 1"):
            SamplingConfig(clips_per_call=bad)


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


def test_base_only_is_the_cascades_base_video(pipe, videos):
    low, _ = videos
    base = pipe(["a red ball bounces", "waves"], jax.random.key(1), base_only=True)
    assert base.shape == low.shape and base.dtype == np.uint8
    np.testing.assert_array_equal(base, low)


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
    with pytest.raises(ValueError, match=r"xla_options=\{'a': 1\}; give a tuple of \(name"):
        SamplingConfig(xla_options={"a": 1})
    with pytest.raises(ValueError, match="text_dim"):
        LumierePipeline(parts[0], parts[1], tiny_ssr(text_dim=8), parts[3], parts[4])


# --- applications: the base stage from a condition or a video, the SSR stage shared ------
# Random weights: these tests check what must hold for ANY weights, i.e. that the given
# content survives exactly (replacement in both stages) and that SDEdit stays near its input.

HIGH = 32  # tiny_ssr's output size; inputs given at this size skip the final resize


def _image(seed):
    return np.random.default_rng(seed).integers(0, 256, (HIGH, HIGH, 3), dtype=np.uint8)


def _smooth_image(seed):
    """Low-frequency colour waves: any sane 2x downsampling is close to 2x2 block means."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(HIGH), np.arange(HIGH), indexing="ij")
    phase, freq = rng.uniform(0, 2 * np.pi, (2, 3)), rng.uniform(0.05, 0.15, (2, 3))
    waves = np.sin(freq[0] * x[..., None] + phase[0]) * np.cos(freq[1] * y[..., None] + phase[1])
    return np.round(127.5 * (1 + 0.9 * waves)).astype(np.uint8)


def _close(a, b):
    """uint8 arrays equal up to one level (the resize / float round trip)."""
    return np.max(np.abs(a.astype(int) - b.astype(int))) <= 1


def test_image_to_video_keeps_the_first_frame(pipe):
    image = _smooth_image(5)
    low, high = pipe.image_to_video("a cat turns", image, jax.random.key(2), return_low_res=True)
    assert high.shape == (1, 8, HIGH, HIGH, 3) and low.shape == (1, 8, 16, 16, 3)
    assert _close(high[0, 0], image)
    assert np.abs(high[0, 1:].astype(int) - image.astype(int)).mean() > 20  # the rest is sampled
    # Low-res frame 0 is the image shrunk to 16 px: close to its 2x2 block means.
    blocks = image.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    assert np.abs(low[0, 0] - blocks).mean() < 3


def test_cinemagraph_keeps_the_still_region_on_every_frame(pipe):
    image = _image(6)
    still = np.zeros((HIGH, HIGH), bool)
    still[:, :HIGH // 2] = True  # left half still, right half animated
    out = pipe.cinemagraph(["water flows"], image, still, jax.random.key(3))[0]
    for frame in out:
        assert _close(frame[:, :HIGH // 2], image[:, :HIGH // 2])
    assert np.abs(out[:, :, HIGH // 2 + 2:].astype(int)
                  - image[None, :, HIGH // 2 + 2:].astype(int)).mean() > 20


def test_inpaint_keeps_the_known_region(pipe):
    video = np.stack([_image(10 + i) for i in range(8)])
    known = np.ones((HIGH, HIGH), bool)
    known[8:24, 8:24] = False  # a hole in the middle of every frame
    out = pipe.inpaint("a dog", video, known, jax.random.key(4))[0]
    keep = np.broadcast_to(known[None, :, :, None], video.shape)
    assert _close(out[keep], video[keep])
    hole = ~keep
    hole[:, 7:25, 7:25] &= False
    hole[:, 9:23, 9:23] = True  # the hole's interior, away from the soft edge
    assert np.abs(out[hole].astype(int) - video[hole].astype(int)).mean() > 20


def test_edit_stays_near_the_input_for_small_strength(pipe):
    video = np.stack([_smooth_image(20 + i) for i in range(8)])
    low_input = video.reshape(8, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    dist = {}
    for strength in (0.01, 1.0):
        low, _ = pipe.edit("snow", video, jax.random.key(5), strength=strength,
                           return_low_res=True)
        dist[strength] = np.abs(low[0] - low_input).mean()
    assert dist[0.01] < 8 < 30 < dist[1.0], dist


def test_redraw_noises_the_text_to_video_clip_again_and_denoises_it(parts, pipe, videos):
    """`redraw_strength`: text-to-video's base clip (the `videos` fixture's, same key) is
    SDEdited under its prompt. At 0.05 the redrawn clip differs from it, yet stays far
    nearer to it than a clip of another key is (a no-op gives 0, a fresh sample the
    distance between keys), and the cascade's base video is the redrawn one. Image-to-video
    is left as it was, and values outside [0, 1] are refused."""
    low, _ = videos
    prompts, key = ["a red ball bounces", "waves"], jax.random.key(1)
    redraw = LumierePipeline(*parts, sampling=dataclasses.replace(pipe.sampling,
                                                                  redraw_strength=0.05))
    redrawn = redraw(prompts, key, base_only=True)
    other = pipe(prompts, jax.random.key(2), base_only=True)
    dist = lambda a, b: np.abs(a.astype(int) - b.astype(int)).mean()
    between_keys = dist(other, low)
    assert 0.5 < dist(redrawn, low) < 0.5 * between_keys, (dist(redrawn, low), between_keys)
    np.testing.assert_array_equal(redraw(prompts, key, return_low_res=True)[0], redrawn)
    image = _image(3)
    np.testing.assert_array_equal(redraw.image_to_video(prompts, image, key, base_only=True),
                                  pipe.image_to_video(prompts, image, key, base_only=True))
    for bad in (-0.1, 1.5, "0.5"):
        with pytest.raises(ValueError, match="redraw_strength=.* must be in \\[0, 1\\]"):
            dataclasses.replace(pipe.sampling, redraw_strength=bad)


def pipe_parts(pipe):
    return (pipe.base_config, pipe.base_params, pipe.ssr_config, pipe.ssr_params,
            pipe.text_encoders["base"])


def test_application_inputs_are_checked_before_tracing(pipe):
    def boom(*a, **k):
        raise AssertionError("traced despite bad inputs")

    pipe_jit, pipe._jitted = pipe._jitted, boom
    image = _image(7)
    try:
        with pytest.raises(ValueError, match="image must be"):
            pipe.image_to_video("a", image[..., :2], jax.random.key(0))
        with pytest.raises(ValueError, match="one per prompt"):
            pipe.image_to_video(["a", "b"], np.stack([image] * 3), jax.random.key(0))
        with pytest.raises(ValueError, match=r"in \[-1, 1\]"):
            pipe.image_to_video("a", image.astype(np.float32), jax.random.key(0))
        with pytest.raises(ValueError, match="uint8"):
            pipe.image_to_video("a", image.astype(np.int32), jax.random.key(0))
        with pytest.raises(ValueError, match=r"still_mask must hold values in \[0, 1\]"):
            pipe.cinemagraph("a", image, np.full((HIGH, HIGH), 2.0), jax.random.key(0))
        with pytest.raises(ValueError, match="known_mask has shape"):
            pipe.inpaint("a", np.stack([image] * 8), np.ones((3, HIGH, HIGH)), jax.random.key(0))
        with pytest.raises(ValueError, match="num_temporal_downsamples"):
            pipe.inpaint("a", np.stack([image] * 7), np.ones((HIGH, HIGH)), jax.random.key(0))
        with pytest.raises(ValueError, match="strength"):
            pipe.edit("a", np.stack([image] * 8), jax.random.key(0), strength=0.0)
        blind = LumierePipeline(*pipe_parts(pipe), sampling=dataclasses.replace(
            pipe.sampling, replace_known=False))
        blind._jitted = boom
        with pytest.raises(ValueError, match="replace_known=True"):
            blind.image_to_video("a", image, jax.random.key(0))
    finally:
        pipe._jitted = pipe_jit


def test_conditional_stunet_runs_every_mode(parts):
    """A 7-channel STUNet (cond_channels=4) reads <C, M>; text-to-video feeds it M = 0."""
    base_cfg = parts[0].replace(cond_channels=4)
    sampling = SamplingConfig(base_steps=2, ssr_steps=1, base_guidance=2.0, stride=2)
    pipe = LumierePipeline(base_cfg, _random_params(base_cfg, 3), *parts[2:], sampling=sampling)
    image = _image(8)
    out = pipe.image_to_video("a", image, jax.random.key(6))
    assert _close(out[0, 0], image)
    assert pipe("a", jax.random.key(7)).shape == (1, 8, HIGH, HIGH, 3)
    with pytest.raises(ValueError, match="cond_channels=0"):
        LumierePipeline(parts[0].replace(cond_channels=3), *parts[1:])


def test_ssr_stage_reads_prompts_with_its_own_encoder(parts, pipe):
    """ssr_text_encoder changes only the SSR stage: same low-res clip, other high-res one."""
    base_encoder = parts[4]
    other = LumierePipeline(*parts, sampling=pipe.sampling,
                            ssr_text_encoder=lambda ps: base_encoder([p[::-1] for p in ps]))
    key = jax.random.key(9)
    low_a, high_a = pipe("a red ball bounces", key, return_low_res=True)
    low_b, high_b = other("a red ball bounces", key, return_low_res=True)
    np.testing.assert_array_equal(low_a, low_b)
    assert np.abs(high_a.astype(int) - high_b.astype(int)).max() > 0


def _tiny_critic(base_cfg, frames=None):
    from lumiere_jax.models.critic import CriticConfig, VideoTextCritic, init_critic_params
    from lumiere_jax.pipeline import GuidanceCritic

    frames = frames or base_cfg.num_frames
    critic = VideoTextCritic(CriticConfig(vocab_size=ByteTokenizer.vocab_size, max_length=12,
                                          widths=(4, 8), text_width=8, embed_dim=8))
    params = init_critic_params(critic, jax.random.key(5), frames, base_cfg.image_size)
    return GuidanceCritic(critic, params, ByteTokenizer(max_length=12), frames,
                          base_cfg.image_size)


def test_critic_guidance_steers_the_base_stage_up_the_critics_score(parts, pipe):
    prompts, key = ["a red ball bounces", "waves"], jax.random.key(1)
    critic = _tiny_critic(parts[0])
    plain = pipe(prompts, key, base_only=True)
    off = LumierePipeline(*parts, sampling=pipe.sampling, critic=critic)
    np.testing.assert_array_equal(off(prompts, key, base_only=True), plain)  # scale 0: no-op
    guided = LumierePipeline(*parts, critic=critic,
                             sampling=dataclasses.replace(pipe.sampling, critic_scale=20.0))
    steered = guided(prompts, key, base_only=True)
    assert np.abs(steered.astype(int) - plain.astype(int)).mean() > 1.0

    ids, mask = critic.tokenizer.encode(prompts)
    def score(video):  # the critic's score of the finished clip, near t = 0
        x = jnp.asarray(video, jnp.float32) / 127.5 - 1.0
        return np.asarray(critic.model.apply({"params": critic.params}, x,
                                             jnp.full((2,), 0.05), ids, mask > 0))
    assert np.all(score(steered) > score(plain)), (score(steered), score(plain))


def test_critic_guidance_settings_are_checked(parts, pipe):
    scaled = dataclasses.replace(pipe.sampling, critic_scale=1.0)
    with pytest.raises(ValueError, match="critic_scale"):
        LumierePipeline(*parts, sampling=scaled)                      # no critic
    with pytest.raises(ValueError, match="critic reads 4 frames"):
        LumierePipeline(*parts, sampling=scaled, critic=_tiny_critic(parts[0], frames=4))
    with pytest.raises(ValueError, match="critic_scale"):
        SamplingConfig(critic_scale=-1.0)
    guided = LumierePipeline(*parts, sampling=scaled, critic=_tiny_critic(parts[0]))
    with pytest.raises(ValueError, match="the critic reads clips of 8"):
        guided(["waves"], jax.random.key(0), num_frames=4, base_only=True)
    with pytest.raises(ValueError, match="base_candidates=3 needs a GuidanceCritic"):
        LumierePipeline(*parts, sampling=dataclasses.replace(pipe.sampling, base_candidates=3))
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="base_candidates"):
            SamplingConfig(base_candidates=bad)


def _same_clip(a, b):
    """The same uint8 clip up to one level: the K-candidate batch and the reference's
    repeated prompts are computed in different batch layouts, whose float rounding can put
    a few pixels on the other side of a level (seen on one host: 1 level in 0.02% of
    pixels); different candidates differ by far more (here over 100 levels)."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max() <= 1


def test_base_candidates_keep_the_critics_pick(parts, pipe):
    """With K candidates per prompt the base stage returns, for each prompt, the candidate
    the critic scores highest. Reference: the same cascade with one clip per prompt, on
    each prompt repeated K times (same key: the same noise rows), scored by the critic."""
    prompts, key, k = ["a red ball bounces", "waves"], jax.random.key(4), 3
    critic = _tiny_critic(parts[0])
    best = LumierePipeline(*parts, critic=critic,
                           sampling=dataclasses.replace(pipe.sampling, base_candidates=k))
    picked = best(prompts, key, base_only=True)
    repeated = [p for p in prompts for _ in range(k)]
    candidates = pipe(repeated, key, base_only=True)                  # (2 * k, ...)
    ids, mask = critic.tokenizer.encode(repeated)
    x = jnp.asarray(candidates, jnp.float32) / 127.5 - 1.0
    scores = np.asarray(critic.model.apply({"params": critic.params}, x, jnp.zeros((2 * k,)),
                                           ids, mask > 0))
    _assert_best_kept(picked, candidates, scores, k, tie=1e-3)


def _assert_motion_pick(picked, candidates, planner, k):
    """`picked` (B, ...) holds, for each prompt, the candidate of `candidates` (B*K, ...,
    uint8, rows b*K ... b*K + K - 1 prompt b's) whose `motion_agreement` with the planner's
    velocity is highest (either of two near-tied ones: the pipeline scores the float clip)."""
    from lumiere_jax.diffusion.clip_motion import motion_agreement

    plan = planner.velocity(["a"] * len(candidates), candidates.shape[2], candidates.shape[1])
    scores = motion_agreement(jnp.asarray(candidates, jnp.float32) / 127.5 - 1.0,
                              jnp.asarray(plan))
    _assert_best_kept(picked, candidates, np.asarray(scores), k, tie=1e-2)


def _assert_best_kept(picked, candidates, scores, k, tie):
    """Each `picked[b]` is prompt b's candidate with the highest score (either of the top two
    when they are within `tie`: the pipeline scores the float clip, these the uint8 one).
    candidates: (B*K, ...) uint8, rows b*K ... b*K + K - 1 prompt b's; scores: (B*K,)."""
    scores = scores.reshape(-1, k)
    candidates = candidates.reshape((-1, k) + picked.shape[1:])
    assert all(not _same_clip(candidates[b, i], candidates[b, j])  # all differ
               for b in range(len(candidates)) for i in range(k) for j in range(i))
    for b in range(len(picked)):
        order = np.argsort(-scores[b])
        allowed = order[:1] if scores[b, order[0]] - scores[b, order[1]] > tie else order[:2]
        assert any(_same_clip(picked[b], candidates[b, i]) for i in allowed), scores[b]


def test_base_candidates_keep_the_one_that_moves_as_planned(parts, pipe):
    """candidate_score='motion': no critic needed; each prompt keeps the candidate whose
    measured motion (`motion_agreement`) agrees best with the planner's velocity.
    Reference: one clip per prompt on each prompt repeated K times (the same noise rows),
    scored here."""
    from lumiere_jax.text.motion_planner import MotionPlanner, num_features

    weights = np.zeros((num_features(1), 2))
    weights[-1] = (0.2, 0.5)  # every prompt: down and to the right
    planner = MotionPlanner(("a",), weights)
    with pytest.raises(ValueError, match="candidate_score='motion' .*motion_noise > 0"):
        SamplingConfig(base_candidates=2, candidate_score="motion")
    with pytest.raises(ValueError, match="candidate_score"):
        SamplingConfig(candidate_score="clip")
    prompts, key, k = ["a red ball bounces", "waves"], jax.random.key(5), 3
    moving = dataclasses.replace(pipe.sampling, motion_noise=0.9)
    best = LumierePipeline(*parts, motion_planner=planner, sampling=dataclasses.replace(
        moving, base_candidates=k, candidate_score="motion"))
    picked = best(prompts, key, base_only=True)
    one = LumierePipeline(*parts, motion_planner=planner, sampling=moving)
    repeated = [p for p in prompts for _ in range(k)]
    _assert_motion_pick(picked, one(repeated, key, base_only=True), planner, k)


def test_image_to_video_candidates_keep_the_one_that_moves_as_planned(parts, pipe):
    """With motion noise and candidate_score='motion', image-to-video samples K clips per
    prompt too and keeps the one whose measured motion agrees best with the plan; the
    given frame stays in every candidate. Reference: one clip per prompt on each prompt
    repeated K times (the same noise rows)."""
    from lumiere_jax.text.motion_planner import MotionPlanner, num_features

    weights = np.zeros((num_features(1), 2))
    weights[-1] = (-0.3, 0.4)  # every prompt: up and to the right
    planner = MotionPlanner(("a",), weights)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8)
    prompts, key, k = ["a red ball bounces", "waves"], jax.random.key(6), 3
    moving = dataclasses.replace(pipe.sampling, motion_noise=0.9, candidate_score="motion")
    best = LumierePipeline(*parts, motion_planner=planner,
                           sampling=dataclasses.replace(moving, base_candidates=k))
    picked = best.image_to_video(prompts, image, key, base_only=True)
    one = LumierePipeline(*parts, motion_planner=planner, sampling=moving)
    repeated = [p for p in prompts for _ in range(k)]
    _assert_motion_pick(picked, one.image_to_video(repeated, image, key, base_only=True),
                        planner, k)
    assert np.abs(picked[:, 0].astype(int) - image.astype(int)).max() <= 1


def _assert_coherence_pick(picked, candidates, k):
    """`picked` holds each prompt's candidate with the highest `motion_coherence`, recomputed
    here in NumPy: the R^2 of one least-squares velocity for the clip's brightness
    constancy (the float and uint8 clips' scores are 1e-3 apart at most here)."""
    x = candidates.astype(np.float64) / 127.5 - 1.0
    mid, dt = 0.5 * (x[:, 1:] + x[:, :-1]), x[:, 1:] - x[:, :-1]
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    gy = 0.5 * (mid[:, :, 2:, 1:-1] - mid[:, :, :-2, 1:-1])
    gx = 0.5 * (mid[:, :, 1:-1, 2:] - mid[:, :, 1:-1, :-2])
    scores = []
    for a_y, a_x, b in zip(gy, gx, dt[inner]):
        a = np.stack([a_y.ravel(), a_x.ravel()], 1)
        v = np.linalg.lstsq(a, -b.ravel(), rcond=None)[0]
        scores.append(1.0 - np.sum((b.ravel() + a @ v) ** 2) / np.sum(b ** 2))
    _assert_best_kept(picked, candidates, np.asarray(scores), k, tie=1e-3)


def test_coherence_candidates_in_text_to_video_and_image_to_video(parts, pipe):
    """candidate_score='coherence' (no critic): each prompt keeps the candidate whose change
    one translation explains best, in text-to-video and image-to-video alike (where the
    given frame stays in every candidate). The base's weights are zeros, so each clip is
    its moving starting noise scaled (random weights turn any start into clips that no
    translation explains, all scoring 0 within rounding). Reference: one clip per prompt
    on each prompt repeated K times (the same noise rows), scored here."""
    from lumiere_jax.text.motion_planner import MotionPlanner, num_features

    weights = np.zeros((num_features(1), 2))
    weights[-1] = (0.4, -0.3)  # every prompt: down and to the left
    planner = MotionPlanner(("a",), weights)
    prompts, key, k = ["a red ball bounces", "waves"], jax.random.key(7), 3
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), np.uint8)
    moving = dataclasses.replace(pipe.sampling, motion_noise=0.9, candidate_score="coherence")
    still = (parts[0], jax.tree.map(jnp.zeros_like, parts[1])) + tuple(parts[2:])
    best = LumierePipeline(*still, motion_planner=planner,
                           sampling=dataclasses.replace(moving, base_candidates=k))
    one = LumierePipeline(*still, motion_planner=planner, sampling=moving)
    repeated = [p for p in prompts for _ in range(k)]
    _assert_coherence_pick(best(prompts, key, base_only=True),
                           one(repeated, key, base_only=True), k)
    picked = best.image_to_video(prompts, image, key, base_only=True)
    _assert_coherence_pick(picked, one.image_to_video(repeated, image, key, base_only=True), k)
    assert np.abs(picked[:, 0].astype(int) - image.astype(int)).max() <= 1


def test_reader_candidates_keep_the_clip_the_reader_is_surest_shows_the_prompt(parts, pipe):
    """candidate_score='reader': of each prompt's K candidates, the one the object reader
    scores highest for what the prompt says. Reference: one clip per prompt on each prompt
    repeated K times (the same noise rows), scored here by the reader on the uint8 clips
    (near-ties may go either way). 10 frames: the reader's motion CNN needs at least 9."""
    from lumiere_jax.models.object_reader import ObjectReader
    from lumiere_jax.text.motion_planner import MotionPlanner, num_features

    weights = np.zeros((num_features(1), 2))
    weights[-1] = (0.4, 0.3)
    planner = MotionPlanner(("a",), weights)
    blank = ObjectReader(("red", "blue"), ("circle", "square"), ("left", "right"), None)
    reader = dataclasses.replace(blank, params=blank.init_params(jax.random.key(3),
                                                                 (10, 8, 8, 3)))
    prompts = ["a red circle moving left", "a blue square and a red square moving right"]
    key, k, frames = jax.random.key(8), 3, 10
    moving = dataclasses.replace(pipe.sampling, motion_noise=0.9, candidate_score="reader")
    with pytest.raises(ValueError, match="needs an ObjectReader"):
        LumierePipeline(*parts, motion_planner=planner,
                        sampling=dataclasses.replace(moving, base_candidates=k))
    still = (parts[0], jax.tree.map(jnp.zeros_like, parts[1])) + tuple(parts[2:])
    best = LumierePipeline(*still, motion_planner=planner, object_reader=reader,
                           sampling=dataclasses.replace(moving, base_candidates=k))
    picked = best(prompts, key, num_frames=frames, base_only=True)
    one = LumierePipeline(*still, motion_planner=planner, sampling=moving)
    repeated = [p for p in prompts for _ in range(k)]
    candidates = one(repeated, key, num_frames=frames, base_only=True)
    index, want = reader.named_terms(repeated)
    named = np.asarray(reader.scores(reader.params, jnp.asarray(candidates, jnp.float32) / 127.5
                                     - 1.0, jnp.asarray(index), jnp.asarray(want)))
    named = named.reshape(-1, k)
    assert np.ptp(named, axis=1).min() > 1e-3, named  # the pick is not a tie
    assert named.argmax(1).any(), named  # nor always the first candidate
    grouped = candidates.reshape((-1, k) + candidates.shape[1:])
    for b in range(len(prompts)):
        kept = [i for i in range(k) if _same_clip(picked[b], grouped[b, i])]
        assert len(kept) == 1, kept
        assert named[b, kept[0]] >= named[b].max() - 1e-3, (named[b], kept)
    with pytest.raises(ValueError, match="at least 9 frames"):
        best(prompts, key, num_frames=8, base_only=True)


def _layered_reference(bottom, top):
    """NumPy: `top`'s pixels further than 0.7 (summed |RGB| in [-1, 1]) from the median of its
    border pixels over all frames, over `bottom` (uint8 (T, H, W, 3) each)."""
    unit = top.astype(np.float64) / 127.5 - 1.0
    border = np.concatenate([unit[:, 0], unit[:, -1], unit[:, 1:-1, 0], unit[:, 1:-1, -1]], 1)
    front = np.abs(unit - np.median(border.reshape(-1, 3), axis=0)).sum(-1) > 0.7
    return np.where(front[..., None], top, bottom)


def test_layer_objects_draws_each_object_phrase_and_layers_the_clips(parts, pipe):
    """layer_objects: a prompt of two objects is sampled as its two object prompts (each
    with the background phrase) and the second clip's foreground is laid over the first; a
    one-object prompt of the same call is sampled as itself; the SSR stage runs on the
    layered clip under the whole prompt (== `upsample`). A call of one-object prompts is
    the plain pipeline's."""
    layered = LumierePipeline(*parts, sampling=dataclasses.replace(pipe.sampling,
                                                                   layer_objects=True))
    prompts = ["a red circle moving right and a blue square moving up on a black background",
               "a green ball on a white background"]
    key = jax.random.key(5)
    low, high = layered(prompts, key, return_low_res=True)
    k_base, k_ssr = jax.random.split(key)
    rows = ["a red circle moving right on a black background",
            "a blue square moving up on a black background",
            "a green ball on a white background", "a green ball on a white background"]
    clips = pipe(rows, k_base, base_only=True)
    reference = _layered_reference(clips[0], clips[1])
    assert not np.array_equal(reference, clips[0]) and not np.array_equal(reference, clips[1])
    np.testing.assert_array_equal(low[0], reference)
    np.testing.assert_array_equal(low[1], clips[2])
    np.testing.assert_array_equal(high, pipe.upsample(prompts, low, k_ssr))
    assert high.shape == (2,) + pipe(["x"], key).shape[1:]
    np.testing.assert_array_equal(layered(["waves"], key, base_only=True),
                                  pipe(["waves"], key, base_only=True))
    with pytest.raises(ValueError, match="layer_objects"):
        SamplingConfig(layer_objects=1)
    with pytest.raises(ValueError, match="video must be"):
        pipe.upsample(prompts, low[0, 0], k_ssr)


def _carried(image, velocity, num_frames):
    """NumPy: frame k = `image` (H, W, C) moved by about k * velocity whole pixels (the
    translating noise's own offsets), uncovered pixels copied from the nearest edge."""
    t = np.arange(num_frames) - (num_frames - 1) / 2.0
    offsets = np.floor(t[:, None] * velocity[None] + 0.5).astype(int)
    h, w = image.shape[:2]
    out = []
    for dy, dx in offsets - offsets[0]:
        rows = np.clip(np.arange(h) - dy, 0, h - 1)
        cols = np.clip(np.arange(w) - dx, 0, w - 1)
        out.append(image[rows][:, cols])
    return np.stack(out)


def test_image_start_begins_image_to_video_from_the_image_carried_along_the_plan(parts, pipe):
    """`image_start`: i2v (and a cinemagraph's animated region) starts at t = image_start
    from the given frame moved along the planner's velocity, noised. The base's weights are zeros (every prediction 0, so each
    output frame is a rescaled, clipped copy of its start): frames 1.. then follow the
    image carried the planned way (a NumPy copy of it), not the other way, and without
    `image_start` they follow neither."""
    from lumiere_jax.text.motion_planner import MotionPlanner, num_features

    weights = np.zeros((num_features(1), 2))
    weights[-1] = (0.4, -0.3)  # every prompt: down and to the left, ~0.9 px a frame
    planner = MotionPlanner(("a",), weights)
    prompts, key = ["a red ball bounces", "waves"], jax.random.key(5)
    image = np.random.default_rng(2).integers(0, 256, (16, 16, 3), np.uint8)
    still = (parts[0], jax.tree.map(jnp.zeros_like, parts[1])) + tuple(parts[2:])
    moving = dataclasses.replace(pipe.sampling, motion_noise=0.9, base_candidates=1)
    v = planner.velocity(prompts, 16, 8)[0]
    pixels = image.astype(np.float64)
    planned, reversed_ = _carried(pixels, v, 8)[1:], _carried(pixels, -v, 8)[1:]

    def corr(a, b):
        return np.corrcoef(a.astype(np.float64).ravel(), b.ravel())[0, 1]

    for start, follows in ((0.2, True), (0.0, False)):
        sampler = LumierePipeline(*still, motion_planner=planner, sampling=dataclasses.replace(
            moving, image_start=start))
        out = sampler.image_to_video(prompts, image, key, base_only=True)
        assert np.abs(out[:, 0].astype(int) - image.astype(int)).max() <= 1
        for clip in out:
            with_plan, against = corr(clip[1:], planned), corr(clip[1:], reversed_)
            if follows:
                assert with_plan > 0.7 and with_plan > against + 0.4, (with_plan, against)
            else:
                assert abs(with_plan) < 0.2, with_plan
    # a cinemagraph carries its image too: the still left half stays, the right half moves
    sampler = LumierePipeline(*still, motion_planner=planner, sampling=dataclasses.replace(
        moving, image_start=0.2))
    still_mask = np.zeros((16, 16), np.float32)
    still_mask[:, :8] = 1.0
    out = sampler.cinemagraph(prompts, image, still_mask, key, base_only=True)
    assert np.abs(out[..., :8, :].astype(int) - image[:, :8].astype(int)).max() <= 1
    for clip in out:
        right = clip[1:, :, 8:]
        with_plan, against = corr(right, planned[:, :, 8:]), corr(right, reversed_[:, :, 8:])
        assert with_plan > 0.7 and with_plan > against + 0.4, (with_plan, against)
    with pytest.raises(ValueError, match="image_start=0.5 carries the image"):
        dataclasses.replace(moving, motion_noise=0.0, image_start=0.5)
    with pytest.raises(ValueError, match=r"image_start=1.0 must be in \[0, 1\)"):
        dataclasses.replace(moving, image_start=1.0)


def _tiny_layout(parts, image_size=8):
    """A random-weight `LayoutExpert` for the parts' 16 px base: 8 px, pooled 2x."""
    from lumiere_jax.diffusion.schedules import cosine_schedule
    from lumiere_jax.models import UNetConfig
    from lumiere_jax.pipeline import LayoutExpert

    base_cfg, text_encoder = parts[0], parts[4]
    cfg = UNetConfig(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(),
                     cross_attention_levels=(1,), num_heads=2, norm_groups=4,
                     text_dim=TEXT_DIM, temporal=True, temporal_downsample=(False,),
                     temporal_text=True, temporal_text_layout=True, image_size=image_size,
                     num_frames=base_cfg.num_frames)
    return LayoutExpert(cfg, _random_params(cfg, 6), text_encoder, 2,
                        cosine_schedule(image_size, base_cfg.image_size), "v")


def test_layout_expert_draws_the_steps_above_layout_until(parts, pipe):
    """One base step at t = 1 taken by a 2x-pooled expert gives x0 = its 8 px clip repeated
    into 2 x 2 blocks: the output is constant on every block. Off (layout_until 0), or with
    the expert only at t = 1 of two steps, it is not; and the expert changes the clip."""
    prompts, key = ["a red ball bounces", "waves"], jax.random.key(2)
    one_step = dataclasses.replace(pipe.sampling, base_steps=1)
    layout = _tiny_layout(parts)
    drawn = LumierePipeline(*parts, layout=layout, sampling=dataclasses.replace(
        one_step, layout_until=0.9))(prompts, key, base_only=True).astype(int)
    blocks = drawn.reshape(2, 8, 8, 2, 8, 2, 3)
    assert np.all(blocks == blocks[:, :, :, :1, :, :1]), "not constant on the 2 x 2 blocks"
    assert drawn.std() > 1.0
    plain = LumierePipeline(*parts, layout=layout, sampling=one_step)(
        prompts, key, base_only=True).astype(int)
    p_blocks = plain.reshape(2, 8, 8, 2, 8, 2, 3)
    assert not np.all(p_blocks == p_blocks[:, :, :, :1, :, :1])
    two = LumierePipeline(*parts, layout=layout, sampling=dataclasses.replace(
        pipe.sampling, layout_until=0.9))(prompts, key, base_only=True).astype(int)
    off = pipe(prompts, key, base_only=True).astype(int)
    assert np.abs(two - off).mean() > 1.0


def test_layout_settings_are_checked(parts, pipe):
    with pytest.raises(ValueError, match="layout_until=0.8 needs a LayoutExpert"):
        LumierePipeline(*parts, sampling=dataclasses.replace(pipe.sampling, layout_until=0.8))
    with pytest.raises(ValueError, match="layout expert draws 4 px clips pooled 2x"):
        LumierePipeline(*parts, sampling=pipe.sampling, layout=_tiny_layout(parts, 4))
    for bad in (-0.1, 1.5, "x"):
        with pytest.raises(ValueError, match="layout_until"):
            SamplingConfig(layout_until=bad)


def test_motion_noise_starts_the_base_stage_from_the_planners_motion(parts, pipe):
    """`motion_noise` needs a planner, is checked, and changes only the base stage's start:
    the planner's velocity reaches the noise (two planners, two clips), in text-to-video
    and in image-to-video."""
    from lumiere_jax.text.motion_planner import MotionPlanner, num_features

    def planner(dx):  # every prompt travels dx of the frame to the right
        weights = np.zeros((num_features(1), 2))
        weights[-1, 1] = dx
        return MotionPlanner(("a",), weights)

    moving = dataclasses.replace(pipe.sampling, motion_noise=0.7)
    with pytest.raises(ValueError, match="motion_noise=0.7 needs a MotionPlanner"):
        LumierePipeline(*parts, sampling=moving)
    for bad in (1.0, -0.1, "x"):
        with pytest.raises(ValueError, match="motion_noise"):
            SamplingConfig(motion_noise=bad)
    key, prompts = jax.random.key(3), ["a red ball bounces"]
    still = LumierePipeline(*parts, sampling=moving, motion_planner=planner(0.0))
    right = LumierePipeline(*parts, sampling=moving, motion_planner=planner(1.0))
    plain = pipe(prompts, key, base_only=True)
    a, b = still(prompts, key, base_only=True), right(prompts, key, base_only=True)
    assert a.shape == plain.shape
    assert np.abs(a.astype(int) - plain.astype(int)).max() > 0
    assert np.abs(a.astype(int) - b.astype(int)).max() > 0
    # image-to-video starts from the planner's motion too; the given frame stays
    ia, ib = (p.image_to_video(prompts, plain[0, 0], key, base_only=True) for p in (still, right))
    assert np.abs(ia.astype(int) - ib.astype(int)).max() > 0
    for clip in (ia, ib):
        assert np.abs(clip[0, 0].astype(int) - plain[0, 0].astype(int)).max() <= 1

    # motion_layout 'objects': text-to-video starts from one moving disc per object phrase
    # (the planner's travel still reaches it); image-to-video keeps the moving field
    for bad in ("disc", None):
        with pytest.raises(ValueError, match="motion_layout"):
            SamplingConfig(motion_layout=bad)
    with pytest.raises(ValueError, match="motion_radius"):
        SamplingConfig(motion_radius=0.5)
    discs = dataclasses.replace(moving, motion_layout="objects")
    still_o = LumierePipeline(*parts, sampling=discs, motion_planner=planner(0.0))
    right_o = LumierePipeline(*parts, sampling=discs, motion_planner=planner(1.0))
    c, d = still_o(prompts, key, base_only=True), right_o(prompts, key, base_only=True)
    assert np.abs(c.astype(int) - a.astype(int)).max() > 0
    assert np.abs(c.astype(int) - d.astype(int)).max() > 0
    np.testing.assert_array_equal(
        right_o.image_to_video(prompts, plain[0, 0], key, base_only=True), ib)


def test_keyframes_animate_the_t2i_image_the_reader_scores_highest(parts, pipe):
    """keyframes=K: the T2I draws K images per prompt (`draw_keyframes`; deterministic in
    the key, different per candidate), each scored by the object reader held still: the
    sum of log sigmoid(want * logit) of the colour-shape, one-of-a-colour and absent (every
    pair of an unnamed colour) terms on the reader's logits of a 9-frame still clip
    (NumPy). The clip is image-to-video from the best-scored image (the plain pipeline's
    `image_to_video`, second half of the key)."""
    from lumiere_jax.diffusion.schedules import cosine_schedule
    from lumiere_jax.keyframes import KeyframeDrawer
    from lumiere_jax.models.object_reader import ObjectReader
    from lumiere_jax.models.presets import tiny_t2i

    t2i = tiny_t2i(channel_mults=(1, 2), attention_levels=(1,), cross_attention_levels=(1,))
    drawer = KeyframeDrawer(t2i, _random_params(t2i, 4), parts[4], cosine_schedule(16, 16), "v")
    blank = ObjectReader(("red", "blue"), ("circle", "square"), ("left", "right"), None)
    reader = dataclasses.replace(blank, params=blank.init_params(jax.random.key(3),
                                                                 (10, 8, 8, 3)))
    sampling = dataclasses.replace(pipe.sampling, keyframes=3)
    with pytest.raises(ValueError, match="needs a KeyframeDrawer"):
        LumierePipeline(*parts, sampling=sampling, object_reader=reader)
    with pytest.raises(ValueError, match="keyframes=3 picks a keyframe with an ObjectReader"):
        LumierePipeline(*parts, sampling=sampling, keyframe_drawer=drawer)
    with pytest.raises(ValueError, match="keyframes=-1"):
        SamplingConfig(keyframes=-1)
    keyed = LumierePipeline(*parts, sampling=sampling, keyframe_drawer=drawer,
                            object_reader=reader)
    prompts = ["a red circle moving left", "a blue square and a red square"]
    key = jax.random.key(4)
    k_draw, k_video = jax.random.split(key)
    images, scores = keyed.draw_keyframes(prompts, k_draw)
    assert images.shape == (2, 3, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, keyed.draw_keyframes(prompts, k_draw)[0])
    assert not np.array_equal(images[:, 0], images[:, 1])
    log_p = lambda z: -np.log1p(np.exp(-z))
    # outputs: pairs colour * 2 + shape (0-3), motions (4-7, not read), repeats 8 + colour
    # and prompt 0 names no blue object: blue circle (2) and blue square (3) absent
    terms = {0: [(0, 1.0), (8, -1.0), (2, -1.0), (3, -1.0)],
             1: [(3, 1.0), (9, -1.0), (1, 1.0), (8, -1.0)]}
    expected = np.zeros((2, 3))
    for b in range(2):
        for j in range(3):
            still = np.repeat(images[b, j][None, None], 9, 1).astype(np.float32) / 127.5 - 1
            logits = np.asarray(reader.logits(reader.params, still), np.float64)[0]
            expected[b, j] = sum(log_p(w * logits[i]) for i, w in terms[b])
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    assert np.ptp(expected, axis=1).min() > 1e-3, expected  # the pick is not a tie
    best = images[np.arange(2), expected.argmax(1)]
    low = keyed(prompts, key, base_only=True)
    np.testing.assert_array_equal(low, pipe.image_to_video(prompts, best, k_video,
                                                           base_only=True))
    # the pipeline's XLA options reach the keyframe sampler too (an unknown one fails there)
    bad = dataclasses.replace(sampling, xla_options=(("xla_no_such_option", 1),))
    with pytest.raises(Exception, match="xla_no_such_option"):
        LumierePipeline(*parts, sampling=bad, keyframe_drawer=drawer,
                        object_reader=reader).draw_keyframes(prompts, k_draw)
