"""Checkpoints: a small wrapper over orbax `CheckpointManager` (async, keep-N, any mesh).

A checkpoint at step s is a directory `<workdir>/<s>/` with two items:
  `state`  the train-state pytree (params, ema, opt_state, step, rng, ...), saved by every
           process (each writes its own shards), restorable onto any mesh;
  `meta`   JSON written by process 0 only: config fingerprint, data-iterator state and
           free-form metadata.
Orbax writes into a temporary directory and renames it when every item is on disk, so a
save killed half-way never looks like a checkpoint: `latest_step()` lists only finalized
step directories.

Damage after the fact (a flipped bit, a truncated or missing file) is caught on restore:
`meta` carries a checksum of every array and a SHA-256 of itself, because orbax alone
restores some damaged array files without any error (wrong values). A step that cannot
be read raises `CheckpointReadError`; `restore_newest_readable` then falls back to the
next newest and moves the damaged ones aside (`<step>.corrupt`, never deleted; orbax
does not see such names as steps). A save that fails (disk full, permission denied) is
reported as `CheckpointSaveError` naming its step, at the next save or at
`wait_until_finished` / `close` (saves are async); the earlier checkpoints stay intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MOVED_ASIDE_SUFFIX = ".corrupt"  # <step>.corrupt: not a step name to orbax (tested)
_CHECKSUMS, _META_SHA = "checksums", "meta_sha256"  # integrity fields inside `meta`


class IncompatibleCheckpointError(ValueError):
    """The workdir holds checkpoints written with a different config."""


class CheckpointReadError(RuntimeError):
    """One checkpoint step cannot be read: missing or damaged files, or arrays / metadata
    that no longer match the checksums written with them."""

    def __init__(self, directory: str, step: int, reason: str):
        super().__init__(f"checkpoint step {step} in {directory} is unreadable: {reason}")
        self.directory, self.step, self.reason = directory, step, reason


class UnreadableCheckpointError(RuntimeError):
    """No checkpoint in the folder can be read. `attempts`: (step, reason), newest first;
    nothing was moved or deleted."""

    def __init__(self, directory: str, attempts: Sequence[tuple[int, str]]):
        tried = "; ".join(f"step {step}: {reason}" for step, reason in attempts)
        super().__init__(f"no readable checkpoint in {directory} (tried {tried}); nothing "
                         "was moved or deleted")
        self.directory, self.attempts = directory, list(attempts)


class CheckpointSaveError(RuntimeError):
    """Saving checkpoint `step` failed; the checkpoints saved before it are intact."""

    def __init__(self, directory: str, step: int, cause: str, newest_good: int | None):
        good = (f"the newest good checkpoint is step {newest_good}" if newest_good is not None
                else "no checkpoint was completed before it")
        super().__init__(f"saving checkpoint step {step} to {directory} failed ({cause}); "
                         f"{good}: fix the cause (disk space, permissions), then rerun the "
                         "same command to resume")
        self.directory, self.step, self.cause = directory, step, cause


def describe_error(e: BaseException, limit: int = 300) -> str:
    """`Type: message` of the root cause (the end of the `raise ... from` chain: orbax
    wraps tensorstore's informative errors in generic ones) on one line, at most `limit`
    characters (long ones keep their head and tail)."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = " ".join(f"{type(e).__name__}: {e}".split())
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def _plain(obj: Any) -> Any:
    """A JSON-able view of a config (ConfigDict, dataclass, mapping, sequence, scalar)."""
    if hasattr(obj, "to_dict"):
        obj = obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def config_fingerprint(config: Any, exclude: Sequence[str] = ()) -> str:
    """sha256 hex digest of a config's canonical JSON, leaving out dotted keys in `exclude`.

    Exclude keys that do not change what a checkpoint means (e.g. 'workdir',
    'train.num_steps', 'log_every') so a run can be extended or moved.
    """
    tree = _plain(config)
    for key in exclude:
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    blob = json.dumps(tree, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _key_impl(x: Any) -> Any:
    """The PRNG implementation of a typed key array or key `ShapeDtypeStruct`."""
    if isinstance(x, jax.Array):
        return jax.random.key_impl(x)
    return x.dtype._impl  # ShapeDtypeStruct of a key dtype: no public accessor in jax 0.10


def _replicated() -> NamedSharding:
    return NamedSharding(Mesh(np.array(jax.devices()), ("replica",)), P())


def _restore_target(target: Any) -> Any:
    """The orbax target: ShapeDtypeStructs with shardings, typed keys as their key data."""
    default = None

    def spec(x: Any) -> Any:
        nonlocal default
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            return x
        sharding = getattr(x, "sharding", None)
        if sharding is None:
            default = default or _replicated()
            sharding = default
        if _is_key(x):
            data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(x.shape, x.dtype))
            return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(spec, target)


def _wrap_keys(state: Any, target: Any) -> Any:
    """`state` with the leaves that are typed PRNG keys in `target` wrapped back as keys."""
    impls = [_key_impl(x) if _is_key(x) else None for x in jax.tree.leaves(target)]
    if all(i is None for i in impls):
        return state
    leaves, treedef = jax.tree.flatten(state)
    leaves = [x if impl is None else jax.random.wrap_key_data(x, impl=impl)
              for x, impl in zip(leaves, impls)]
    return jax.tree.unflatten(treedef, leaves)


def _as_words(x: jax.Array) -> jax.Array:
    """The raw bits of `x` as uint32 (one word per element; 64-bit dtypes: two)."""
    if x.dtype == jnp.bool_:
        return x.astype(jnp.uint32)
    size = jnp.dtype(x.dtype).itemsize
    if size >= 4:
        return jax.lax.bitcast_convert_type(x, jnp.uint32)
    return jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * size}")).astype(jnp.uint32)


