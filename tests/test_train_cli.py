"""train.py end to end in child processes: exact resume after SIGKILL (mid-training and
mid-save), a stunet run keeps frozen weights bit-identical, a conditional run fine-tunes
it, an incompatible workdir is refused, two real processes (gloo) match one; damaged
checkpoints are skipped (or stop the run), a failed save stops it, and either way the
rerun ends exactly where the uninterrupted run did.

Every child pays a full compile, so all share one persistent XLA compilation cache and
one uninterrupted run is the reference for every comparison.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from lumiere_jax.checkpoint import Checkpointer
from lumiere_jax.training.metrics import read_metrics
from lumiere_jax.training.setup import load_run_params, load_t2i_params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "tests", "training", "run_train.py")
STEPS = 6


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from lumiere_jax.data.moving_shapes import MovingShapes, MovingShapesConfig

    data = tmp_path_factory.mktemp("data")
    cfg = MovingShapesConfig(name="tiny", num_frames=8, height=8, width=8, num_train=16,
                             num_test=0)
    MovingShapes(data_dir=str(data), config=cfg).download_and_prepare()
    e = dict(os.environ, JAX_PLATFORMS="cpu",
             JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("xla_cache")),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
             PYTHONPATH=os.pathsep.join([ROOT] + [p for p in os.environ.get(
                 "PYTHONPATH", "").split(os.pathsep) if p]))
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        e.pop(var, None)
    # One CPU device per process; the suite's other XLA flags (faster compiles) stay.
    e["XLA_FLAGS"] = " ".join(f for f in e.get("XLA_FLAGS", "").split()
                              if not f.startswith("--xla_force_host_platform_device_count"))
    return dict(env=e, data=str(data / "moving_shapes" / "tiny" / "1.0.0"),
                tmp=tmp_path_factory)


def flags_for(env, workdir, config="configs/t2i.py:tiny", *extra):
    # data.num_shards=2: the global batch is the same for one process or two.
    return ["--config", config, "--workdir", str(workdir), f"--config.data.name={env['data']}",
            "--config.data.num_shards=2", "--config.train.log_every=1",
            "--config.train.checkpoint_every=2", f"--config.train.num_steps={STEPS}",
            "--config.train.keep_checkpoints=10", *extra]


def launch(env, mode, n, args):
    return subprocess.Popen([sys.executable, RUNNER, mode, str(n), *args], env=env["env"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def run(env, mode, n, args, expect_rc=0, timeout=300):
    proc = launch(env, mode, n, args)
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == expect_rc, f"rc={proc.returncode}\n{out[-5000:]}"
    return out


def losses(workdir):
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    return {r["step"]: r["loss"] for r in rows}


def restore(workdir, step):
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        state, meta = ckpt.restore(step)
    return jax.tree.map(np.asarray, state), meta


def assert_trees_equal(a, b):
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for (path, x), y in zip(la, lb):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def reference(env):
    workdir = env["tmp"].mktemp("reference")
    run(env, "none", 0, flags_for(env, workdir))
    return str(workdir)


def test_reference_run(reference):
    ls = losses(reference)
    assert sorted(ls) == list(range(1, STEPS + 1)) and all(np.isfinite(list(ls.values())))
    with Checkpointer(os.path.join(reference, "checkpoints")) as ckpt:
        assert ckpt.all_steps() == [2, 4, 6]


@pytest.mark.parametrize("mode,n", [("kill_after_step", 5), ("kill_in_save", 4)])
def test_exact_resume_after_sigkill(env, reference, mode, n):
    workdir = env["tmp"].mktemp(mode)
    out = run(env, mode, n, flags_for(env, workdir), expect_rc=-signal.SIGKILL)
    assert "KILLING" in out
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        complete = ckpt.all_steps()
    # kill_after_step 5: the save of step 4 waited for step 2's, so step 2 is complete.
    assert complete and max(complete) < STEPS
    if mode == "kill_in_save":
        assert n not in complete and max(complete) == n - 2  # never a half-written latest
    run(env, "none", 0, flags_for(env, workdir))             # resume
    assert losses(workdir) == losses(reference)              # every step, bit for bit
    state, meta = restore(workdir, STEPS)
    ref_state, ref_meta = restore(reference, STEPS)
    assert_trees_equal(state, ref_state)                     # params, EMA, Adam, rng, ...
    assert meta["data_state"] == ref_meta["data_state"]


def test_sigterm_checkpoints_at_the_next_step_and_resumes_exactly(env, reference):
    """A preemption notice during step 2 (checkpoint_every=2): the run saves step 3 (not a
    periodic checkpoint) at once, exits with 143, and the rerun reaches the reference
    run's losses and weights bit for bit."""
    workdir = env["tmp"].mktemp("sigterm")
    out = run(env, "term_after_step", 2, flags_for(env, workdir), expect_rc=143)
    assert "SENDING SIGTERM" in out and "SIGTERM: stopped after step 3" in out, out[-3000:]
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.all_steps() == [2, 3]
    assert max(losses(workdir)) == 3
    run(env, "none", 0, flags_for(env, workdir))             # resume
    assert losses(workdir) == losses(reference)
    assert_trees_equal(restore(workdir, STEPS)[0], restore(reference, STEPS)[0])


