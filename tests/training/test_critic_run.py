"""train.py's critic stage (`train_critic`) in-process on a tiny moving_shapes build: it
writes metrics and checkpoints, resumes exactly where an uninterrupted run ends, its
weights load as a run and as a pretrained stage, and bad configs stop it early."""

import os
import sys

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig

    folder = tmp_path_factory.mktemp("data")
    cfg = MovingShapesConfig(name="tiny", num_frames=4, height=8, width=8, num_train=16,
                             num_test=0)
    MovingShapes(data_dir=str(folder), config=cfg).download_and_prepare()
    return str(folder / "moving_shapes" / "tiny" / "1.0.0")


def _config(data, steps):
    from configs.demo_critic import get_config

    c = get_config("tiny")
    c.data.name = data
    c.train.update(num_steps=steps, checkpoint_every=2, log_every=1, keep_checkpoints=10)
    return c


def test_critic_run_resumes_exactly_and_exports(data, tmp_path):
    import train
    from lumiere_jax import pretrained, runs
    from lumiere_jax.training.metrics import read_metrics

    straight = train.train(_config(data, 4), str(tmp_path / "a"))
    train.train(_config(data, 2), str(tmp_path / "b"))
    resumed = train.train(_config(data, 4), str(tmp_path / "b"))     # resumes at step 2
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rows = read_metrics(tmp_path / "b" / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(r["loss"]) and r["lr"] >= 0 for r in rows)

    config, weights = runs.load_run(str(tmp_path / "a"), "critic")   # EMA weights
    np.testing.assert_array_equal(weights["critic"]["conv_0"]["kernel"],
                                  np.asarray(straight["ema"]["critic"]["conv_0"]["kernel"]))
    entry = pretrained.write_stage(tmp_path / "folder", "critic", config, weights)
    pretrained.write_manifest(tmp_path / "folder", {"critic": entry})
    _, loaded = pretrained.load_stage(tmp_path / "folder", "critic")
    np.testing.assert_array_equal(loaded["critic"]["conv_0"]["kernel"],
                                  weights["critic"]["conv_0"]["kernel"])


@pytest.mark.parametrize("field,value,match", [
    ("data.time_reversal_pairs", False, "time_reversal_pairs"),
    ("data.batch_size", 3, "batch_size"),
    ("model.image_size", 10, "image_size"),
])
def test_critic_run_rejects_bad_configs(data, tmp_path, field, value, match):
    import train

    c = _config(data, 2)
    group, name = field.split(".")
    c[group][name] = value
    with pytest.raises(ValueError, match=match):
        train.train(c, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w" / "checkpoints")           # nothing written
