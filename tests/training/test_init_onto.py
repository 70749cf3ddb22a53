"""A T2I run's weights read straight onto a STUNet's shardings (`runs.load_run_params_onto`,
what `setup.init_params` uses for `config.train.init_from`): the values `load_run_params`
reads on the host, each leaf already on the STUNet's sharding of an 8-device mesh, only
the weights read; the same errors, and the same fallback past a damaged newest step."""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import traverse_util

from configs.common import tiny_config
from lumiere_jax.checkpoint import Checkpointer
from lumiere_jax.parallel import make_mesh, param_shardings
from lumiere_jax.runs import load_run_params, load_run_params_onto
from lumiere_jax.training import setup


def _random_like(abstract, seed):
    """NumPy values of every leaf's shape (no XLA compile for an init)."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: rng.normal(size=a.shape).astype(a.dtype), abstract)


@pytest.fixture(scope="module")
def stunet_onto():
    """The tiny STUNet's params as ShapeDtypeStructs with their shardings on (fsdp=8)."""
    config = tiny_config("stunet")
    mesh = make_mesh({"fsdp": 8})
    from lumiere_jax.models import UNet
    from lumiere_jax.text import TextEncoder

    model, encoder = UNet(setup.unet_config(config)), TextEncoder(setup.text_config(config))
    boxed = setup.abstract_params(config, model, encoder, mesh)
    shardings = param_shardings(boxed, mesh, setup.axis_rules(config))
    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        nn.meta.unbox(boxed), shardings)


@pytest.fixture(scope="module")
def t2i_run(tmp_path_factory):
    """A tiny T2I run's checkpoint folder as train.py lays it out (steps 1 and 2, with an
    optimizer state that must not be read)."""
    config = tiny_config("t2i")
    from lumiere_jax.models import UNet
    from lumiere_jax.text import TextEncoder

    model, encoder = UNet(setup.unet_config(config)), TextEncoder(setup.text_config(config))
    abstract = nn.meta.unbox(jax.eval_shape(setup.make_init_fn(model, encoder, config),
                                            jax.random.key(0)))
    directory = str(tmp_path_factory.mktemp("t2i") / "checkpoints")
    emas = {}
    with Checkpointer(directory, config_fingerprint="fp") as ckpt:
        for step in (1, 2):
            emas[step] = _random_like(abstract, 10 + step)
            state = {"params": _random_like(abstract, step), "ema": emas[step],
                     "opt_state": {"mu": _random_like(abstract, 20 + step)}}
            ckpt.save(step, {"state": state, "frozen": {}}, metadata={"stage": "t2i"})
    return directory, emas


def _check_onto(got, onto, expected):
    flat_got, flat_onto = traverse_util.flatten_dict(got), traverse_util.flatten_dict(onto)
    flat_expected = traverse_util.flatten_dict(expected)
    assert set(flat_got) == set(flat_expected)  # the T2I paths, a subset of the STUNet's
    assert set(flat_got) < set(flat_onto)
    sharded = 0
    for path, x in flat_got.items():
        assert isinstance(x, jax.Array), path
        assert x.sharding.is_equivalent_to(flat_onto[path].sharding, x.ndim), path
        sharded += not x.sharding.is_fully_replicated
        np.testing.assert_array_equal(np.asarray(x), flat_expected[path], err_msg=str(path))
    assert sharded > 0  # the mesh really splits some of them


def test_reads_the_ema_weights_onto_the_stunet_shardings(t2i_run, stunet_onto):
    directory, emas = t2i_run
    got = load_run_params_onto(directory, "t2i", stunet_onto)
    _check_onto(got, stunet_onto, emas[2])
    host = load_run_params(directory, "t2i")  # the host path reads the same values
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), got, host)


def test_falls_back_past_a_damaged_newest_step(t2i_run, stunet_onto, tmp_path):
    import shutil

    directory = str(shutil.copytree(t2i_run[0], tmp_path / "checkpoints"))
    folder = os.path.join(directory, "2", "state", "ocdbt.process_0", "d")
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        data = open(path, "rb").read()
        open(path, "wb").write(bytes(b ^ 0xFF for b in data))
    got = load_run_params_onto(directory, "t2i", stunet_onto)
    _check_onto(got, stunet_onto, t2i_run[1][1])
    assert sorted(os.listdir(directory)) == ["1", "2"]  # read only


def test_a_run_that_does_not_fit_or_of_another_stage_is_one_clear_error(t2i_run, stunet_onto):
    directory, _ = t2i_run
    with pytest.raises(ValueError, match="is a 't2i' run; expected a 'stunet' run"):
        load_run_params_onto(directory, "stunet", stunet_onto)
    narrow = jax.tree.map(lambda a: a, stunet_onto)
    kernel = narrow["unet"]["input_conv"]["kernel"]
    narrow["unet"]["input_conv"]["kernel"] = jax.ShapeDtypeStruct(
        kernel.shape[:-1] + (kernel.shape[-1] * 2,), kernel.dtype, sharding=kernel.sharding)
    with pytest.raises(ValueError, match=r"do not fit the STUNet tree .*\n  shape .* "
                                         r"\(T2I\) vs .* \(STUNet\): input_conv/kernel"):
        load_run_params_onto(directory, "t2i", narrow)