def _leaf_checksum(x: jax.Array) -> jax.Array:
    """The sum of `x`'s raw uint32 words mod 2**32: any changed word changes it, random
    damage goes unseen with odds 2**-32 (reordering would, but damaged or truncated data
    does not reorder), and integer sums are exact, so it is the same on any mesh. Two ops
    per leaf: a state of ~800 leaves traces and compiles in seconds."""
    return jnp.sum(_as_words(x), dtype=jnp.uint32)


_leaf_checksums = jax.jit(lambda leaves: [_leaf_checksum(x) for x in leaves])


def _leaf_name(path: tuple) -> str:
    """'opt_state/1/0/mu/dense/kernel': the same for a tuple / NamedTuple leaf and the dict
    orbax restores it as without a target."""
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                    for k in path)


def state_checksums(tree: Any) -> dict[str, int]:
    """{leaf name: uint32 checksum} of a pytree of arrays (typed PRNG keys: pass key data).
    One jitted reduction per set of devices the leaves live on; all processes call it."""
    groups: dict[Any, list] = {}
    for path, x in jax.tree_util.tree_flatten_with_path(tree)[0]:
        devices = (frozenset(d.id for d in x.sharding.device_set)
                   if isinstance(x, jax.Array) else None)
        groups.setdefault(devices, []).append((_leaf_name(path), x))
    out = {}
    for items in groups.values():
        names, leaves = zip(*items)
        sums = _leaf_checksums(list(leaves))
        out.update({n: int(np.asarray(c.addressable_data(0))) for n, c in zip(names, sums)})
    return out


