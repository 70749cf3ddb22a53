"""`xla_options.kernel_options()`: on CPU, programs compile to XLA's own kernels instead of
YNNPACK fusions (which run on one thread), with the same values; the user's choice wins."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lumiere_jax import xla_options
from lumiere_jax.xla_options import kernel_options, with_kernel_options

YNN_OFF = {"xla_cpu_experimental_ynn_fusion_type": ""}


def conv_norm_silu(x, w):
    """A convolution, a reduction and elementwise work: what YNNPACK would take."""
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = (y - y.mean(axis=(1, 2), keepdims=True)) * jax.lax.rsqrt(
        y.var(axis=(1, 2), keepdims=True) + 1e-5)
    return y * jax.nn.sigmoid(y)


def test_on_cpu_the_program_has_no_ynn_fusion_and_the_same_values():
    assert jax.default_backend() == "cpu" and kernel_options() == YNN_OFF
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 16, 16, 32)), jnp.float32)
    w = jnp.asarray(0.1 * rng.normal(size=(3, 3, 32, 32)), jnp.float32)
    ours = jax.jit(conv_norm_silu, compiler_options=kernel_options()).lower(x, w).compile()
    assert not re.findall(r"%ynn_fusion[\w.]* = ", ours.as_text())
    default = jax.jit(conv_norm_silu).lower(x, w).compile()  # jaxlib 0.10's default path
    assert re.findall(r"%ynn_fusion[\w.]* = ", default.as_text())
    numpy_conv = sum(np.einsum("nhwc,cd->nhwd",
                               np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))[
                                   :, i:i + 16, j:j + 16], np.asarray(w[i, j]))
                     for i in range(3) for j in range(3))
    z = (numpy_conv - numpy_conv.mean(axis=(1, 2), keepdims=True)) / np.sqrt(
        numpy_conv.var(axis=(1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(ours(x, w), z / (1 + np.exp(-z)), rtol=1e-4, atol=1e-4)


def test_user_options_win_and_other_backends_get_none():
    assert with_kernel_options(None) == YNN_OFF
    assert with_kernel_options((("xla_backend_optimization_level", 2),)) == {
        **YNN_OFF, "xla_backend_optimization_level": 2}
    mine = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
    assert with_kernel_options(mine) == mine
    assert kernel_options("gpu") == {} and kernel_options("tpu") == {}


def test_xla_flags_naming_the_option_leave_it_to_the_environment(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT")
    assert kernel_options() == {} and with_kernel_options(None) is None


def test_an_option_this_jaxlib_does_not_know_is_detected():
    assert not xla_options._jaxlib_accepts((("xla_cpu_no_such_option_anywhere", ""),))
    assert xla_options._jaxlib_accepts(tuple(YNN_OFF.items()))
