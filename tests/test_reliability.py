"""Faults a run meets outside train.py's own loop (which tests/test_train_cli.py covers):
damaged checkpoints of another run read through `load_run_params` (`init_from`,
`sample.py --base_ckpt`), and dataset builds SIGKILLed part way and rerun."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax.checkpoint import Checkpointer
from lumiere_jax.runs import load_run_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("XLA_FLAGS", None)
    return env


def flip_byte(path: str) -> None:
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def damage_arrays(directory: str, step: int) -> None:
    """Damages every array data file of checkpoint `step` (some may be superseded
    copies a restore never reads, so all of them)."""
    folder = os.path.join(directory, str(step), "state", "ocdbt.process_0", "d")
    for name in os.listdir(folder):
        invert_bytes(os.path.join(folder, name))


def invert_bytes(path) -> None:
    """Every byte of the file inverted: a file can hold live data next to superseded
    copies, so one flipped byte in the middle was sometimes never read (a flaky test)."""
    data = open(path, "rb").read()
    open(path, "wb").write(bytes(b ^ 0xFF for b in data))


# --- another run's checkpoints: read only, fall back, or one line naming the folder ------

def _weights(step: int) -> dict:
    rng = np.random.default_rng(step)
    w = lambda *s: jnp.asarray(rng.normal(size=s).astype(np.float32))  # noqa: E731
    return {"unet": {"conv": {"kernel": w(3, 3, 4, 8)}}, "text": {"embed": w(16, 8)}}


@pytest.fixture(scope="module")
def t2i_run(tmp_path_factory):
    """A t2i run's checkpoint folder as train.py lays it out (steps 1 and 2)."""
    directory = tmp_path_factory.mktemp("t2i") / "checkpoints"
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        for step in (1, 2):
            ckpt.save(step, {"state": {"params": _weights(step), "ema": _weights(10 + step)}},
                      metadata={"stage": "t2i"})
    return str(directory)


def test_init_from_skips_a_damaged_newest_checkpoint_without_touching_it(t2i_run, tmp_path,
                                                                         caplog):
    directory = str(shutil.copytree(t2i_run, tmp_path / "checkpoints"))
    damage_arrays(directory, 2)
    with caplog.at_level(logging.WARNING):
        params = load_run_params(directory, "t2i", field="config.train.init_from")
    np.testing.assert_array_equal(params["unet"]["conv"]["kernel"],
                                  np.asarray(_weights(11)["unet"]["conv"]["kernel"]))
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "checkpoint step 2 in" in warnings and "is unreadable" in warnings
    assert "using checkpoint step 1, the newest readable one" in warnings
    assert sorted(os.listdir(directory)) == ["1", "2"]  # someone else's folder: only read


def test_init_from_with_no_readable_checkpoint_is_one_line_naming_the_folder(t2i_run,
                                                                             tmp_path):
    directory = str(shutil.copytree(t2i_run, tmp_path / "checkpoints"))
    damage_arrays(directory, 2)
    flip_byte(os.path.join(directory, "1", "meta", "metadata"))
    with pytest.raises(ValueError) as info:
        load_run_params(directory, "t2i", field="config.train.init_from")
    message = str(info.value)
    assert message.startswith(f"config.train.init_from={directory!r}: no readable checkpoint")
    assert "(tried step 2: " in message and "; step 1: UnicodeDecodeError" in message
    assert "\n" not in message
    assert sorted(os.listdir(directory)) == ["1", "2"]


def test_sample_base_ckpt_with_no_readable_checkpoint_fails_with_one_line(t2i_run, tmp_path):
    directory = str(shutil.copytree(t2i_run, tmp_path / "checkpoints"))
    for step in (1, 2):
        damage_arrays(directory, step)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), "--base_ckpt",
                        directory, "--random", "--steps", "1", "--ssr_steps", "1",
                        "--cache_dir", ""], cwd=tmp_path, env=child_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"sample.py: error: --base_ckpt={directory!r}: no readable "
                           "checkpoint"), r.stderr[-3000:]
    assert "Traceback" not in r.stderr


_RESTORE_DAMAGED_REPEATEDLY = textwrap.dedent("""
    import gc, os, sys
    import jax, jax.numpy as jnp, numpy as np
    from lumiere_jax.checkpoint import Checkpointer, CheckpointReadError

    directory = sys.argv[1]
    rng = np.random.default_rng(0)  # random values: constant ones are inlined, not in d/
    state = {f"w{i}": jnp.asarray(rng.normal(size=(64, 64)), jnp.float32) for i in range(40)}
    with Checkpointer(directory, async_save=False) as ckpt:
        ckpt.save(1, state, force=True)
    folder = os.path.join(directory, "1", "state", "ocdbt.process_0", "d")
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        open(path, "wb").write(bytes(b ^ 0xFF for b in data))
    failures = 0
    target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in state.items()}
    for partial in (False, True):
        for _ in range(3):  # 40 reads each: some still in flight when the first one fails
            ckpt = Checkpointer(directory, read_only=True)
            try:
                ckpt.restore(1, target if partial else None, partial=partial)
            except CheckpointReadError:
                failures += 1
            ckpt.close()
    gc.collect()  # abandoned read coroutines report when collected

    class Unrelated:
        def __del__(self):
            raise RuntimeError("an unrelated report stays visible")

    Unrelated()
    print("failures", failures, flush=True)
""")


