"""Checkpointer: any-mesh restore, keep-N, metadata, fingerprint refusal, SIGKILL mid-save."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P, SingleDeviceSharding

from lumiere_jax.checkpoint import (CheckpointReadError, Checkpointer, CheckpointSaveError,
                                    IncompatibleCheckpointError, UnreadableCheckpointError,
                                    config_fingerprint)
from lumiere_jax.parallel import make_mesh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _numpy_state(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    params = {"dense": {"kernel": rng.normal(size=(16, 32)).astype(np.float32),
                        "bias": rng.normal(size=(32,)).astype(np.float32)},
              "norm": {"scale": rng.normal(size=(6,)).astype(np.float32)}}
    return params


def _place(params: dict, mesh) -> dict:
    specs = {"dense": {"kernel": P("fsdp", "tensor"), "bias": P("tensor")}, "norm": {"scale": P()}}
    return jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), params, specs)


def _train_state(params: dict) -> dict:
    """A train state like the loop's: params, ema, opt_state (AdamW), step, typed rng."""
    tx = optax.adamw(1e-3)
    opt_state = tx.init(params)
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    _, opt_state = tx.update(grads, opt_state, params)  # non-trivial mu / nu / count
    return {"params": params, "ema": jax.tree.map(lambda p: 0.9 * p, params),
            "opt_state": opt_state, "step": jnp.int32(7), "rng": jax.random.key(3)}


def _assert_state_equal(restored, expected):
    r_rng, e_rng = restored["rng"], expected["rng"]
    assert jnp.issubdtype(r_rng.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(r_rng), jax.random.key_data(e_rng))
    strip = lambda s: {k: v for k, v in s.items() if k != "rng"}  # noqa: E731
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 strip(restored), strip(expected))


def _target(state, sharding_fn):
    def one(x):
        sharding = sharding_fn(x)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)
    return jax.tree.map(one, state)


@pytest.fixture(scope="module")
def saved_on_8(tmp_path_factory):
    """Step 7 of a train state sharded over an 8-device (fsdp 4, tensor 2) mesh."""
    mesh = make_mesh({"data": 1, "fsdp": 4, "tensor": 2})
    state = _train_state(_place(_numpy_state(), mesh))
    assert len(state["params"]["dense"]["kernel"].sharding.device_set) == 8
    directory = str(tmp_path_factory.mktemp("ckpt8"))
    with Checkpointer(directory, config_fingerprint="fp-A") as ckpt:
        assert ckpt.save(7, state, data_state={"epoch": 1, "index": 42},
                         metadata={"note": "eight devices"})
    expected = jax.device_get({k: v for k, v in state.items() if k != "rng"})
    return directory, expected | {"rng": state["rng"]}


def test_restore_onto_one_device(saved_on_8):
    directory, expected = saved_on_8
    one = SingleDeviceSharding(jax.devices()[0])
    with Checkpointer(directory, config_fingerprint="fp-A") as ckpt:
        assert ckpt.latest_step() == 7
        state, meta = ckpt.restore(target=_target(expected, lambda x: one))
    _assert_state_equal(state, expected)
    assert state["params"]["dense"]["kernel"].sharding == one
    assert meta == {"step": 7, "config_fingerprint": "fp-A",
                    "data_state": {"epoch": 1, "index": 42}, "metadata": {"note": "eight devices"}}


def test_restore_onto_a_different_mesh(saved_on_8):
    directory, expected = saved_on_8
    mesh = make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
    # Different layout than written: kernels now (tensor, fsdp), vectors over data.
    def sharding(x):
        if x.ndim == 2:
            return NamedSharding(mesh, P("tensor", "fsdp"))
        if x.ndim == 1 and x.shape[0] % 2 == 0:
            return NamedSharding(mesh, P("data"))
        return NamedSharding(mesh, P())
    with Checkpointer(directory) as ckpt:
        state, _ = ckpt.restore(7, target=_target(expected, sharding))
    _assert_state_equal(state, expected)
    kernel = state["params"]["dense"]["kernel"]
    assert kernel.sharding.spec == P("tensor", "fsdp")
    assert {s.data.shape for s in kernel.addressable_shards} == {(8, 16)}