@pytest.fixture(scope="module")
def stunet_run(env, reference):
    workdir = env["tmp"].mktemp("stunet")
    run(env, "none", 0, flags_for(env, workdir, "configs/stunet.py:tiny",
                                  f"--config.train.init_from={reference}/checkpoints",
                                  "--config.train.checkpoint_every=4",
                                  "--config.sample.every=4"))
    return str(workdir)


def test_stunet_run_keeps_frozen_weights(reference, stunet_run):
    workdir = stunet_run
    t2i = load_t2i_params(os.path.join(reference, "checkpoints"), use_ema=True)
    first, _ = restore(workdir, 4)
    last, _ = restore(workdir, STEPS)
    # Every T2I weight (U-Net and text encoder) is frozen, bit-identical to the T2I EMA.
    assert_trees_equal(last["frozen"], t2i)
    assert_trees_equal(first["frozen"], t2i)
    trained = jax.tree_util.tree_leaves_with_path(last["state"]["params"])
    assert trained and all("temporal_" in jax.tree_util.keystr(p) for p, _ in trained)
    moved = [np.max(np.abs(a - b)) for a, b in zip(
        jax.tree.leaves(last["state"]["params"]), jax.tree.leaves(first["state"]["params"]))]
    assert max(moved) > 0
    gifs = sorted(os.listdir(os.path.join(workdir, "samples")))
    assert gifs == ["step_0000004.gif", "step_0000006.gif"]  # every 4 steps and at the end


def test_conditional_run_fine_tunes_the_stunet_run(env, stunet_run):
    """conditional: starts from the STUNet run's EMA weights; its spatial weights and text
    encoder stay bit-identical; the new cond_input_conv (zero at init) and the temporal
    weights train. It trains on moving noise (`diffusion.motion_noise`, each object's disc
    moving: `motion_layout='objects'`): the clips' object tracks come through the sharded
    pipeline (two shards) into the step."""
    workdir = env["tmp"].mktemp("conditional")
    run(env, "none", 0, flags_for(env, workdir, "configs/conditional.py:tiny",
                                  f"--config.train.init_from={stunet_run}/checkpoints",
                                  "--config.train.checkpoint_every=6",
                                  "--config.diffusion.motion_noise=0.5",
                                  "--config.diffusion.motion_layout=objects",
                                  "--config.sample.every=6"))
    ls = losses(workdir)
    assert sorted(ls) == list(range(1, STEPS + 1)) and all(np.isfinite(list(ls.values())))
    source = load_run_params(os.path.join(stunet_run, "checkpoints"), "stunet")
    last, meta = restore(workdir, STEPS)
    assert meta["metadata"]["stage"] == "conditional"
    assert_trees_equal(last["frozen"], {"unet": {k: v for k, v in source["unet"].items()
                                                 if not k.startswith("temporal_")},
                                        "text": source["text"]})
    trained = last["state"]["params"]["unet"]
    assert np.max(np.abs(trained["cond_input_conv"]["kernel"])) > 0
    assert set(trained) == {"cond_input_conv"} | {k for k in source["unet"]
                                                   if k.startswith("temporal_")}
    assert os.listdir(os.path.join(workdir, "samples")) == ["step_0000006.gif"]


