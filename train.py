"""Train a Lumiere stage (t2i, stunet, ssr, conditional, critic) from a config file.

    python train.py --config configs/t2i.py --workdir runs/t2i [--config.optim.lr=3e-4]
    python train.py --config configs/stunet.py --workdir runs/stunet \
        --config.train.init_from=runs/t2i/checkpoints
    python train.py --config configs/conditional.py --workdir runs/conditional \
        --config.train.init_from=runs/stunet/checkpoints
    python train.py --config configs/demo_critic.py --workdir runs/critic  # guidance critic

Multi-host: pass --coordinator host:port --num_processes N --process_id i (or set
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID); every process runs this
same script and feeds its own shard of the batch. SIGTERM (preemption) saves a
checkpoint at the next step and exits with status 143; rerunning resumes exactly.
Resuming skips damaged checkpoints (moved aside to checkpoints/<step>.corrupt) and starts
from the newest readable one; if none is readable it stops (exit 1) unless
--config.train.on_unreadable=restart. A failed save stops the run with exit 1 and a
one-line message naming the step; the rerun resumes from the newest good checkpoint.
Reads top to bottom: config -> distributed init -> mesh -> the run (`build_run`: model,
optimizer, shardings, jitted step) -> state (restored or fresh) -> data -> compiled step
-> loop (log, checkpoint, sample).
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np
from absl import flags
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P
from ml_collections import config_flags

from lumiere_jax import cli
from lumiere_jax.checkpoint import (Checkpointer, CheckpointSaveError,
                                    UnreadableCheckpointError, config_fingerprint)
from lumiere_jax.data import prepare_moving_shapes
from lumiere_jax.parallel import initialize_distributed, make_mesh, shard_batch
from lumiere_jax.parallel.mesh import mesh_rules
from lumiere_jax.training import MetricWriter, make_sample_fn, merge_params
from lumiere_jax.training import setup
from lumiere_jax.training.run import build_run
from lumiere_jax.training.preemption import EXIT_CODE as PREEMPTED_EXIT_CODE, PreemptionWatch

config_flags.DEFINE_config_file("config", None, "configs/NAME.py", lock_config=True)
flags.DEFINE_string("workdir", None, "run folder: checkpoints/, metrics.jsonl, samples/")
flags.DEFINE_string("coordinator", None, "multi-host: host:port of process 0")
flags.DEFINE_integer("num_processes", None, "multi-host: number of processes")
flags.DEFINE_integer("process_id", None, "multi-host: this process's index")


def train(config, workdir: str) -> dict:
    """Runs (or resumes) the run in `workdir`; returns the final state (host-side use)."""
    if config.stage == "critic":
        return train_critic(config, workdir)
    # --- config, mesh ------------------------------------------------------------------
    setup.check_config(config)
    lead = jax.process_index() == 0
    mesh = make_mesh(setup.mesh_shape(config))
    replicated = NamedSharding(mesh, P())
    # Refuses a workdir holding checkpoints of another config before anything compiles.
    ckpt = open_workdir(config, workdir, lead)

    # --- the run: model, encoder, optimizer, shardings, jitted step (abstract) ----------
    run = build_run(config, mesh)

    # --- train state: restored from the newest readable checkpoint, or fresh (born
    # sharded; stunet inflates the T2I run) ----------------------------------------------
    tree = lambda s, f: {"state": s, "frozen": f} if f else {"state": s}
    restored = restore_newest_readable(ckpt, tree(run.state, run.frozen),
                                       config.train.get("on_unreadable", "stop"), lead)
    data_state, start = None, 0
    if restored is None:
        state, frozen = run.fresh_state()
    else:
        restored, meta = restored
        state, frozen = restored["state"], restored.get("frozen", run.frozen)
        start, data_state = int(meta["step"]), meta["data_state"]
        if lead:
            print(f"resuming from checkpoint step {start} in {ckpt.directory}", flush=True)

    # --- data: this process's shard, resumed at the checkpoint's position ---------------
    if lead:  # moving_shapes is procedural: a missing build is made here, once
        prepare_moving_shapes(config.data.name, config.data.data_dir or None)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("dataset ready")
    it = setup.train_batches(config, run.tokenizer)
    if data_state is not None:
        it.set_state(data_state)
    tok, null_ids, null_mask = run.tokenizer, run.null_ids, run.null_mask

    # --- the jitted step (compiled once, FLOPs from its cost analysis) ------------------
    compiled = run.compile()
    flops = float((compiled.cost_analysis() or {}).get("flops", 0.0))
    sample_fn = None
    if config.sample.every:
        sample_fn = jax.jit(make_sample_fn(run.model, run.encoder, run.step_config,
                                           num_steps=config.sample.num_steps,
                                           guidance=config.sample.guidance,
                                           sampler=config.sample.sampler),
                            out_shardings=replicated, compiler_options=run.xla_options)

    # --- loop: step, log, checkpoint, sample -------------------------------------------
    writer = MetricWriter(workdir, enabled=lead, resume_step=start,
                          tensorboard=config.tensorboard, total_steps=config.train.num_steps,
                          progress=config.train.progress and lead)
    pending, t_last, last_saved = [], time.perf_counter(), ckpt.latest_step()
    # SIGTERM (preemption): checkpoint at the next step boundary, exit with 143.
    # finally: a stop (preemption, non-finite steps, Ctrl-C, an error) still finishes the
    # async save in flight, so the checkpoint the message names is on disk.
    preempted = False
    try:
        with mesh_rules(mesh, run.rules), PreemptionWatch() as watch:
            for step in range(start, config.train.num_steps):
                host = next(it)
                state, metrics = compiled(state, frozen, shard_batch(host, mesh))
                pending.append((step + 1, metrics))
                done = step + 1 == config.train.num_steps
                save = done or (step + 1) % config.train.checkpoint_every == 0
                log = save or (step + 1) % config.train.log_every == 0
                preempted = watch.requested(sync=log)
                save = save or preempted
                if save or log:
                    setup.write_rows(writer, pending, t_last, config, last_saved, flops)
                    pending, t_last = [], time.perf_counter()
                if save and int(jax.device_get(state["nonfinite"])) == 0:
                    ckpt.save(step + 1, tree(state, frozen), data_state=it.get_state(),
                              metadata={"stage": config.stage})
                    last_saved = step + 1
                if preempted:
                    break
                if sample_fn is not None and ((step + 1) % config.sample.every == 0 or done):
                    write_samples(config, workdir, sample_fn, state, frozen, host, tok,
                                  null_ids, null_mask, step + 1, mesh, lead)
    finally:
        try:
            ckpt.close()  # CheckpointSaveError if the last save failed
        finally:
            writer.close()
    if preempted:
        print(f"SIGTERM: stopped after step {step + 1} (checkpoint {last_saved} is the latest); "
              "rerun the same command to resume.", flush=True)
        raise SystemExit(PREEMPTED_EXIT_CODE)
    return state


def train_critic(config, workdir: str) -> dict:
    """The guidance critic's run (`training.critic`): one process, the same checkpoints,
    exact resume, metrics and progress bar as the U-Net stages."""
    from lumiere_jax import runs
    from lumiere_jax.models.critic import VideoTextCritic
    from lumiere_jax.training.critic import (check_critic_config, init_critic_state,
                                             make_critic_step)
    from lumiere_jax.training.optim import make_optimizer

    check_critic_config(config)
    if jax.process_count() > 1:
        raise ValueError("config.stage='critic' trains in one process (it is small); run it "
                         "without --num_processes")
    ckpt = open_workdir(config, workdir, lead=True)
    tok = runs.tokenizer(config)
    critic = VideoTextCritic(runs.critic_config(config))
    tx, lr_schedule = make_optimizer(config.optim)
    state = init_critic_state(critic, tx, config)
    # Saved as {'state': ...} like the U-Net stages, so runs.load_run / export_pretrained.py
    # read its EMA weights the same way.
    restored = restore_newest_readable(ckpt, {"state": state},
                                       config.train.get("on_unreadable", "stop"), True)
    start, data_state = 0, None
    if restored is not None:
        tree, meta = restored
        state, start, data_state = tree["state"], int(meta["step"]), meta["data_state"]
        print(f"resuming from checkpoint step {start} in {ckpt.directory}", flush=True)
    prepare_moving_shapes(config.data.name, config.data.data_dir or None)
    it = setup.train_batches(config, tok)
    if data_state is not None:
        it.set_state(data_state)
    step_fn = jax.jit(make_critic_step(critic, tx, runs.noise_schedule(config), config,
                                       lr_schedule), donate_argnums=(0,),
                      compiler_options=setup.compiler_options(config))
    writer = MetricWriter(workdir, resume_step=start, tensorboard=config.tensorboard,
                          total_steps=config.train.num_steps, progress=config.train.progress)
    t_last, pending = time.perf_counter(), []
    try:
        for step in range(start, config.train.num_steps):
            state, metrics = step_fn(state, next(it))
            pending.append((step + 1, metrics))
            done = step + 1 == config.train.num_steps
            save = done or (step + 1) % config.train.checkpoint_every == 0
            if save or (step + 1) % config.train.log_every == 0:
                setup.write_rows(writer, pending, t_last, config, ckpt.latest_step())
                pending, t_last = [], time.perf_counter()
            if save:
                ckpt.save(step + 1, {"state": state}, data_state=it.get_state(),
                          metadata={"stage": "critic"})
    finally:
        try:
            ckpt.close()
        finally:
            writer.close()
    return state


def open_workdir(config, workdir: str, lead: bool) -> Checkpointer:
    """The run's Checkpointer (refusing a workdir that holds checkpoints of another config,
    before anything compiles) and, from the lead process, `<workdir>/config.json`: the
    exact config of this run (overrides included), e.g. for export_pretrained.py."""
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"),
                        config_fingerprint=config_fingerprint(config, setup.FINGERPRINT_EXCLUDE),
                        max_to_keep=config.train.keep_checkpoints)
    if lead:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json(indent=2, sort_keys=True))
    return ckpt


def restore_newest_readable(ckpt: Checkpointer, target, on_unreadable: str, lead: bool):
    """(state tree, meta) of the newest readable checkpoint in `ckpt`, or None: start fresh.

    Unreadable newer checkpoints are moved aside with a warning (`Checkpointer.
    restore_newest_readable`). If none is readable: `on_unreadable='stop'` raises
    `UnreadableCheckpointError` (nothing moved: rerunning does the same, never a silent
    restart); 'restart' moves every one aside and says loudly that training starts fresh.
    """
    if ckpt.latest_step() is None:
        return None
    try:
        return ckpt.restore_newest_readable(target)
    except UnreadableCheckpointError as e:
        if on_unreadable != "restart":
            raise
        moved = [ckpt.move_aside(step, reason) for step, reason in e.attempts]
        if lead:
            print(f"WARNING: {e}. config.train.on_unreadable='restart': moved them aside to "
                  f"{', '.join(moved)}; TRAINING STARTS FRESH FROM STEP 0.", flush=True)
        return None


def write_samples(config, workdir, sample_fn, state, frozen, host, tok, null_ids, null_mask,
                  step, mesh, lead) -> None:
    """EMA samples for `config.sample.prompts` -> `<workdir>/samples/step_<step>.gif`."""
    from lumiere_jax.data.video_io import write_video

    prompts = list(config.sample.prompts)
    ids, mask = tok.encode(prompts)
    mcfg, n = config.model, len(prompts)
    lead_shape = (n,) if config.stage == "t2i" else (n, mcfg.num_frames)
    key = jax.random.key(config.seed + 2, impl="threefry2x32")
    noise = np.asarray(jax.random.normal(key, lead_shape + (mcfg.image_size,) * 2 + (3,)))
    pixels = np.resize(host["pixels"], lead_shape + host["pixels"].shape[len(lead_shape):])
    rep = NamedSharding(mesh, P())
    put = lambda a: jax.make_array_from_process_local_data(rep, np.asarray(a))
    out = sample_fn(merge_params(state["ema"], frozen), put(ids), put(mask), put(null_ids),
                    put(null_mask), put(noise), key, put(pixels))
    out = np.asarray(out.addressable_data(0))
    if not lead:
        return
    if out.ndim == 4:                     # images: one frame, prompts side by side
        out = out[:, None]
    grid = np.concatenate(list(out), axis=2)  # (T, H, n*W, 3)
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    write_video(os.path.join(workdir, "samples", f"step_{step:07d}.gif"), grid, fps=8)


def main(argv) -> None:
    del argv
    initialize_distributed(flags.FLAGS.coordinator, flags.FLAGS.num_processes,
                           flags.FLAGS.process_id)
    try:
        train(flags.FLAGS.config, flags.FLAGS.workdir)
    except CheckpointSaveError as e:
        cli.exit_with_error(f"train.py: error: {e}")
    except UnreadableCheckpointError as e:
        cli.exit_with_error(f"train.py: error: {e}; if they are beyond repair, rerun with "
                            "--config.train.on_unreadable=restart to move them aside and "
                            "start from step 0")


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    cli.run(main, __doc__, "train.py", tune_malloc=True)