def test_restore_without_target_is_replicated(saved_on_8):
    directory, expected = saved_on_8
    with Checkpointer(directory) as ckpt:
        state, _ = ckpt.restore()
    np.testing.assert_array_equal(np.asarray(state["params"]["dense"]["kernel"]),
                                  expected["params"]["dense"]["kernel"])
    np.testing.assert_array_equal(np.asarray(state["rng"]), jax.random.key_data(expected["rng"]))
    assert state["params"]["dense"]["kernel"].sharding.is_fully_replicated


def test_incompatible_fingerprint_is_refused(saved_on_8):
    directory, _ = saved_on_8
    with pytest.raises(IncompatibleCheckpointError, match="fresh --workdir"):
        Checkpointer(directory, config_fingerprint="fp-B")
    assert issubclass(IncompatibleCheckpointError, ValueError)
    Checkpointer(directory, config_fingerprint=None).close()  # no fingerprint: no check


def test_keep_n_and_latest_step(tmp_path):
    state = {"w": jnp.arange(4.0), "step": jnp.int32(0)}
    with Checkpointer(tmp_path / "run", max_to_keep=2) as ckpt:
        assert ckpt.latest_step() is None
        with pytest.raises(FileNotFoundError):
            ckpt.restore()
        for step in range(1, 5):
            ckpt.save(step, {"w": state["w"] + step, "step": jnp.int32(step)})
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [3, 4]
        assert ckpt.latest_step() == 4
        restored, meta = ckpt.restore(3)
        np.testing.assert_array_equal(np.asarray(restored["w"]), np.arange(4.0) + 3)
        assert meta["step"] == 3
        with pytest.raises(ValueError, match="available steps: \\[3, 4\\]"):
            ckpt.restore(1)
        with pytest.raises(ValueError, match="JSON"):
            ckpt.save(5, state, data_state={"bad": object()})


def test_config_fingerprint():
    a = {"model": {"channels": 32, "heads": 4}, "lr": 1e-4, "workdir": "/a"}
    b = {"lr": 1e-4, "workdir": "/a", "model": {"heads": 4, "channels": 32}}
    assert config_fingerprint(a) == config_fingerprint(b)
    assert config_fingerprint(a) == config_fingerprint(ml_collections.ConfigDict(a))
    assert config_fingerprint(a) != config_fingerprint({**a, "lr": 2e-4})
    moved = {**a, "workdir": "/b"}
    assert config_fingerprint(a) != config_fingerprint(moved)
    assert (config_fingerprint(a, exclude=["workdir"])
            == config_fingerprint(moved, exclude=["workdir"]))
    wider = {**a, "model": {"channels": 64, "heads": 4}}
    assert (config_fingerprint(a, exclude=["model.heads"])
            != config_fingerprint(wider, exclude=["model.heads"]))


# A child process that saves step 1, then starts the async save of step 2 and is killed
# while that save is in flight (held just before orbax commits it by renaming).
_CHILD = textwrap.dedent("""
    import asyncio, sys
    import jax.numpy as jnp
    from orbax.checkpoint._src.path import atomicity
    from lumiere_jax.checkpoint import Checkpointer

    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def held_finalize(self):
        if self.get_final().name == "2":
            print("FINALIZING 2", flush=True)
            await asyncio.sleep(600)
        return await original(self)

    atomicity.AtomicRenameTemporaryPath.finalize = held_finalize
    ckpt = Checkpointer(sys.argv[1], config_fingerprint="fp", async_save=True)
    ckpt.save(1, {"w": jnp.full((64, 64), 1.0), "step": jnp.int32(1)}, data_state={"i": 1})
    ckpt.wait_until_finished()
    print("SAVED 1", flush=True)
    ckpt.save(2, {"w": jnp.full((64, 64), 2.0), "step": jnp.int32(2)}, data_state={"i": 2})
    print("SAVE 2 RETURNED", flush=True)
    import time; time.sleep(600)
""")


