"""Resident training (`training.resident`, `train_resident.py`): the clips it renders are
the TFDS records, each caption goes with its own clip, several steps per call equal one
step per call, a T2I -> STUNet chain writes pretrained folders that inflate, warm-start
and ship, and bad input stops it early."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def _tiny(stage, **train):
    from configs.common import tiny_config

    c = tiny_config(stage)
    c.data.update(name="moving_shapes/f4_s8", caption_dropout=0.5, batch_size=4)
    c.train.update(**train)
    return c


def test_rendered_clips_are_the_train_records_and_their_labels_rebuild_the_caption():
    from lumiere_jax.data.moving_shapes import caption_from_labels, make_example
    from lumiere_jax.training.resident import render_clips

    videos, labels = render_clips(12, 4, 8, seed=3, workers=2)   # worker processes
    assert videos.shape == (12, 4, 8, 8, 3) and videos.dtype == np.uint8
    for i in range(12):
        record = make_example(3, "train", i, 4, 8, 8)
        np.testing.assert_array_equal(videos[i], record["video"])
        full = caption_from_labels(labels[i], np.random.default_rng(0), drop_prob=0.0)
        assert full == record["caption"]


def test_each_drawn_caption_belongs_to_the_drawn_clip():
    from lumiere_jax import runs
    from lumiere_jax.training.resident import caption_table, draw_batch, render_clips

    tok = runs.tokenizer(_tiny("stunet"))
    videos, labels = render_clips(24, 4, 8, workers=1)
    ids, mask = caption_table(labels, tok, drop_prob=0.5, per_clip=3)
    assert ids.shape[:2] == (24, 3) and mask.shape == ids.shape
    data = dict(pixels=videos, ids=ids, mask=mask)
    for images in (False, True):
        batch = jax.device_get(draw_batch(data, jax.random.key(1), 16, images))
        for row in range(16):
            clips = [i for i in range(24)
                     for c in ([videos[i]] if not images else list(videos[i]))
                     if np.array_equal(batch["pixels"][row], c)]
            assert clips, "the drawn pixels are not a clip (or a frame) of the data"
            assert any(np.array_equal(batch["ids"][row], ids[i, k]) and
                       np.array_equal(batch["mask"][row], mask[i, k])
                       for i in clips for k in range(3)), "the caption is another clip's"


def test_reversal_pairs_are_each_clip_and_itself_backwards_with_reversed_captions():
    from lumiere_jax import runs
    from lumiere_jax.data.moving_shapes import reverse_directions
    from lumiere_jax.training.resident import caption_table, draw_batch, render_clips

    tok = runs.tokenizer(_tiny("stunet"))
    videos, labels = render_clips(10, 4, 8, workers=1)
    ids, mask = caption_table(labels, tok, drop_prob=0.0, per_clip=1)
    ids_r, mask_r = caption_table(labels, tok, drop_prob=0.0, per_clip=1, reversed_=True)
    data = dict(pixels=videos, ids=ids, mask=mask, ids_reversed=ids_r, mask_reversed=mask_r)
    batch = jax.device_get(draw_batch(data, jax.random.key(2), 8, False, reversal_pairs=True))
    assert batch["pixels"].shape == (8, 4, 8, 8, 3)
    for row in range(0, 8, 2):
        (i,) = [i for i in range(10) if np.array_equal(batch["pixels"][row], videos[i])]
        np.testing.assert_array_equal(batch["pixels"][row + 1], videos[i][::-1])
        caption = make_caption(labels[i])
        reference = tok.encode([caption, reverse_directions(caption)])[0]
        np.testing.assert_array_equal(batch["ids"][row], reference[0])
        np.testing.assert_array_equal(batch["ids"][row + 1], reference[1])


def make_caption(labels):
    from lumiere_jax.data.moving_shapes import caption_from_labels

    return caption_from_labels(labels, np.random.default_rng(0), drop_prob=0.0)


def test_several_steps_per_call_equal_one_step_per_call():
    from lumiere_jax.training.resident import (caption_table, make_resident_step,
                                               one_device_mesh, render_clips)
    from lumiere_jax.training.run import build_run
    from lumiere_jax.training.step import make_train_step

    c = _tiny("t2i")
    run = build_run(c, one_device_mesh())
    videos, labels = render_clips(8, 4, 8, workers=1)
    ids, mask = caption_table(labels, run.tokenizer, drop_prob=0.5, per_clip=2)
    data = dict(pixels=videos, ids=ids, mask=mask)
    step_fn = make_train_step(run.model, run.encoder, run.tx, run.lr_schedule, run.step_config,
                              run.null_ids, run.null_mask)
    key = jax.random.key(5)
    results = []
    for per_call, calls in ((1, 4), (2, 2)):
        state, frozen = run.fresh_state()
        fn = jax.jit(make_resident_step(step_fn, 4, True, per_call))
        losses = []
        for _ in range(calls):
            state, metrics = fn(state, frozen, data, key)
            losses += list(np.asarray(metrics["loss"]))
        results.append((losses, state))
    (l1, s1), (l2, s2) = results
    assert len(l1) == len(l2) == 4 and int(s1["step"]) == int(s2["step"]) == 4
    np.testing.assert_allclose(l1, l2, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(s1["params"]), jax.tree.leaves(s2["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


def test_t2i_then_stunet_write_pretrained_folders_that_inflate_warm_start_and_ship(tmp_path):
    from flax import traverse_util

    from lumiere_jax import pretrained, runs
    from lumiere_jax.training import setup
    from lumiere_jax.training.metrics import read_metrics
    from lumiere_jax.training.resident import train_resident

    t2i_dir, base_dir = str(tmp_path / "t2i"), str(tmp_path / "base")
    figures = train_resident(_tiny("t2i"), t2i_dir, seconds=0.5, sync_every=2, num_clips=16,
                             captions_per_clip=2, workers=1)
    assert figures["steps"] >= 2 and figures["steps"] % 2 == 0
    assert [r["step"] for r in read_metrics(os.path.join(t2i_dir, "metrics.jsonl"))] == \
        list(range(1, figures["steps"] + 1))
    _, t2i = pretrained.load_stage(t2i_dir, "t2i")                 # checked against its config

    # A STUNet folder to warm-start from: fresh weights + 0.5, far from any fresh init.
    config = _tiny("stunet", init_from=t2i_dir)
    fresh = jax.device_get(runs.random_params(config, jax.random.key(9)))
    warm = jax.tree.map(lambda w: np.asarray(w) + 0.5, fresh)
    entry = pretrained.write_stage(tmp_path / "warm", "base", config, warm)
    pretrained.write_manifest(tmp_path / "warm", {"base": entry})

    train_resident(config, base_dir, seconds=0.1, sync_every=3, num_clips=8,
                   captions_per_clip=1, warm_start=str(tmp_path / "warm"), workers=1)
    _, base = pretrained.load_stage(base_dir, "base")
    flat = traverse_util.flatten_dict
    trains = flat(setup.trainable_tree(config, base))
    base_f, warm_f, t2i_f = flat(base), flat(warm), flat({"unet": t2i["unet"],
                                                          "text": t2i["text"]})
    assert any(trains.values()) and not all(trains.values())
    for path, value in base_f.items():
        if trains[path]:   # warm-started, then a few small steps (lr <= 1e-3, EMA 0.9)
            np.testing.assert_allclose(value, warm_f[path], atol=0.02)
        else:              # frozen: the T2I's weights, inflated
            np.testing.assert_array_equal(value, t2i_f[path])

    # export_pretrained.py ships a resident folder as it is.
    out = tmp_path / "shipped"
    subprocess.run([sys.executable, "export_pretrained.py", "--out", str(out),
                    "--stage", f"t2i={t2i_dir}", "--stage", f"base={base_dir}"],
                   cwd=ROOT, check=True, capture_output=True, env={**os.environ})
    _, shipped = pretrained.load_stage(out, "base")
    for a, b in zip(jax.tree.leaves(shipped), jax.tree.leaves(base)):
        np.testing.assert_array_equal(a, b)
    assert pretrained.read_manifest(out)["stages"]["t2i"]["training"]["steps"] == \
        figures["steps"]


@pytest.mark.parametrize("override,kwargs,match", [
    (dict(name="moving_shapes/f4_s16"), {}, "config.data.name"),
    (dict(name="video_folder/x"), {}, "config.data.name"),
    (dict(time_reversal_pairs=True, batch_size=3), {}, "time_reversal_pairs"),
    ({}, dict(seconds=0), "--seconds"),
    ({}, dict(num_clips=0), "--num_clips"),
])
def test_bad_input_stops_before_anything_is_written(tmp_path, override, kwargs, match):
    from lumiere_jax.training.resident import train_resident

    c = _tiny("stunet", init_from="unused")
    c.data.update(**override)
    with pytest.raises(ValueError, match=match):
        train_resident(c, str(tmp_path / "w"), **{"seconds": 1.0, **kwargs})
    assert not (tmp_path / "w").exists()


def test_cli_help_lists_every_flag():
    out = subprocess.run([sys.executable, "train_resident.py", "--help"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0
    for flag in ("--seconds", "--warm_start", "--num_clips", "--steps_per_call",
                 "--sync_every", "--captions_per_clip"):
        assert flag in out.stdout


def test_each_drawn_velocity_is_the_drawn_clips_mean_object_velocity():
    """'velocity' rows go with their clips (the renderer's stored per-object velocities,
    averaged); a reversal pair's backwards row moves the other way."""
    from lumiere_jax import runs
    from lumiere_jax.data.moving_shapes import make_example
    from lumiere_jax.training.resident import (caption_table, draw_batch, mean_velocity,
                                               render_clips)

    tok = runs.tokenizer(_tiny("stunet"))
    videos, labels = render_clips(12, 4, 8, workers=1)
    ids, mask = caption_table(labels, tok, drop_prob=0.0, per_clip=1)
    data = dict(pixels=videos, ids=ids, mask=mask, velocity=mean_velocity(labels),
                ids_reversed=ids, mask_reversed=mask)
    truth = [np.mean(make_example(0, "train", i, 4, 8, 8)["objects"]["velocity"], 0)
             for i in range(12)]
    for pairs in (False, True):
        batch = jax.device_get(draw_batch(data, jax.random.key(4), 8, False, pairs))
        for row in range(0, 8, 1 + pairs):
            (i,) = [i for i in range(12) if np.array_equal(batch["pixels"][row], videos[i])]
            np.testing.assert_allclose(batch["velocity"][row], truth[i], rtol=1e-6)
            if pairs:
                np.testing.assert_allclose(batch["velocity"][row + 1], -truth[i], rtol=1e-6)


