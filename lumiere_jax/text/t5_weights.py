"""Hugging Face T5 `safetensors` -> `T5Encoder` params, with no PyTorch at run time.

    encoder, params = load_t5_encoder("/models/t5-v1_1-xxl")     # config.json + *.safetensors
    states, mask = encoder.apply({"params": params}, ids, mask)

Reads `model.safetensors`, or the shards named by `model.safetensors.index.json`, through a
small header parser and `np.memmap` (float32 / float16 / bfloat16 / ...; never pickles).
Encoder weights of a full encoder-decoder checkpoint load too; decoder tensors are ignored.
Every missing, mis-shaped or unexpected encoder tensor is named in one `ValueError`.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import ml_dtypes
import numpy as np

from lumiere_jax.text.t5 import T5Config, T5Encoder

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "U16": np.uint16, "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_,
}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A `.safetensors` file -> {name: read-only memory-mapped array}. Validates the header."""
    path = pathlib.Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, no header length)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise ValueError(f"{path}: not a safetensors file (header length {header_len} > file "
                             f"size {size}); is it a PyTorch .bin or a Git LFS pointer?")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header must be a JSON object")
    header.pop("__metadata__", None)
    data_start, data_len = 8 + header_len, size - 8 - header_len
    out = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {info!r}; "
                             f"supported dtypes: {sorted(_DTYPES)}") from None
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not 0 <= begin <= end <= data_len or end - begin != nbytes:
            raise ValueError(f"{path}: tensor {name!r} ({info['dtype']} {list(shape)}) has data "
                             f"offsets [{begin}, {end}) that do not fit its {nbytes} bytes inside "
                             f"the {data_len}-byte data section (truncated file?)")
        if nbytes == 0:
            out[name] = np.zeros(shape, dtype)
        else:
            out[name] = np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin,
                                  shape=shape)
    return out


def read_safetensors_folder(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """All tensors of a Hugging Face weights folder: `model.safetensors`, the shards listed in
    `model.safetensors.index.json`, or else every `*.safetensors` file in it."""
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise ValueError(f"T5 weights folder not found: {str(folder)!r}")
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index}: no 'weight_map' object")
        files = sorted(set(weight_map.values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        files = sorted(p.name for p in folder.glob("*.safetensors"))
    if not files:
        found = sorted(p.name for p in folder.iterdir())
        raise ValueError(f"no .safetensors weights in {str(folder)!r} (found {found}); convert a "
                         "PyTorch checkpoint once with "
                         "`save_pretrained(..., safe_serialization=True)`")
    tensors: dict[str, np.ndarray] = {}
    for name in files:
        if not (folder / name).is_file():
            raise ValueError(f"{index}: shard {name!r} is listed but missing from {str(folder)!r}")
        tensors.update(read_safetensors(folder / name))
    return tensors


def _expected_tensors(config: T5Config) -> dict[str, tuple[tuple[int, ...], tuple[str, ...], bool]]:
    """HF name -> (HF shape, our param path, transpose)."""
    c = config
    inner = c.num_heads * c.d_kv
    out = {
        "encoder.embed_tokens.weight": ((c.vocab_size, c.d_model),
                                        ("token_embedding", "embedding"), False),
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": (
            (c.relative_attention_num_buckets, c.num_heads),
            ("relative_attention_bias", "embedding"), False),
        "encoder.final_layer_norm.weight": ((c.d_model,), ("final_norm", "scale"), False),
    }
    ffn = ["wi_0", "wi_1", "wo"] if c.is_gated else ["wi", "wo"]
    for i in range(c.num_layers):
        hf, ours = f"encoder.block.{i}.layer.", f"block_{i}"
        for a, b, shape in (("q", "query", (inner, c.d_model)), ("k", "key", (inner, c.d_model)),
                            ("v", "value", (inner, c.d_model)), ("o", "out", (c.d_model, inner))):
            out[f"{hf}0.SelfAttention.{a}.weight"] = (shape, (ours, "attention", b, "kernel"), True)
        out[f"{hf}0.layer_norm.weight"] = ((c.d_model,), (ours, "attention_norm", "scale"), False)
        for w in ffn:
            shape = (c.d_model, c.d_ff) if w == "wo" else (c.d_ff, c.d_model)
            out[f"{hf}1.DenseReluDense.{w}.weight"] = (shape, (ours, "mlp", w, "kernel"), True)
        out[f"{hf}1.layer_norm.weight"] = ((c.d_model,), (ours, "mlp_norm", "scale"), False)
    return out


def _listing(items: list[str], limit: int = 20) -> str:
    shown = "\n  ".join(items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {shown}{more}"


def convert_t5_weights(tensors: Mapping[str, Any], config: T5Config,
                       dtype: Any = jnp.float32) -> dict[str, Any]:
    """HF T5 tensors ({name: array}, PyTorch `(out, in)` linear layout) -> `T5Encoder` params.

    Linear weights are transposed to Flax `(in, out)` kernels and cast to `dtype`. The token
    table is `encoder.embed_tokens.weight` or, when tied and saved once, `shared.weight`.
    Raises one `ValueError` naming every missing / mis-shaped / unexpected encoder tensor.
    """
    tensors = dict(tensors)
    if "encoder.embed_tokens.weight" not in tensors and "shared.weight" in tensors:
        tensors["encoder.embed_tokens.weight"] = tensors["shared.weight"]
    expected = _expected_tensors(config)
    missing = [n for n in expected if n not in tensors]
    misshaped = [f"{n}: expected {list(expected[n][0])}, got {list(np.shape(tensors[n]))}"
                 for n in expected
                 if n in tensors and tuple(np.shape(tensors[n])) != expected[n][0]]
    unexpected = sorted(n for n in tensors if n.startswith("encoder.") and n not in expected)
    if missing or misshaped or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors ({len(missing)}):{_listing(missing)}")
        if misshaped:
            parts.append(f"mis-shaped tensors ({len(misshaped)}):{_listing(misshaped)}")
        if unexpected:
            parts.append(f"unexpected encoder tensors ({len(unexpected)}):{_listing(unexpected)}")
        raise ValueError(
            f"T5 weights do not match T5Config(d_model={config.d_model}, num_layers="
            f"{config.num_layers}, num_heads={config.num_heads}, d_kv={config.d_kv}, d_ff="
            f"{config.d_ff}, vocab_size={config.vocab_size}, feed_forward_proj="
            f"{config.feed_forward_proj!r}); is config.json the one saved with these weights?\n"
            + "\n".join(parts))
    params: dict[str, Any] = {}
    for name, (_, path, transpose) in expected.items():
        value = np.asarray(tensors[name])
        value = (value.T if transpose else value).astype(dtype)
        node = params
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return params


def load_t5_encoder(folder: str | os.PathLike, *, config: T5Config | None = None,
                    dtype: Any = jnp.float32, param_dtype: Any = jnp.float32,
                    precision: Any = None) -> tuple[T5Encoder, dict[str, Any]]:
    """A Hugging Face T5 folder (`config.json` + safetensors) -> `(T5Encoder, params)`.

    `config` overrides `config.json`. `dtype` is the compute dtype, `param_dtype` the
    storage dtype of the returned (host NumPy) params; use `{"params": params}` in `apply`.
    """
    folder = pathlib.Path(folder)
    config = config if config is not None else T5Config.from_hf(folder)
    params = convert_t5_weights(read_safetensors_folder(folder), config, dtype=param_dtype)
    return T5Encoder(config, dtype=dtype, param_dtype=param_dtype, precision=precision), params