def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path):
    directory = str(tmp_path / "run")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.pop("XLA_FLAGS", None)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, directory], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(180, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("FINALIZING 2"):
                # Step 2's files are written but not committed: kill now.
                in_flight = [n for n in os.listdir(directory) if n.startswith("2.")]
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
        proc.wait(timeout=60)
    log = "".join(lines)
    assert "SAVED 1" in log and "FINALIZING 2" in log, log[-3000:]
    assert proc.returncode == -signal.SIGKILL
    assert in_flight, f"no temporary step-2 directory while saving: {os.listdir(directory)}"

    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        assert ckpt.latest_step() == 1
        assert ckpt.all_steps() == [1]
        state, meta = ckpt.restore(target={
            "w": jax.ShapeDtypeStruct((64, 64), jnp.float32,
                                      sharding=SingleDeviceSharding(jax.devices()[0])),
            "step": jax.ShapeDtypeStruct((), jnp.int32,
                                         sharding=SingleDeviceSharding(jax.devices()[0]))})
        np.testing.assert_array_equal(np.asarray(state["w"]), np.ones((64, 64), np.float32))
        assert int(state["step"]) == 1 and meta["data_state"] == {"i": 1}
        # The resumed run can save step 2 again over the debris of the killed save.
        ckpt.save(2, {"w": jnp.full((64, 64), 2.0), "step": jnp.int32(2)})
        ckpt.wait_until_finished()
        assert ckpt.latest_step() == 2
        state, _ = ckpt.restore(2, target={"w": jax.ShapeDtypeStruct((64, 64), jnp.float32),
                                           "step": jax.ShapeDtypeStruct((), jnp.int32)})
        np.testing.assert_array_equal(np.asarray(state["w"]), np.full((64, 64), 2.0, np.float32))


# --- damaged checkpoints: detected, skipped, moved aside; failed saves name their step ---

def _small_state(step: int) -> dict:
    rng = np.random.default_rng(step)
    return {"w": jnp.asarray(rng.normal(size=(64, 64)).astype(np.float32)),
            # incompressible: zstd stores it verbatim, so a test can find and flip it
            "bits": jnp.asarray(rng.integers(0, 2**32, size=(32, 32), dtype=np.uint32)),
            "opt": (jnp.asarray(rng.normal(size=(8,)).astype(np.float32)),),
            "step": jnp.int32(step), "rng": jax.random.key(step)}


def _small_target() -> dict:
    return jax.eval_shape(lambda: _small_state(0))


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """A pristine folder with checkpoints 1 and 2 (copied by each test that damages it)."""
    directory = tmp_path_factory.mktemp("two_steps") / "run"
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        for step in (1, 2):
            ckpt.save(step, _small_state(step), data_state={"index": 10 * step})
    return directory


def _copy(directory, tmp_path):
    import shutil
    return str(shutil.copytree(directory, tmp_path / "run"))


def _data_files(step_dir: str) -> list[str]:
    """The files under the step's ocdbt data folder (some may be superseded copies that
    a restore never reads, so damage meant to be read goes into all of them)."""
    folder = os.path.join(step_dir, "state", "ocdbt.process_0", "d")
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))]


def flip_byte(path: str, at: float = 0.5) -> None:
    data = bytearray(open(path, "rb").read())
    data[int(len(data) * at)] ^= 0xFF
    open(path, "wb").write(bytes(data))


