"""Embedding cache: rows equal the encoder run on each caption alone; null embedding; file round
trip."""

import jax
import numpy as np
import pytest

from lumiere_jax.text.cache import (EmbeddingCache, build_embedding_cache, drop_to_null,
                                    make_encode_fn, null_embedding)
from lumiere_jax.text.encoder import TextEncoder, TextEncoderConfig
from lumiere_jax.text.tokenizers import ByteTokenizer

CAPTIONS = ["a red ball", "a blue square", "a red ball", "", "two circles", "a dog", "a cat"]
BATCH = 4


@pytest.fixture(scope="module")
def encoder():
    config = TextEncoderConfig(max_length=12, width=16, depth=1, num_heads=2, mlp_ratio=2)
    tokenizer = ByteTokenizer(config.max_length)
    module = TextEncoder(config)
    variables = jax.jit(module.init)(jax.random.key(0), *tokenizer.encode(["x"] * BATCH))
    apply = jax.jit(lambda p, ids, mask: module.apply({"params": p}, ids, mask))
    params = jax.tree.map(np.asarray, variables["params"])
    calls = []

    def reference(captions):  # the encoder itself, one caption at a time via a batch of BATCH
        ids, mask = tokenizer.encode(list(captions) + [""] * (BATCH - len(captions)))
        states, mask = apply(params, ids, mask)
        return np.asarray(states)[: len(captions)], np.asarray(mask)[: len(captions)]

    encode = make_encode_fn(module, variables["params"], tokenizer)  # boxed params are fine

    def counting(captions):
        calls.append(len(captions))
        return encode(captions)

    return counting, reference, calls


@pytest.fixture(scope="module")
def cache(encoder, tmp_path_factory):
    encode, _, calls = encoder
    calls.clear()
    path = tmp_path_factory.mktemp("cache") / "emb.safetensors"
    built = build_embedding_cache(encode, np.array(CAPTIONS), path, batch_size=BATCH)
    return built, path, list(calls)


def test_rows_match_encoder_and_batches_have_one_shape(encoder, cache):
    _, reference, _ = encoder
    built, _, calls = cache
    assert built.captions == ("a red ball", "a blue square", "two circles", "a dog", "a cat")
    assert calls == [BATCH] * 3  # null + 5 captions in 2 batches, one shape: one compile
    for caption in built.captions:
        states, mask = built.lookup([caption])
        ref_states, ref_mask = reference([caption])
        np.testing.assert_allclose(states, ref_states, atol=1e-6)
        np.testing.assert_array_equal(mask, ref_mask)


def test_null_embedding_is_the_empty_caption(encoder, cache):
    encode, reference, _ = encoder
    built, _, _ = cache
    ref_states, ref_mask = reference([""])
    states, mask = null_embedding(encode, batch_size=3)
    assert states.shape == (3, 12, 16) and mask.shape == (3, 12)
    np.testing.assert_allclose(states, np.repeat(ref_states, 3, 0), atol=1e-6)
    np.testing.assert_array_equal(mask[0], np.arange(12) < 1)  # just EOS
    np.testing.assert_allclose(built.null(2)[0], np.repeat(ref_states, 2, 0), atol=1e-6)
    np.testing.assert_allclose(built.lookup(["", "a dog"])[0][0], ref_states[0], atol=1e-6)


def test_file_round_trip_and_bytes_lookup(cache):
    built, path, _ = cache
    loaded = EmbeddingCache.load(path)
    assert loaded.captions == built.captions and len(loaded) == 5 and "a cat" in loaded
    batch = np.array([b"a cat", b"", b"a red ball"], dtype=object)  # as a data pipeline yields
    for got, want in zip(loaded.lookup(batch), built.lookup(["a cat", "", "a red ball"])):
        np.testing.assert_array_equal(got, want)
    states, _ = loaded.lookup(["a cat"])
    states[:] = 0  # lookups are copies, never views of the memory-mapped file
    assert np.abs(loaded.lookup(["a cat"])[0]).max() > 0