def _meta_digest(meta: Mapping[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in meta.items() if k != _META_SHA}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _check_meta(meta: Mapping[str, Any]) -> dict:
    """`meta` without its SHA-256 field; ValueError if it no longer matches that SHA-256
    (checkpoints written before the field existed are accepted as they are)."""
    if _META_SHA in meta and meta[_META_SHA] != _meta_digest(meta):
        raise ValueError("its meta JSON does not match the SHA-256 written with it")
    return {k: v for k, v in meta.items() if k != _META_SHA}


def _check_arrays(state: Any, expected: Mapping[str, int] | None) -> None:
    """ValueError naming the first array whose checksum differs from the one saved."""
    if not expected:
        return  # written before checksums existed
    actual = state_checksums(state)
    bad = [name for name, value in expected.items() if name in actual and actual[name] != value]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ValueError(f"array {bad[0]!r}{more} does not match the checksum written with it")


def _all_processes(ok: bool) -> bool:
    """True only if `ok` on every process (all processes call it together)."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def _free_name(path: str) -> str:
    """`path`, or `path.1`, `path.2`, ... : the first that does not exist."""
    candidate, i = path, 0
    while os.path.exists(candidate):
        i += 1
        candidate = f"{path}.{i}"
    return candidate


def _is_abandoned_read(unraisable: Any) -> bool:
    """orbax runs each restore on a fresh asyncio loop and closes it as soon as one read
    fails, after the failed restore has raised its error. What it leaves behind reports
    through `sys.unraisablehook`: tensorstore's reads still in flight finish into the
    closed loop (`RuntimeError('Event loop is closed')`), and orbax's unfinished read
    coroutines (`_read_array_index_and_device_put`, ...) report their error when
    collected."""
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
        return True
    code = getattr(unraisable.object, "cr_code", None)  # a coroutine's code object
    return (code is not None and "read" in code.co_name
            and f"{os.sep}orbax{os.sep}checkpoint{os.sep}" in code.co_filename)


def _drop_abandoned_read_reports() -> None:
    """Installs (once) a `sys.unraisablehook` that drops only `_is_abandoned_read` reports
    (otherwise tracebacks printed after a damaged checkpoint's one-line error, at random)
    and hands every other report to the hook that was there before."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_abandoned_reads", False):
        return

    def hook(unraisable: Any) -> None:
        if not _is_abandoned_read(unraisable):
            previous(unraisable)

    hook.drops_abandoned_reads = True
    sys.unraisablehook = hook


class Checkpointer:
    """Async, keep-N orbax checkpoints of a train state plus JSON metadata.

    directory: the run's checkpoint folder (created if missing unless read_only; shared by
      all processes).
    config_fingerprint: from `config_fingerprint(config)`; if the folder already holds a
      checkpoint written under another fingerprint, construction raises
      `IncompatibleCheckpointError`. None skips the check (e.g. read-only sampling).
    max_to_keep: newest N checkpoints kept (None keeps all).
    async_save: write in a background thread; `save` returns once arrays are copied off
      the devices, so the caller may donate / overwrite them right away.
    read_only: only read (e.g. another run's folder: `init_from`, sampling): nothing is
      created, cleaned up, saved or moved aside.
    All processes must construct the Checkpointer and call `save` / `restore` together.
    """

    def __init__(self, directory: str | os.PathLike, *, config_fingerprint: str | None = None,
                 max_to_keep: int | None = 3, save_interval_steps: int = 1,
                 async_save: bool = True, read_only: bool = False):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep={max_to_keep}; must be >= 1 or None (keep all)")
        if save_interval_steps < 1:
            raise ValueError(f"save_interval_steps={save_interval_steps}; must be >= 1")
        _drop_abandoned_read_reports()
        self.directory = os.path.abspath(os.fspath(directory))
        self.config_fingerprint = config_fingerprint
        self.read_only = read_only
        if read_only:  # orbax warns about every writing option left set
            options = ocp.CheckpointManagerOptions(
                read_only=True, max_to_keep=None, save_interval_steps=0, create=False,
                enable_async_checkpointing=False, cleanup_tmp_directories=False)
        else:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                save_interval_steps=save_interval_steps,
                enable_async_checkpointing=async_save,
                create=True,
                cleanup_tmp_directories=True,  # remove half-written saves of killed runs
            )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options,
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "meta": ocp.JsonCheckpointHandler()})
        self._in_flight: int | None = None  # step of the async save not yet known to be done
        self._check_fingerprint()

    # -- queries -------------------------------------------------------------------------

    def all_steps(self) -> list[int]:
        """Steps of complete (finalized) checkpoints on disk, ascending."""
        return sorted(ocp.path.step.checkpoint_steps(self.directory))

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None; in-flight saves are not counted."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def _resolve(self, step: int | None) -> int:
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        if step is None:
            return steps[-1]
        if step not in steps:
            raise ValueError(f"step {step} has no complete checkpoint in {self.directory};"
                             f" available steps: {steps}")
        return step

    def _check_fingerprint(self) -> None:
        """Refuses a folder whose newest checkpoint with readable metadata was written under
        another config fingerprint (unreadable ones are left to the restore)."""
        if self.config_fingerprint is None:
            return
        for step in reversed(self.all_steps()):
            try:
                stored = self.restore_metadata(step).get("config_fingerprint")
            except CheckpointReadError:
                continue
            if stored is not None and stored != self.config_fingerprint:
                raise IncompatibleCheckpointError(
                    f"{self.directory} holds checkpoint step {step} written with config"
                    f" fingerprint {stored[:12]}..., but this run's config has fingerprint"
                    f" {self.config_fingerprint[:12]}...; use a fresh --workdir, or rerun"
                    " with the config that wrote it")
            return

    # -- save / restore ------------------------------------------------------------------

    def save(self, step: int, state: Any, *, data_state: Any = None,
             metadata: Mapping[str, Any] | None = None, force: bool = False) -> bool:
        """Starts saving `state` (pytree of arrays) as checkpoint `step`; True if it saves.

        data_state: JSON-able data-iterator state (e.g. grain `iterator.get_state()`).
        metadata: extra JSON-able fields (stored under 'metadata').
        Typed PRNG keys in `state` are stored as their raw key data. Raises
        `CheckpointSaveError` if this save, or the previous (async) one, failed.
        """
        step = int(step)
        self._raise_if_save_failed()
        if not force and not self._manager.should_save(step):
            return False
        state = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
        meta = {"step": step, "config_fingerprint": self.config_fingerprint,
                "data_state": data_state, "metadata": dict(metadata or {})}
        try:
            json.dumps(meta)
        except TypeError as e:
            raise ValueError(f"data_state / metadata must be JSON-serializable: {e}") from None
        meta[_CHECKSUMS] = state_checksums(state)
        meta[_META_SHA] = _meta_digest(meta)
        try:
            saved = self._manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                        meta=ocp.args.JsonSave(meta)),
                force=force,
            )
        except Exception as e:  # orbax / tensorstore / OS errors alike
            raise self._save_error(step, e) from e
        if saved:
            self._in_flight = step
        return saved

    def _raise_if_save_failed(self) -> None:
        """Waits for the async save in flight; `CheckpointSaveError` naming its step if it
        failed (orbax reports it once, at the next save or wait)."""
        step, self._in_flight = self._in_flight, None
        if step is None:
            return
        try:
            self._manager.wait_until_finished()
        except Exception as e:
            raise self._save_error(step, e) from e

    def _save_error(self, step: int, e: BaseException) -> CheckpointSaveError:
        return CheckpointSaveError(self.directory, step, describe_error(e), self.latest_step())

    def restore(self, step: int | None = None, target: Any = None, partial: bool = False
                ) -> tuple[Any, dict]:
        """Restores (state, meta) from `step` (default: the latest complete one).

        target: the state's structure as arrays or `jax.ShapeDtypeStruct`s, each with the
          sharding to restore onto (any mesh; e.g. written on 8 devices, read on 1).
          Leaves without a sharding are restored replicated on all devices. Typed PRNG key
          leaves come back as typed keys. None: the saved structure, replicated, with
          keys as raw uint32 key data.
        partial: `target` names only some leaves (same nesting as the saved tree); only
          those are read, each straight onto its sharding (e.g. a T2I run's weights onto a
          STUNet's shardings, without its optimizer state). Their checksums are checked.
        meta: {'step', 'config_fingerprint', 'data_state', 'metadata'}.
        Raises `CheckpointReadError` if the step's files are missing or damaged, or its
        arrays / metadata do not match the checksums saved with them.
        """
        step = self._resolve(step)
        try:
            state, meta = self._read(step, target, partial)
            _check_arrays(state, meta.pop(_CHECKSUMS, None))
        except CheckpointReadError:
            raise
        except Exception as e:  # tensorstore, JSON, orbax and checksum errors alike
            raise CheckpointReadError(self.directory, step, describe_error(e)) from e
        return (state if target is None else _wrap_keys(state, target)), meta

    def state_metadata(self, step: int | None = None) -> Any:
        """The saved state tree of `step` (default: latest complete) as orbax metadata
        leaves (`.shape`, `.dtype`), nothing read; `CheckpointReadError` if unreadable."""
        step = self._resolve(step)
        try:
            saved = self._manager.item_metadata(step)["state"]
        except Exception as e:
            raise CheckpointReadError(self.directory, step, describe_error(e)) from e
        if saved is None:
            raise CheckpointReadError(self.directory, step, "no readable 'state' metadata")
        return saved

    def _read(self, step: int, target: Any, partial: bool = False) -> tuple[Any, dict]:
        """(state with keys as raw key data, meta with its checksums) of `step`, unchecked
        but for the meta SHA-256."""
        if target is None:
            sharding = _replicated()
            orbax_target = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=sharding),
                self.state_metadata(step))
        else:
            orbax_target = _restore_target(target)
        if partial:  # the manager's StandardRestore reads whole trees only
            reader = ocp.Checkpointer(ocp.PyTreeCheckpointHandler())
            try:
                state = reader.restore(
                    os.path.join(self.directory, str(step), "state"),
                    args=ocp.args.PyTreeRestore(
                        item=orbax_target, partial_restore=True,
                        restore_args=ocp.checkpoint_utils.construct_restore_args(orbax_target)))
            finally:
                reader.close()
            meta = self._manager.restore(step, args=ocp.args.Composite(
                meta=ocp.args.JsonRestore()))["meta"]
            return state, _check_meta(dict(meta))
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(orbax_target),
                                    meta=ocp.args.JsonRestore()),
        )
        return out["state"], _check_meta(dict(out["meta"]))

    def restore_metadata(self, step: int | None = None) -> dict:
        """The JSON `meta` item of `step` (default: latest complete), without the state;
        `CheckpointReadError` if it is missing or damaged."""
        step = self._resolve(step)
        try:
            out = self._manager.restore(step,
                                        args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            meta = _check_meta(dict(out["meta"]))
        except Exception as e:
            raise CheckpointReadError(self.directory, step, describe_error(e)) from e
        meta.pop(_CHECKSUMS, None)
        return meta

    def restore_newest_readable(self, target: Any = None, *, move_aside: bool = True,
                                partial: bool = False) -> tuple[Any, dict]:
        """`restore(step, target, partial)` of the newest step that reads; unreadable newer
        steps get a warning each and, once an older one has read (so the code and target are
        fine and the files are at fault), are moved aside (`move_aside`; never in a
        read-only Checkpointer). `UnreadableCheckpointError` (listing every step tried,
        nothing moved) if none reads; `FileNotFoundError` if there is no checkpoint."""
        steps = self.all_steps()
        if not steps:
            raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
        attempts, newest_first = [], steps[::-1]
        for i, step in enumerate(newest_first):
            try:
                result, error = self.restore(step, target, partial), None
            except CheckpointReadError as e:
                result, error = None, e
            if _all_processes(error is None):
                if move_aside and not self.read_only:
                    for bad, reason in attempts:
                        self.move_aside(bad, reason)
                return result
            reason = error.reason if error else "unreadable on another process"
            if jax.process_index() == 0:
                then = (f"trying step {newest_first[i + 1]}" if i + 1 < len(newest_first)
                        else "no older checkpoint")
                logging.warning("checkpoint step %d in %s is unreadable (%s); %s", step,
                                self.directory, reason, then)
            attempts.append((step, reason))
        raise UnreadableCheckpointError(self.directory, attempts)

    def move_aside(self, step: int, reason: str = "") -> str:
        """Renames step `step`'s folder to `<step>.corrupt` (or `.corrupt.1`, ...), which
        orbax never takes for a step; returns the new path. Never deletes anything."""
        if self.read_only:
            raise ValueError(f"{self.directory} is opened read-only; not moving step {step}")
        source = os.path.join(self.directory, str(step))
        target = _free_name(source + MOVED_ASIDE_SUFFIX)
        if jax.process_index() == 0:
            os.rename(source, target)
            logging.warning("moved unreadable checkpoint step %d aside to %s%s", step, target,
                            f" ({reason})" if reason else "")
        _sync(f"checkpoint moved aside {step}")
        self._manager.reload()  # orbax caches the step list
        return target

    def wait_until_finished(self) -> None:
        """Blocks until the in-flight async save (if any) is on disk and finalized;
        `CheckpointSaveError` if it failed."""
        self._raise_if_save_failed()

    def close(self) -> None:
        """Waits for pending saves (`CheckpointSaveError` if one failed), then releases
        orbax's background resources."""
        try:
            self._raise_if_save_failed()
        finally:
            self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
