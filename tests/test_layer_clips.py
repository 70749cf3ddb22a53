"""Layering one-object clips, against the renderer's two-object scenes (labels from the
scene) and a NumPy median."""

import numpy as np

from lumiere_jax.data.moving_shapes.scenes import (BACKGROUNDS, COLORS, Scene, render_scene,
                                                   sample_scene)
from lumiere_jax.eval import analyze_clip
from lumiere_jax.layering import background_color, layer_clips


READ = ("color", "shape", "direction", "count")  # sizes move with the rims' pixels


def to_unit(video):
    return video.astype(np.float32) / 127.5 - 1.0


def test_layered_one_object_renders_are_the_rendered_two_object_scene():
    """Each two-object scene rendered one object at a time (same background), layered, is
    the scene rendered whole but on the top object's antialiased rim (pixels partly covered,
    neither its colour nor the background's, some of which are not foreground), and the
    analyzer reads the scenes' colours, shapes, directions and object counts from the
    layered clips at least as often as from the whole renders."""
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, 16, 32, 32, two_object_prob=1.0) for _ in range(12)]
    singles = np.stack([[render_scene(Scene((o,), s.background), 16, 32, 32)
                         for o in s.objects] for s in scenes])  # (B, 2, T, H, W, 3)
    whole = np.stack([render_scene(s, 16, 32, 32) for s in scenes])
    layered = np.asarray(layer_clips(to_unit(singles), np.ones((12, 2), bool)))
    layered = np.round((layered + 1.0) * 127.5).astype(np.uint8)
    off = np.abs(layered.astype(int) - whole).max(-1) > 2
    top = singles[:, 1].astype(int)
    colour = np.array([COLORS[s.objects[1].color] for s in scenes])[:, None, None, None]
    background = np.array([BACKGROUNDS[s.background] for s in scenes])[:, None, None, None]
    rim = (np.abs(top - colour).max(-1) > 0) & (np.abs(top - background).max(-1) > 0)
    assert not (off & ~rim).any(), (off & ~rim).sum()
    assert 0 < off.mean() < 0.03, off.mean()
    def right(videos):  # per attribute, how many scenes the analyzer reads right
        reads = [analyze_clip(v).matches(s.caption()) for v, s in zip(videos, scenes)]
        return {a: sum(bool(r[a]) for r in reads) for a in READ}

    from_layers, from_whole = right(layered), right(whole)
    assert all(from_layers[a] >= from_whole[a] for a in READ), (from_layers, from_whole)
    assert from_whole["color"] == len(scenes)

def test_a_layer_not_present_is_not_drawn_and_the_bottom_is_kept_whole():
    rng = np.random.default_rng(1)
    clips = rng.uniform(-1, 1, (2, 3, 4, 8, 8, 3)).astype(np.float32)
    out = np.asarray(layer_clips(clips, np.array([[True, False, False], [False, False, False]])))
    np.testing.assert_array_equal(out, clips[:, 0])


def test_background_color_is_the_median_of_the_border_pixels():
    rng = np.random.default_rng(2)
    clip = rng.uniform(-1, 1, (3, 6, 7, 3)).astype(np.float32)
    border = [clip[t, y, x] for t in range(3) for y in range(6) for x in range(7)
              if y in (0, 5) or x in (0, 6)]
    np.testing.assert_allclose(background_color(clip), np.median(border, axis=0), atol=1e-6)
