"""Per-step progress from inside a jitted sampler, in programs the persistent cache keeps.

`report_step(progress, step, tie)` calls the host function `progress(step)` once the step
that produced `tie` has finished. JAX will not write a program with a Python callback
(`jax.debug.callback`) to the persistent compilation cache, so on a one-device CPU host
(a laptop, `sample.py`) the call goes through an XLA FFI target instead: a C-ABI
handler (built with `ctypes`, no compiler needed) registered once under `TARGET`. The
compiled program names only the target and a channel number, so it is cached like any
other, and a cached program loaded by a later process calls that process's handler. The
channel picks the Python function from a table filled at trace time, in trace order (the
same program traced in the same order gets the same numbers, hence the same cache key).
On other backends, on hosts with several devices (XLA's SPMD partitioner wants a
sharding on every side-effecting op, which `ffi_call` does not take; `jax.debug.callback`
runs once on one device), or if the target cannot be registered, `jax.debug.callback`
does the same job uncached.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["TARGET", "report_step", "uses_ffi"]

TARGET = "lumiere_jax_progress"
_channels: list[Callable[[int], None]] = []  # channel number -> host function


# The parts of xla/ffi/api/c_api.h (`jax.ffi.include_dir()`) the handler reads or fills.
class _ExtensionBase(ctypes.Structure):
    pass


_ExtensionBase._fields_ = [("struct_size", ctypes.c_size_t), ("type", ctypes.c_int),
                           ("next", ctypes.POINTER(_ExtensionBase))]
_METADATA_EXTENSION = 1  # XLA_FFI_Extension_Metadata


class _ApiVersion(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("major_version", ctypes.c_int), ("minor_version", ctypes.c_int)]


class _Metadata(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("api_version", _ApiVersion),
                ("traits", ctypes.c_uint32)]


class _MetadataExtension(ctypes.Structure):
    _fields_ = [("extension_base", _ExtensionBase), ("metadata", ctypes.POINTER(_Metadata))]


class _Args(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("size", ctypes.c_int64), ("types", ctypes.POINTER(ctypes.c_int)),
                ("args", ctypes.POINTER(ctypes.c_void_p))]


class _Buffer(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_size_t), ("extension_start", ctypes.c_void_p),
                ("dtype", ctypes.c_int), ("data", ctypes.c_void_p), ("rank", ctypes.c_int64),
                ("dims", ctypes.POINTER(ctypes.c_int64))]


class _CallFrame(ctypes.Structure):  # the leading fields of XLA_FFI_CallFrame
    _fields_ = [("struct_size", ctypes.c_size_t),
                ("extension_start", ctypes.POINTER(_ExtensionBase)),
                ("api", ctypes.c_void_p), ("ctx", ctypes.c_void_p), ("stage", ctypes.c_int),
                ("args", _Args)]


def _int32_arg(frame: _CallFrame, index: int) -> int:
    buffer = ctypes.cast(frame.args.args[index], ctypes.POINTER(_Buffer)).contents
    return ctypes.cast(buffer.data, ctypes.POINTER(ctypes.c_int32))[0]


def _handle(frame_ptr) -> None:
    """XLA_FFI_Error* handler(XLA_FFI_CallFrame*): answers XLA's metadata query (FFI API
    0.1, no traits), else calls channel arg0's function with the step arg1. Never raises
    into XLA (a failing progress bar must not stop sampling); returns NULL (success)."""
    try:
        frame = frame_ptr.contents
        extension = frame.extension_start
        if extension and extension.contents.type == _METADATA_EXTENSION:
            metadata = ctypes.cast(extension, ctypes.POINTER(_MetadataExtension)
                                   ).contents.metadata.contents
            metadata.api_version.struct_size = ctypes.sizeof(_ApiVersion)
            metadata.api_version.major_version, metadata.api_version.minor_version = 0, 1
            metadata.traits = 0
            return None
        _channels[_int32_arg(frame, 0)](_int32_arg(frame, 1))
    except Exception as error:  # noqa: BLE001 (reported, then sampling goes on)
        print(f"lumiere_jax progress callback failed: {error!r}", file=sys.stderr)
    return None


_handler = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.POINTER(_CallFrame))(_handle)
_registered: bool | None = None  # None: not tried yet


def _register() -> bool:
    global _registered
    if _registered is None:
        try:
            capsule_new = ctypes.pythonapi.PyCapsule_New
            capsule_new.restype = ctypes.py_object
            capsule_new.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
            capsule = capsule_new(ctypes.cast(_handler, ctypes.c_void_p).value, None, None)
            jax.ffi.register_ffi_target(TARGET, capsule, platform="cpu")
            _registered = True
        except Exception:  # noqa: BLE001 (an older or different jaxlib: use the callback)
            _registered = False
    return _registered


def uses_ffi() -> bool:
    """Whether `report_step` traced now goes through the cacheable FFI target (one CPU
    device)."""
    return jax.default_backend() == "cpu" and jax.device_count() == 1 and _register()


def report_step(progress: Callable[[int], None], step: jax.Array, tie: jax.Array) -> None:
    """Inside a traced step: call `progress(int(step))` on the host once `tie` (any scalar
    of the step's output) is computed. step: int scalar; tie: scalar."""
    if not uses_ffi():
        jax.debug.callback(lambda i, _: progress(int(i)), step, tie)
        return
    _channels.append(progress)
    jax.ffi.ffi_call(TARGET, (), has_side_effect=True, vmap_method="broadcast_all")(
        jnp.int32(len(_channels) - 1), jnp.asarray(step, jnp.int32), tie)