def test_incompatible_workdir_is_refused(env, reference):
    out = run(env, "none", 0, flags_for(env, reference, "configs/t2i.py:tiny",
                                        "--config.model.channels=16"), expect_rc=1)
    line = error_line(out)  # one line, exit 1 (an IncompatibleCheckpointError is a ValueError)
    assert "fingerprint" in line and "fresh --workdir" in line, line


def test_two_processes_match_one(env, reference):
    workdir = env["tmp"].mktemp("two_proc")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = flags_for(env, workdir, "configs/t2i.py:tiny", "--config.mesh.data=2",
                     "--config.train.num_steps=4", "--config.train.checkpoint_every=4",
                     "--coordinator", f"127.0.0.1:{port}", "--num_processes", "2")
    procs = [launch(env, "none", 0, args + ["--process_id", str(i)]) for i in range(2)]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=300)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i}:\n{outs[i][-5000:]}"
    two, one = losses(workdir), losses(reference)
    assert sorted(two) == [1, 2, 3, 4]
    np.testing.assert_allclose([two[s] for s in range(1, 5)], [one[s] for s in range(1, 5)],
                               rtol=1e-5)
    state, _ = restore(workdir, 4)
    ref_state, _ = restore(reference, 4)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(state["state"]["params"]),
                            jax.tree.leaves(ref_state["state"]["params"])):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=jax.tree_util.keystr(path))


def test_loading_a_run_of_the_wrong_stage_is_refused(reference):

    with pytest.raises(ValueError, match=r"--base_ckpt=.* is a 't2i' run; expected a 'stunet'"):
        load_run_params(os.path.join(reference, "checkpoints"), "stunet", field="--base_ckpt")
    params = load_run_params(os.path.join(reference, "checkpoints"), "t2i")
    assert set(params) == {"unet", "text"}


def test_load_run_reads_the_saved_config_and_its_weights(reference, stunet_run):
    """`runs.load_run` (evaluate.py --base_run): the run's config.json and its newest
    checkpoint's EMA weights; a run of another stage is refused, naming the field."""
    from lumiere_jax.runs import load_run

    config, params = load_run(stunet_run, ("stunet", "conditional"), field="--base_run")
    assert config.stage == "stunet"
    assert_trees_equal(params, load_run_params(os.path.join(stunet_run, "checkpoints"),
                                               "stunet"))
    with pytest.raises(ValueError, match=r"--base_run=.* is a 't2i' run; expected one of"):
        load_run(reference, "stunet", field="--base_run")


def test_diverging_run_stops_with_its_last_good_checkpoint(env):
    """lr=1e30: the second update blows the weights up, the following steps are non-finite
    and skipped, and after max_nonfinite=2 in a row the run stops, saying which
    checkpoint is the last good one; that checkpoint restores."""
    workdir = env["tmp"].mktemp("diverge")
    out = run(env, "none", 0, flags_for(env, workdir, "configs/t2i.py:tiny",
                                        "--config.optim.lr=1e30",
                                        "--config.train.checkpoint_every=1",
                                        "--config.train.max_nonfinite=2"), expect_rc=1)
    assert "2 consecutive steps had a non-finite loss" in out, out[-3000:]
    rows = read_metrics(os.path.join(workdir, "metrics.jsonl"))
    skipped = [r["step"] for r in rows if not r["finite"]]
    assert skipped and skipped == list(range(skipped[0], skipped[0] + 2))
    last_good = skipped[0] - 1
    assert f"last good checkpoint (step {last_good}) is intact" in out
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.latest_step() == last_good
    state, _ = restore(workdir, last_good)
    assert int(state["state"]["nonfinite"]) == 0
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state["state"]["params"]))


# --- damaged checkpoints, failed saves ---------------------------------------------------

def copy_run(env, reference, name):
    """A copy of the reference run (checkpoints 2, 4, 6, metrics), to damage."""
    return str(shutil.copytree(reference, env["tmp"].mktemp(name) / "run"))


def flip_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def damage_arrays(workdir, step):
    """Damages every array data file of checkpoint `step` (some may be superseded
    copies that a restore never reads, so all of them)."""
    folder = os.path.join(workdir, "checkpoints", str(step), "state", "ocdbt.process_0", "d")
    for name in os.listdir(folder):
        invert_bytes(os.path.join(folder, name))


