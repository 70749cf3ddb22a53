"""HF safetensors -> T5Encoder params: dtypes, shards, full checkpoints, and clear errors."""

import json
import pathlib
import shutil
import struct

import jax
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lumiere_jax.text.t5 import T5Config
from lumiere_jax.text.t5_weights import (convert_t5_weights, load_t5_encoder, read_safetensors,
                                         read_safetensors_folder)

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "t5_tiny"
ATTN = "encoder.block.1.layer.0.SelfAttention"


@pytest.fixture(scope="module")
def hf():
    return load_file(str(FIXTURE / "model.safetensors")), T5Config.from_hf(FIXTURE)


@pytest.fixture(scope="module")
def reference_params():
    return load_t5_encoder(FIXTURE)[1]


def _folder(tmp_path, tensors, config_dir=FIXTURE):
    shutil.copy(config_dir / "config.json", tmp_path / "config.json")
    save_file(tensors, str(tmp_path / "model.safetensors"))
    return tmp_path


def test_layout_transposes_linear_weights(hf, reference_params):
    tensors, _ = hf
    p = reference_params
    np.testing.assert_array_equal(p["block_1"]["attention"]["query"]["kernel"],
                                  tensors[f"{ATTN}.q.weight"].T)
    np.testing.assert_array_equal(p["block_0"]["mlp"]["wo"]["kernel"],
                                  tensors["encoder.block.0.layer.1.DenseReluDense.wo.weight"].T)
    np.testing.assert_array_equal(p["token_embedding"]["embedding"], tensors["shared.weight"])
    np.testing.assert_array_equal(p["final_norm"]["scale"],
                                  tensors["encoder.final_layer_norm.weight"])


def test_missing_tensor_is_named(hf, tmp_path):
    tensors, config = hf
    broken = {k: v for k, v in tensors.items() if k != f"{ATTN}.v.weight"}
    with pytest.raises(ValueError, match=r"missing tensors \(1\):\n  "
                                         r"encoder.block.1.layer.0.SelfAttention.v.weight"):
        load_t5_encoder(_folder(tmp_path, broken))
    no_embedding = {k: v for k, v in tensors.items() if k != "shared.weight"}
    with pytest.raises(ValueError, match="encoder.embed_tokens.weight"):
        convert_t5_weights(no_embedding, config)


def test_misshaped_tensor_is_named_with_shapes(hf):
    tensors, config = hf
    broken = dict(tensors, **{f"{ATTN}.o.weight": np.zeros((24, 32), np.float32)})
    with pytest.raises(ValueError,
                       match=r"SelfAttention.o.weight: expected \[32, 24\], got \[24, 32\]"):
        convert_t5_weights(broken, config)


def test_config_mismatch_names_missing_and_unexpected(hf):
    tensors, config = hf
    with pytest.raises(ValueError, match=r"missing tensors \(9\):\n  encoder.block.2"):
        convert_t5_weights(tensors, T5Config(**{**config.__dict__, "num_layers": 3}))
    with pytest.raises(ValueError, match=r"unexpected encoder tensors \(9\):\n  encoder.block.1"):
        convert_t5_weights(tensors, T5Config(**{**config.__dict__, "num_layers": 1}))
    # d_model 40: all but the bias table
    with pytest.raises(ValueError, match=r"mis-shaped tensors \(20\)"):
        convert_t5_weights(tensors, T5Config(**{**config.__dict__, "d_model": 40}))


def test_full_encoder_decoder_checkpoint_and_untied_names(hf, reference_params):
    tensors, config = hf
    full = dict(tensors)
    full["encoder.embed_tokens.weight"] = full.pop("shared.weight")
    full["decoder.block.0.layer.0.SelfAttention.q.weight"] = np.ones((24, 32), np.float32)
    full["lm_head.weight"] = np.ones((128, 32), np.float32)
    params = convert_t5_weights(full, config)
    jax.tree.map(np.testing.assert_array_equal, params, reference_params)


def test_sharded_folder_with_index(hf, reference_params, tmp_path):
    tensors, _ = hf
    shutil.copy(FIXTURE / "config.json", tmp_path / "config.json")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2],
              "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(tmp_path / file))
    index = {"weight_map": {k: f for f, keys in shards.items() for k in keys}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    _, params = load_t5_encoder(tmp_path)
    jax.tree.map(np.testing.assert_array_equal, params, reference_params)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ValueError, match="model-00002-of-00002.safetensors"):
        load_t5_encoder(tmp_path)


def _write_bf16_safetensors(path, tensors):
    """A minimal safetensors writer (header per the format spec) for BF16, which
    `safetensors.numpy` cannot write."""
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        data = np.ascontiguousarray(value.astype(ml_dtypes.bfloat16)).tobytes()
        header[name] = {"dtype": "BF16", "shape": list(value.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def test_half_precision_files(hf, tmp_path):
    tensors, _ = hf
    half = tmp_path / "f16"
    half.mkdir()
    _folder(half, {k: v.astype(np.float16) for k, v in tensors.items()})
    _, params = load_t5_encoder(half)
    np.testing.assert_array_equal(params["block_1"]["attention"]["key"]["kernel"],
                                  tensors[f"{ATTN}.k.weight"].astype(np.float16)
                                  .astype(np.float32).T)
    bf16 = tmp_path / "bf16"
    bf16.mkdir()
    shutil.copy(FIXTURE / "config.json", bf16 / "config.json")
    _write_bf16_safetensors(bf16 / "model.safetensors", tensors)
    _, params = load_t5_encoder(bf16)
    expected = tensors[f"{ATTN}.k.weight"].astype(ml_dtypes.bfloat16).astype(np.float32).T
    np.testing.assert_array_equal(params["block_1"]["attention"]["key"]["kernel"], expected)
    assert params["block_1"]["attention"]["key"]["kernel"].dtype == np.float32


def test_malformed_files_give_clear_errors(tmp_path):
    good = (FIXTURE / "model.safetensors").read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated"):
        read_safetensors(tmp_path / "truncated.safetensors")
    (tmp_path / "lfs.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n"
                                              "oid sha256:abc\n")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors(tmp_path / "lfs.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="no header length"):
        read_safetensors(tmp_path / "tiny.safetensors")
    (tmp_path / "json.safetensors").write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_safetensors(tmp_path / "json.safetensors")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"no \.safetensors weights.*pytorch_model.bin"):
        read_safetensors_folder(empty)
    with pytest.raises(ValueError, match="config.json"):
        load_t5_encoder(empty)