def test_unknown_caption_and_bad_files(cache, tmp_path):
    built, _, _ = cache
    with pytest.raises(ValueError, match="not in the embedding cache.*a horse"):
        built.lookup(["a cat", "a horse"])
    from safetensors.numpy import save_file
    save_file({"states": np.zeros((1, 2, 3), np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an embedding cache"):
        EmbeddingCache.load(tmp_path / "other.safetensors")


def test_float16_storage(encoder, tmp_path):
    encode, reference, _ = encoder
    built = build_embedding_cache(encode, ["a dog"], tmp_path / "h.safetensors", batch_size=BATCH,
                                  dtype=np.float16)
    loaded = EmbeddingCache.load(tmp_path / "h.safetensors")
    assert loaded.states.dtype == np.float16
    np.testing.assert_allclose(loaded.lookup(["a dog"])[0], reference(["a dog"])[0],
                               atol=2e-3, rtol=2e-3)
    with pytest.raises(ValueError, match="float32 or float16"):
        build_embedding_cache(encode, ["a"], dtype=np.int8)


def test_drop_to_null():
    states = np.random.default_rng(0).standard_normal((64, 5, 3)).astype(np.float32)
    mask = np.ones((64, 5), bool)
    null_s, null_m = np.full((5, 3), 7.0, np.float32), np.arange(5) < 1
    key = jax.random.key(0)
    kept = drop_to_null(states, mask, null_s, null_m, key, 0.0)
    np.testing.assert_array_equal(kept[0], states)
    dropped = drop_to_null(states, mask, null_s, null_m, key, 1.0)
    np.testing.assert_array_equal(dropped[0], np.broadcast_to(null_s, states.shape))
    np.testing.assert_array_equal(dropped[1], np.broadcast_to(null_m, mask.shape))
    s, m = jax.jit(drop_to_null)(states, mask, null_s, null_m, key, 0.5)
    is_null = np.all(np.asarray(s) == 7.0, axis=(1, 2))
    np.testing.assert_array_equal(np.asarray(s)[~is_null], states[~is_null])
    np.testing.assert_array_equal(np.asarray(m)[is_null],
                                  np.broadcast_to(null_m, (is_null.sum(), 5)))
    assert 16 < is_null.sum() < 48
    # group=1 is one Bernoulli draw per row; group=2 keeps or drops each pair together
    np.testing.assert_array_equal(is_null, np.asarray(jax.random.bernoulli(key, 0.5, (64,))))
    s2, _ = drop_to_null(states, mask, null_s, null_m, key, 0.5, group=2)
    paired = np.all(np.asarray(s2) == 7.0, axis=(1, 2))
    np.testing.assert_array_equal(paired[0::2], paired[1::2])
    assert 0 < paired.sum() < 64
    with pytest.raises(ValueError, match="group=3 must be >= 1 and divide the batch 64"):
        drop_to_null(states, mask, null_s, null_m, key, 0.5, group=3)


def test_t5_path_with_sentencepiece(tmp_path):
    """The T5 route end to end: HF weights folder + a spiece.model -> cached embeddings."""
    import pathlib

    import sentencepiece as spm

    from lumiere_jax.text.t5_weights import load_t5_encoder
    from lumiere_jax.text.tokenizers import load_tokenizer

    (tmp_path / "corpus.txt").write_text("\n".join(["a red ball bounces", "a blue cube spins",
                                                    "two dogs run on grass"] * 30))
    spm.SentencePieceTrainer.train(input=str(tmp_path / "corpus.txt"),
                                   model_prefix=str(tmp_path / "spiece"),
                                   vocab_size=40, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, minloglevel=2)
    fixture = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "t5_tiny"
    t5, params = load_t5_encoder(fixture)
    tokenizer = load_tokenizer(tmp_path, max_length=10)
    encode = make_encode_fn(t5, params, tokenizer)
    built = build_embedding_cache(encode, ["a red ball", "two dogs"], batch_size=2)
    ids, mask = tokenizer.encode(["two dogs"])
    ref, _ = jax.jit(t5.apply)({"params": params}, ids, mask)
    np.testing.assert_allclose(built.lookup(["two dogs"])[0], ref, atol=1e-5)
    with pytest.raises(ValueError, match="vocab_size 259 exceeds"):
        make_encode_fn(t5, params, ByteTokenizer(10))  # byte ids do not fit T5's 128-token table