def invert_bytes(path) -> None:
    """Every byte of the file inverted: a file can hold live data next to superseded
    copies, so one flipped byte in the middle was sometimes never read (a flaky test)."""
    data = open(path, "rb").read()
    open(path, "wb").write(bytes(b ^ 0xFF for b in data))


def error_line(out):
    """The one `train.py: error:` line, which must be the last line of the output."""
    lines = [line for line in out.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("train.py: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], out[-3000:]
    return errors[0]


def test_a_bad_config_value_is_one_line_and_exit_1(env):
    workdir = env["tmp"].mktemp("bad_lr")
    line = error_line(run(env, "none", 0, flags_for(env, workdir, "configs/t2i.py:tiny",
                                                    "--config.optim.lr=-1"), expect_rc=1))
    assert line.startswith("train.py: error: optim.lr=-1"), line


def assert_ends_as_reference(workdir, reference):
    assert losses(workdir) == losses(reference)              # every step, bit for bit
    state, meta = restore(workdir, STEPS)
    ref_state, ref_meta = restore(reference, STEPS)
    assert_trees_equal(state, ref_state)
    assert meta["data_state"] == ref_meta["data_state"]


def test_damaged_checkpoints_are_moved_aside_and_the_run_ends_as_the_reference(env, reference):
    """The newest checkpoint's array data and the next one's metadata byte-flipped: the
    rerun warns about each, moves them aside, resumes from step 2 and ends bit for bit
    where the uninterrupted run did."""
    workdir = copy_run(env, reference, "damaged")
    damage_arrays(workdir, 6)
    flip_byte(os.path.join(workdir, "checkpoints", "4", "meta", "metadata"))
    out = run(env, "none", 0, flags_for(env, workdir))
    assert re.search(r"checkpoint step 6 in \S+ is unreadable \(.+\); trying step 4",
                     out), out[-3000:]
    assert re.search(r"checkpoint step 4 in \S+ is unreadable \(UnicodeDecodeError", out)
    assert "resuming from checkpoint step 2" in out
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "2", "4", "4.corrupt", "6", "6.corrupt"]
    assert_ends_as_reference(workdir, reference)


def test_no_readable_checkpoint_stops_unless_told_to_restart(env, reference):
    """Every checkpoint damaged: exit 1 with one line listing each step tried and nothing
    moved; with --config.train.on_unreadable=restart all are moved aside, the run says it
    starts fresh, and (the init being deterministic) ends as the reference."""
    workdir = copy_run(env, reference, "all_damaged")
    for step in (2, 4, 6):
        damage_arrays(workdir, step)
    line = error_line(run(env, "none", 0, flags_for(env, workdir), expect_rc=1))
    assert "no readable checkpoint in" in line and "nothing was moved" in line
    assert all(f"step {s}: " in line for s in (6, 4, 2)), line
    assert "--config.train.on_unreadable=restart" in line
    ckpts = os.path.join(workdir, "checkpoints")
    assert sorted(os.listdir(ckpts)) == ["2", "4", "6"]
    out = run(env, "none", 0, flags_for(env, workdir, "configs/t2i.py:tiny",
                                        "--config.train.on_unreadable=restart"))
    assert "TRAINING STARTS FRESH FROM STEP 0" in out and "resuming" not in out
    assert sorted(os.listdir(ckpts)) == ["2", "2.corrupt", "4", "4.corrupt", "6", "6.corrupt"]
    assert_ends_as_reference(workdir, reference)


def test_failed_save_stops_the_run_and_the_rerun_resumes(env, reference):
    """The kernel refuses checkpoint 4's writes (RLIMIT_FSIZE, EFBIG): exit 1 with one line
    naming step 4, the cause and step 2, the newest good checkpoint, which stays intact;
    the rerun resumes from it and ends as the reference."""
    workdir = env["tmp"].mktemp("save_fails")
    out = run(env, "fsize_at_save", 4, flags_for(env, workdir), expect_rc=1)
    line = error_line(out)
    assert line.startswith("train.py: error: saving checkpoint step 4 to"), line
    assert "File too large" in line and "the newest good checkpoint is step 2" in line
    with Checkpointer(os.path.join(workdir, "checkpoints")) as ckpt:
        assert ckpt.all_steps() == [2]
    out = run(env, "none", 0, flags_for(env, workdir))
    assert "resuming from checkpoint step 2" in out
    assert_ends_as_reference(workdir, reference)