def flip_stored_value(step_dir: str, value: np.ndarray) -> None:
    """Flips a byte inside the stored bytes of `value` (found by search: zstd keeps
    incompressible data verbatim), so the restore decodes it without error to other
    numbers."""
    raw = value.tobytes()
    for path in _data_files(step_dir):
        data = bytearray(open(path, "rb").read())
        at = data.find(raw)
        if at >= 0:
            data[at + len(raw) // 2] ^= 0xFF
            open(path, "wb").write(bytes(data))
            return
    raise AssertionError(f"the raw bytes of the array are in no data file of {step_dir}")


def _rewrite_json(path: str, edit) -> None:
    import json
    value = json.load(open(path))
    edit(value)
    json.dump(value, open(path, "w"))


# Each: (what is damaged, how) -> a fragment of the reason the restore gives.
DAMAGE = {
    # The array data: orbax itself reads a flipped byte back as different numbers without
    # any error; the checksum written with it catches it.
    "array data byte flip": (lambda d: flip_stored_value(d, np.asarray(_small_state(2)["bits"])),
                             "array 'bits' does not match the checksum"),
    "array data truncated": (lambda d: [open(p, "r+b").truncate(os.path.getsize(p) // 2)
                                        for p in _data_files(d)], "OUT_OF_RANGE|DATA_LOSS"),
    "array data missing": (lambda d: [os.remove(p) for p in _data_files(d)],
                           "NOT_FOUND|FAILED_PRECONDITION"),
    "orbax tree metadata byte flip": (lambda d: flip_byte(f"{d}/state/_METADATA"),
                                      "UnicodeDecodeError"),
    "orbax array index byte flip": (lambda d: flip_byte(f"{d}/state/manifest.ocdbt"),
                                    "DATA_LOSS"),
    "meta JSON byte flip": (lambda d: flip_byte(f"{d}/meta/metadata"), "UnicodeDecodeError"),
    "meta JSON missing": (lambda d: os.remove(f"{d}/meta/metadata"), "FileNotFoundError"),
    # Valid JSON, one value changed (the data position): only the meta SHA-256 sees it.
    "meta value altered": (lambda d: _rewrite_json(
        f"{d}/meta/metadata", lambda m: m["data_state"].update(index=21)), "SHA-256"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_newest_is_moved_aside_and_the_one_before_restored(two_steps, tmp_path,
                                                                   damage, caplog):
    directory = _copy(two_steps, tmp_path)
    apply, reason = DAMAGE[damage]
    apply(os.path.join(directory, "2"))
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        with pytest.raises(CheckpointReadError, match=f"step 2 .*({reason})"):
            ckpt.restore(2, target=_small_target())
        state, meta = ckpt.restore_newest_readable(target=_small_target())
        assert meta["step"] == 1 and meta["data_state"] == {"index": 10}
        np.testing.assert_array_equal(np.asarray(state["w"]), np.asarray(_small_state(1)["w"]))
        assert ckpt.all_steps() == [1]
    assert sorted(os.listdir(directory)) == ["1", "2.corrupt"]  # renamed, not deleted
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(re.search(f"step 2 .* is unreadable .*({reason})", w) for w in warnings), warnings
    assert any("moved unreadable checkpoint step 2 aside" in w for w in warnings), warnings


def test_checkpoints_written_before_checksums_still_restore(two_steps, tmp_path):
    """Runs checkpointed by an older version (no checksums, no meta SHA-256) resume."""
    import json
    directory = _copy(two_steps, tmp_path)
    path = os.path.join(directory, "2", "meta", "metadata")
    meta = json.load(open(path))
    json.dump({k: meta[k] for k in ("step", "config_fingerprint", "data_state", "metadata")},
              open(path, "w"))
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        state, meta = ckpt.restore_newest_readable(target=_small_target())
    assert meta["step"] == 2 and int(state["step"]) == 2
    assert sorted(os.listdir(directory)) == ["1", "2"]


def test_moved_aside_folders_are_invisible_to_orbax(two_steps, tmp_path):
    """`2.corrupt` is no step to orbax: not listed, not cleaned up as a half-written save,
    not garbage-collected by keep-N, and step 2 can be saved again next to it."""
    directory = _copy(two_steps, tmp_path)
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        assert ckpt.move_aside(2).endswith("/2.corrupt")
        assert ckpt.all_steps() == [1]
        ckpt.save(2, _small_state(2))
    with Checkpointer(directory, config_fingerprint="fp", max_to_keep=1) as ckpt:
        assert ckpt.all_steps() == [1, 2]
        assert ckpt.move_aside(2).endswith("/2.corrupt.1")  # a second damaged step 2
        for step in (2, 3, 4):
            ckpt.save(step, _small_state(step))
        ckpt.wait_until_finished()
        assert ckpt.all_steps() == [4]
    assert sorted(os.listdir(directory)) == ["2.corrupt", "2.corrupt.1", "4"]
    assert sorted(os.listdir(os.path.join(directory, "2.corrupt"))) == sorted(
        os.listdir(os.path.join(two_steps, "2")))


def test_every_checkpoint_damaged_lists_them_and_moves_nothing(two_steps, tmp_path):
    directory = _copy(two_steps, tmp_path)
    flip_byte(os.path.join(directory, "2", "meta", "metadata"))
    flip_stored_value(os.path.join(directory, "1"), np.asarray(_small_state(1)["bits"]))
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:  # meta 2 unreadable: ok
        with pytest.raises(UnreadableCheckpointError) as info:
            ckpt.restore_newest_readable(target=_small_target())
    assert [s for s, _ in info.value.attempts] == [2, 1]
    message = str(info.value)
    assert "\n" not in message and "step 2: UnicodeDecodeError" in message
    assert "step 1: ValueError: array 'bits' does not match the checksum" in message
    assert sorted(os.listdir(directory)) == ["1", "2"]  # nothing moved, nothing deleted


def test_read_only_reads_without_touching_the_folder(two_steps, tmp_path):
    directory = _copy(two_steps, tmp_path)
    os.makedirs(os.path.join(directory, "3.orbax-checkpoint-tmp-123"))  # a save in flight
    flip_byte(os.path.join(directory, "2", "meta", "metadata"))
    with Checkpointer(directory, read_only=True) as ckpt:
        _, meta = ckpt.restore_newest_readable()
        assert meta["step"] == 1
        with pytest.raises(ValueError, match="read-only"):
            ckpt.move_aside(2)
    assert sorted(os.listdir(directory)) == ["1", "2", "3.orbax-checkpoint-tmp-123"]
    with Checkpointer(tmp_path / "missing", read_only=True) as ckpt:
        assert ckpt.latest_step() is None
    assert not os.path.exists(tmp_path / "missing")


def test_failed_async_save_names_its_step_and_keeps_the_earlier_ones(tmp_path, monkeypatch):
    """An OSError while step 2 is committed (injected where orbax renames the finished
    save into place) surfaces at the next save as `CheckpointSaveError` naming step 2 and
    the cause; step 1 stays complete even with max_to_keep=1; close() does not raise it
    twice."""
    import errno
    from orbax.checkpoint._src.path import atomicity

    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self, *args, **kwargs):
        if self.get_final().name == "2":
            raise OSError(errno.ENOSPC, "No space left on device")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)
    ckpt = Checkpointer(tmp_path / "run", max_to_keep=1)
    ckpt.save(1, _small_state(1))
    assert ckpt.save(2, _small_state(2))  # returns: the failure is in the background
    with pytest.raises(CheckpointSaveError) as info:
        ckpt.save(3, _small_state(3))
    message = str(info.value)
    assert info.value.step == 2 and "\n" not in message
    assert "saving checkpoint step 2" in message and "No space left on device" in message
    assert "newest good checkpoint is step 1" in message
    ckpt.close()
    assert ckpt.all_steps() == [1]
    with Checkpointer(tmp_path / "run") as again:
        state, _ = again.restore_newest_readable(target=_small_target())
        assert int(state["step"]) == 1 and again.all_steps() == [1]
