"""The application tasks and measures of `lumiere_jax.eval.applications`, checked against
clips the renderer draws from known scenes (its labels are the reference)."""

import dataclasses

import numpy as np
import pytest

from lumiere_jax.data.moving_shapes.moving_shapes_dataset_builder import (
    BACKGROUNDS, COLORS, DIRECTIONS, SIZES, Scene, ShapeObject, make_example, render_scene)
from lumiere_jax.eval import applications as apps

T, S = 16, 32


def _single_object_records(n, style="filled"):
    out, i = [], 0
    while len(out) < n:
        rec = make_example(0, "test", i, T, S, S, style=style)
        if rec["num_objects"] == 1:
            out.append(rec)
        i += 1
    return out


RECORDS = _single_object_records(12)


@pytest.mark.parametrize("k", range(4))
def test_the_trajectory_box_holds_every_pixel_the_object_paints(k):
    rec = RECORDS[k]
    background = np.asarray(BACKGROUNDS[rec["background"]])
    painted = np.abs(rec["video"].astype(int) - background).sum(-1) > 0  # (T, H, W)
    box = apps.trajectory_box(rec)
    assert painted.any() and not (painted & ~box).any()
    assert box.mean() < 0.9  # a box, not the frame


@pytest.mark.parametrize("k", range(6))
def test_feasible_directions_keep_the_object_inside_and_include_its_own(k):
    rec = RECORDS[k]
    own = rec["objects"]["direction"][0]
    feasible = apps.feasible_directions(rec)
    assert own in feasible
    y, x = rec["objects"]["start"][0]
    r = SIZES[rec["objects"]["size"][0]] * S
    for name in feasible:
        dy, dx = np.asarray(DIRECTIONS[name][0]) / np.linalg.norm(DIRECTIONS[name][0]) * 0.25 * S
        if name != own:
            assert r <= y + dy <= S - r and r <= x + dx <= S - r, name


def test_fill_ratio_tells_outlined_shapes_from_filled_ones():
    """The same scenes rendered filled and outlined (the renderer's two styles)."""
    records = _single_object_records(12, "outline")  # same seeds -> same scenes as RECORDS
    filled = [apps.fill_ratio(r["video"]) for r in RECORDS]
    outlined = [apps.fill_ratio(r["video"]) for r in records]
    assert min(filled) > 0.8 and np.mean(filled) > 0.9, filled
    assert np.mean(outlined) < 0.7, outlined
    # At 32 px a small triangle's hole is under a pixel wide; every other shape shows it.
    for r, f, o in zip(records, filled, outlined):
        if (r["objects"]["size"][0], r["objects"]["shape"][0]) != ("small", "triangle"):
            assert o < f - 0.1, (r["caption"], f, o)


def test_the_outline_style_paints_only_a_band_inside_the_edge():
    obj = ShapeObject("circle", "red", "large", "right", "slow", (16.0, 16.0), (0.0, 0.0))
    scene = Scene((obj,), "black")
    filled = render_scene(scene, 1, S, S)[0]
    outline = render_scene(scene, 1, S, S, style="outline")[0]
    assert (filled[16, 16] == COLORS["red"]).all()
    assert (outline[16, 16] == 0).all()                 # the inside shows the background
    r = SIZES["large"] * S                               # 6.4 px: the band is 1.6 px wide
    assert (outline[16, int(16 + r - 1)] == COLORS["red"]).all()
    assert (outline[0, 0] == 0).all()
    with pytest.raises(ValueError, match="style"):
        render_scene(scene, 1, S, S, style="dotted")


class _Source(list):
    """A list of records standing in for a TFDS data source (same item access)."""


SOURCE = _Source(_single_object_records(40))


def test_i2v_on_the_true_clip_scores_perfectly_when_the_prompt_keeps_its_direction():
    tasks = apps.make_tasks("i2v", SOURCE, 16, seed=0)
    own = [t for t in tasks if t.info["prompt_direction"] == t.info["own_direction"]]
    other = [t for t in tasks if t.info["prompt_direction"] != t.info["own_direction"]]
    assert own and other  # the prompts often ask for another direction
    for t in own:
        row = apps.measure(t, SOURCE[t.record]["video"])
        assert row["frame0_error"] == 0.0 and row["direction"] and row["moves"], row
    for t in other:  # the true clip moves its own way: the prompt's direction is not met
        assert not apps.measure(t, SOURCE[t.record]["video"])["direction"]


def test_inpaint_and_cinemagraph_measures_on_the_true_clip():
    for mode in ("inpaint", "cinemagraph"):
        for t in apps.make_tasks(mode, SOURCE, 6, seed=1):
            video = SOURCE[t.record]["video"]
            row = apps.measure(t, video)
            err = row["known_error"] if mode == "inpaint" else row["still_error"]
            assert err == 0.0 and row["direction"], (mode, row)
            # A still clip keeps everything still but does not move.
            still = np.repeat(video[:1], len(video), axis=0)
            if mode == "cinemagraph":
                assert not apps.measure(t, still)["moves"]


def test_edit_measures_a_recoloured_clip():
    tasks = apps.make_tasks("edit", SOURCE, 6, seed=2)
    for t in tasks:
        rec = SOURCE[t.record]
        o = rec["objects"]
        obj = ShapeObject(str(o["shape"][0]), t.target["objects"][0]["color"], str(o["size"][0]),
                          str(o["direction"][0]), str(o["speed"][0]), tuple(o["start"][0]),
                          tuple(o["velocity"][0]))
        recoloured = render_scene(Scene((obj,), str(rec["background"])), T, S, S)
        row = apps.measure(t, recoloured, strength=0.5)
        assert row["new_color"] and row["direction_kept"] and not row["old_color_left"], row
        untouched = apps.measure(t, rec["video"], strength=0.5)
        assert not untouched["new_color"] and untouched["old_color_left"]


def test_summaries_average_every_figure_and_skip_missing_ones():
    rows = [dict(a=True, b=1.0, c=None, prompt="x"), dict(a=False, b=3.0, c=0.5, prompt="y")]
    s = apps.summarize_tasks(rows)
    assert s == {"num_clips": 2, "a": 0.5, "b": 2.0, "c": 0.5}


def test_unknown_modes_and_too_many_clips_are_refused():
    with pytest.raises(ValueError, match="mode"):
        apps.make_tasks("zoom", SOURCE, 2, 0)
    with pytest.raises(ValueError, match="single-object"):
        apps.make_tasks("i2v", SOURCE, 400, 0)


def test_dataclass_task_is_plain_data():
    t = apps.make_tasks("style", SOURCE, 2, 0)[0]
    assert dataclasses.is_dataclass(t) and t.image is None and t.prompt.startswith("a ")