def test_abandoned_reads_of_a_damaged_checkpoint_print_nothing_else_still_does(tmp_path):
    """Without the filter, 6 restores of 40 damaged arrays printed 'Event loop is closed'
    tracebacks (seen: 19 of them) after the errors, and the read coroutines left behind
    printed 'Exception ignored in: <coroutine ...>' tracebacks when collected (full and
    partial restores alike)."""
    r = subprocess.run([sys.executable, "-c", _RESTORE_DAMAGED_REPEATEDLY, str(tmp_path / "c")],
                       env=child_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "failures 6" in r.stdout
    assert "Event loop is closed" not in r.stderr, r.stderr[-3000:]
    assert r.stderr.count("Exception ignored") == 1, r.stderr[-3000:]  # the unrelated one
    assert "an unrelated report stays visible" in r.stderr


def test_on_unreadable_accepts_stop_or_restart_only():
    from lumiere_jax.training import setup
    from configs.common import tiny_config

    config = tiny_config("t2i")
    assert config.train.on_unreadable == "stop"
    assert "train.on_unreadable" in setup.FINGERPRINT_EXCLUDE  # a rerun may change it
    config.train.on_unreadable = "restart"
    setup.check_config(config)
    config.train.on_unreadable = "ignore"
    with pytest.raises(ValueError, match=r"config.train.on_unreadable='ignore'; valid"):
        setup.check_config(config)


# --- dataset builds SIGKILLed part way, then rerun -----------------------------------------

# Builds one dataset and SIGKILLs itself while TFDS writes the third record of the first
# shard file (the writer's real code runs; only the kill is added to its input).
_BUILD_AND_DIE = textwrap.dedent("""
    import os, signal, sys
    from tensorflow_datasets.core import file_adapters
    sys.path.insert(0, os.path.join(os.environ["ROOT"], "tests"))
    from test_reliability import make_builder

    adapter = file_adapters.ArrayRecordFileAdapter
    original = adapter.write_examples.__func__

    def write_examples(cls, path, iterator):
        def dying():
            for i, example in enumerate(iterator):
                if i == 2:
                    print("KILLING while writing", path, flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
                yield example
        return original(cls, path, dying())

    adapter.write_examples = classmethod(write_examples)
    make_builder(*sys.argv[1:]).download_and_prepare()
    print("BUILT WITHOUT BEING KILLED", flush=True)
""")


def make_builder(kind: str, data_dir: str, video_dir: str = ""):
    """A tiny moving_shapes (two splits) or video_folder build."""
    if kind == "moving_shapes":
        from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig

        config = MovingShapesConfig(name="tiny", num_frames=4, height=8, width=8, num_train=12,
                                    num_test=4)
        return MovingShapes(data_dir=data_dir, config=config)
    from lumiere_jax.data.video_folder import VideoFolder, VideoFolderConfig

    config = VideoFolderConfig(name="tiny", num_frames=4, fps=8, height=16, width=16)
    return VideoFolder(data_dir=data_dir, video_dir=video_dir, config=config)


def write_videos(folder) -> str:
    """Two short captioned clips (4 and 3 clips of 4 frames at 8 fps)."""
    from lumiere_jax.data.video_io import write_video

    os.makedirs(folder)
    rng = np.random.default_rng(0)
    for name, frames in (("walk", 16), ("spin", 12)):
        base = rng.integers(0, 256, (1, 16, 16, 3))
        clip = (base + 9 * np.arange(frames)[:, None, None, None]) % 256
        write_video(os.path.join(folder, f"{name}.mp4"), clip.astype(np.uint8), fps=8)
        open(os.path.join(folder, f"{name}.txt"), "w").write(f"a {name}\n")
    return str(folder)


def records(builder) -> dict:
    return {split: [builder.as_data_source(split)[i] for i in range(info.num_examples)]
            for split, info in builder.info.splits.items()}


def assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


@pytest.mark.parametrize("kind", ["moving_shapes", "video_folder"])
def test_build_sigkilled_while_writing_then_rerun_equals_a_clean_build(kind, tmp_path):
    video_dir = write_videos(tmp_path / "videos") if kind == "video_folder" else ""
    killed, clean = str(tmp_path / "killed"), str(tmp_path / "clean")
    proc = subprocess.run([sys.executable, "-c", _BUILD_AND_DIE, kind, killed, video_dir],
                          cwd=ROOT, env=dict(child_env(), ROOT=ROOT), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr[-3000:]
    assert "KILLING while writing" in proc.stdout
    version_dir = make_builder(kind, killed, video_dir).data_dir
    parent = os.path.dirname(version_dir)
    assert not os.path.exists(version_dir), os.listdir(parent)  # nothing looks like a build
    # TFDS had started writing: a half-written train shard in its temporary folder.
    temporary = [n for n in os.listdir(parent) if n.startswith("incomplete.")]
    assert len(temporary) == 1, os.listdir(parent)
    assert any("train.array_record" in f for f in os.listdir(os.path.join(parent, temporary[0])))
    rerun = make_builder(kind, killed, video_dir)
    assert not rerun.is_prepared()
    rerun.download_and_prepare()
    reference = make_builder(kind, clean, video_dir)
    reference.download_and_prepare()
    got, expected = records(rerun), records(reference)
    assert got.keys() == expected.keys() and all(expected.values())
    for split in expected:
        assert len(got[split]) == len(expected[split])
        for i, (a, b) in enumerate(zip(got[split], expected[split])):
            assert_same(a, b, f"{split}[{i}]")
