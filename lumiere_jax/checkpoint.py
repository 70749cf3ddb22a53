"""Checkpoints: a small wrapper over orbax `CheckpointManager` (async, keep-N, any mesh).

A checkpoint at step s is a directory `<workdir>/<s>/` with two items:
  `state`  the train-state pytree (params, ema, opt_state, step, rng, ...), saved by every
           process (each writes its own shards), restorable onto any mesh;
  `meta`   JSON written by process 0 only: config fingerprint, data-iterator state and
           free-form metadata.
Orbax writes into a temporary directory and renames it when every item is on disk, so a
save killed half-way never looks like a checkpoint: `latest_step()` lists only finalized
step directories.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


class IncompatibleCheckpointError(ValueError):
    """The workdir holds checkpoints written with a different config."""


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


def _restore_target(target: Any) -> tuple[Any, list]:
    """(orbax target of ShapeDtypeStructs with shardings, per-leaf key impl or None)."""
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

    impls = [_key_impl(x) if _is_key(x) else None for x in jax.tree.leaves(target)]
    return jax.tree.map(spec, target), impls


class Checkpointer:
    """Async, keep-N orbax checkpoints of a train state plus JSON metadata.

    directory: the run's checkpoint folder (created if missing; shared by all processes).
    config_fingerprint: from `config_fingerprint(config)`; if the folder already holds a
      checkpoint written under another fingerprint, construction raises
      `IncompatibleCheckpointError`. None skips the check (e.g. read-only sampling).
    max_to_keep: newest N checkpoints kept (None keeps all).
    async_save: write in a background thread; `save` returns once arrays are copied off
      the devices, so the caller may donate / overwrite them right away.
    All processes must construct the Checkpointer and call `save` / `restore` together.
    """

    def __init__(self, directory: str | os.PathLike, *, config_fingerprint: str | None = None,
                 max_to_keep: int | None = 3, save_interval_steps: int = 1,
                 async_save: bool = True):
        if max_to_keep is not None and max_to_keep < 1:
            raise ValueError(f"max_to_keep={max_to_keep}; must be >= 1 or None (keep all)")
        if save_interval_steps < 1:
            raise ValueError(f"save_interval_steps={save_interval_steps}; must be >= 1")
        self.directory = os.path.abspath(os.fspath(directory))
        self.config_fingerprint = config_fingerprint
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
        if self.config_fingerprint is None:
            return
        step = self.latest_step()
        if step is None:
            return
        stored = self.restore_metadata(step).get("config_fingerprint")
        if stored is not None and stored != self.config_fingerprint:
            raise IncompatibleCheckpointError(
                f"{self.directory} holds checkpoint step {step} written with config"
                f" fingerprint {stored[:12]}..., but this run's config has fingerprint"
                f" {self.config_fingerprint[:12]}...; use a fresh --workdir, or rerun with"
                " the config that wrote it")

    # -- save / restore ------------------------------------------------------------------

    def save(self, step: int, state: Any, *, data_state: Any = None,
             metadata: Mapping[str, Any] | None = None, force: bool = False) -> bool:
        """Starts saving `state` (pytree of arrays) as checkpoint `step`; True if it saves.

        data_state: JSON-able data-iterator state (e.g. grain `iterator.get_state()`).
        metadata: extra JSON-able fields (stored under 'metadata').
        Typed PRNG keys in `state` are stored as their raw key data.
        """
        step = int(step)
        state = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
        meta = {"step": step, "config_fingerprint": self.config_fingerprint,
                "data_state": data_state, "metadata": dict(metadata or {})}
        try:
            json.dumps(meta)
        except TypeError as e:
            raise ValueError(f"data_state / metadata must be JSON-serializable: {e}") from None
        return self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                    meta=ocp.args.JsonSave(meta)),
            force=force,
        )

    def restore(self, step: int | None = None, target: Any = None) -> tuple[Any, dict]:
        """Restores (state, meta) from `step` (default: the latest complete one).

        target: the state's structure as arrays or `jax.ShapeDtypeStruct`s, each with the
          sharding to restore onto (any mesh; e.g. written on 8 devices, read on 1).
          Leaves without a sharding are restored replicated on all devices. Typed PRNG key
          leaves come back as typed keys. None: the saved structure, replicated, with
          keys as raw uint32 key data.
        meta: {'step', 'config_fingerprint', 'data_state', 'metadata'}.
        """
        step = self._resolve(step)
        impls = None
        if target is None:
            saved = self._manager.item_metadata(step)["state"]
            if saved is None:
                raise ValueError(f"checkpoint step {step} in {self.directory} has no readable"
                                 " 'state' metadata; pass target=")
            sharding = _replicated()
            orbax_target = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype, sharding=sharding), saved)
        else:
            orbax_target, impls = _restore_target(target)
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(orbax_target),
                                    meta=ocp.args.JsonRestore()),
        )
        state = out["state"]
        if impls is not None and any(i is not None for i in impls):
            leaves, treedef = jax.tree.flatten(state)
            leaves = [x if impl is None else jax.random.wrap_key_data(x, impl=impl)
                      for x, impl in zip(leaves, impls)]
            state = jax.tree.unflatten(treedef, leaves)
        return state, dict(out["meta"])

    def restore_metadata(self, step: int | None = None) -> dict:
        """The JSON `meta` item of `step` (default: latest complete), without the state."""
        step = self._resolve(step)
        out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def wait_until_finished(self) -> None:
        """Blocks until the in-flight async save (if any) is on disk and finalized."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves, then releases orbax's background resources."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