def test_each_drawn_track_is_the_drawn_clips_objects_and_runs_backwards_in_a_pair():
    """'tracks' rows go with their clips (the renderer's start, velocity and size); a
    reversal pair's backwards row starts where the object ended and moves the other way."""
    from lumiere_jax import runs
    from lumiere_jax.data.moving_shapes import SIZES, make_example
    from lumiere_jax.training.resident import (caption_table, draw_batch, object_tracks,
                                               render_clips)

    tok = runs.tokenizer(_tiny("stunet"))
    videos, labels = render_clips(12, 4, 8, workers=1)
    ids, mask = caption_table(labels, tok, drop_prob=0.0, per_clip=1)
    data = dict(pixels=videos, ids=ids, mask=mask, tracks=object_tracks(labels, 8),
                ids_reversed=ids, mask_reversed=mask)
    for pairs in (False, True):
        batch = jax.device_get(draw_batch(data, jax.random.key(5), 8, False, pairs))
        for row in range(0, 8, 1 + pairs):
            (i,) = [i for i in range(12) if np.array_equal(batch["pixels"][row], videos[i])]
            objs = make_example(0, "train", i, 4, 8, 8)["objects"]
            n = len(objs["shape"])
            got = batch["tracks"][row]
            np.testing.assert_allclose(got[:n, 0:2], objs["start"], rtol=1e-6)
            np.testing.assert_allclose(got[:n, 2:4], objs["velocity"], rtol=1e-6)
            np.testing.assert_allclose(got[:n, 4], [SIZES[z] * 8 for z in objs["size"]])
            assert not got[n:].any()
            if pairs:
                back = batch["tracks"][row + 1]
                np.testing.assert_allclose(back[:n, 0:2], objs["start"] + 3 * objs["velocity"],
                                           rtol=1e-5, atol=1e-5)
                np.testing.assert_allclose(back[:n, 2:4], -objs["velocity"], rtol=1e-6)
