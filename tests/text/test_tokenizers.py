"""Byte-level and SentencePiece tokenizers: layout, truncation, padding, batch independence."""

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from lumiere_jax.text.tokenizers import ByteTokenizer, SentencePieceTokenizer, load_tokenizer


def test_byte_tokenizer_layout_by_hand():
    ids, mask = ByteTokenizer(max_length=6).encode(["ab", "", "é"])
    # 'a' = 97, 'b' = 98 -> +3; EOS = 1; pad = 0. 'é' is UTF-8 0xC3 0xA9 = 195, 169.
    np.testing.assert_array_equal(ids, [[100, 101, 1, 0, 0, 0],
                                        [1, 0, 0, 0, 0, 0],
                                        [198, 172, 1, 0, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0],
                                         [1, 1, 1, 0, 0, 0]])
    assert ids.dtype == np.int32 and mask.dtype == bool


def test_byte_tokenizer_truncates_and_keeps_eos():
    ids, mask = ByteTokenizer(max_length=4).encode(["abcdefgh"])
    np.testing.assert_array_equal(ids, [[100, 101, 102, 1]])
    assert mask.all()


def test_byte_tokenizer_rows_do_not_depend_on_batch():
    tok = ByteTokenizer(max_length=16)
    alone = tok.encode(["a cat"])
    batched = tok.encode(["a much longer caption than the first one", "a cat"])
    np.testing.assert_array_equal(alone[0][0], batched[0][1])
    np.testing.assert_array_equal(alone[1][0], batched[1][1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=4))
def test_byte_tokenizer_round_trip(texts):
    tok = ByteTokenizer(max_length=128)  # 20 chars <= 80 UTF-8 bytes: never truncated
    ids, mask = tok.encode(texts)
    assert tok.decode(ids) == texts
    np.testing.assert_array_equal(mask.sum(1), [len(t.encode("utf-8")) + 1 for t in texts])


def test_byte_tokenizer_accepts_bytes_and_arrays_rejects_bad_input():
    tok = ByteTokenizer(max_length=8)
    ref = tok.encode(["x y", "z"])[0]
    np.testing.assert_array_equal(tok.encode(np.array([b"x y", b"z"], dtype=object))[0], ref)
    np.testing.assert_array_equal(tok.encode(np.array(["x y", "z"]))[0], ref)
    with pytest.raises(ValueError, match="single str"):
        tok.encode("a caption")
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        tok.encode(["ok", 3])
    with pytest.raises(ValueError, match="max_length"):
        ByteTokenizer(max_length=0)


CORPUS = ["a red ball bounces on the floor", "a blue square moves to the left",
          "two circles orbit each other slowly", "the camera pans over a green field",
          "a small dog runs across the yard"] * 20


@pytest.fixture(scope="module")
def spiece_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spiece")
    (folder / "corpus.txt").write_text("\n".join(CORPUS))
    # T5's special-token layout: pad 0, EOS 1, UNK 2, no BOS.
    spm.SentencePieceTrainer.train(
        input=str(folder / "corpus.txt"), model_prefix=str(folder / "spiece"), vocab_size=64,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False,
        minloglevel=2)
    return folder / "spiece.model"


def test_sentencepiece_matches_processor_plus_eos(spiece_model):
    sp = spm.SentencePieceProcessor(model_file=str(spiece_model))
    tok = SentencePieceTokenizer(spiece_model, max_length=24)
    texts = ["a red ball moves", "", "two dogs orbit the field"]
    ids, mask = tok.encode(texts)
    assert ids.shape == (3, 24) and tok.eos_id == 1 and tok.pad_id == 0
    for row, m, text in zip(ids, mask, texts):
        expected = sp.encode(text) + [1]
        np.testing.assert_array_equal(row[: len(expected)], expected)
        assert (row[len(expected):] == 0).all()
        np.testing.assert_array_equal(m, np.arange(24) < len(expected))
    assert tok.decode(ids) == texts


def test_sentencepiece_truncation_keeps_eos_and_folder_loading(spiece_model):
    tok = load_tokenizer(spiece_model.parent, max_length=4)  # a folder holding spiece.model
    assert isinstance(tok, SentencePieceTokenizer)
    ids, mask = tok.encode(["a red ball bounces on the floor"])
    sp = spm.SentencePieceProcessor(model_file=str(spiece_model))
    np.testing.assert_array_equal(ids[0], sp.encode("a red ball bounces on the floor")[:3] + [1])
    assert mask.all()
    assert isinstance(load_tokenizer(None, max_length=8), ByteTokenizer)
    with pytest.raises(ValueError, match="spiece.model"):
        SentencePieceTokenizer(spiece_model.parent / "missing")


def test_word_tokenizer_layout_by_hand():
    from lumiere_jax.text import WordTokenizer
    tok = WordTokenizer(["a", "red", "circle", "left"], max_length=6)
    assert tok.vocab_size == 7
    ids, mask = tok.encode(["A red, circle LEFT", "a blue circle", ""])
    np.testing.assert_array_equal(ids, [[3, 4, 5, 6, 1, 0], [3, 2, 5, 1, 0, 0],
                                        [1, 0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, ids != 0)
    assert tok.decode(ids) == ["a red circle left", "a <unk> circle", ""]
    ids, mask = tok.encode(["a a a a a a a a"])  # truncated, EOS kept
    np.testing.assert_array_equal(ids, [[3, 3, 3, 3, 3, 1]])


def test_word_tokenizer_keeps_direction_words_apart_and_rejects_bad_vocab():
    from lumiere_jax.data.moving_shapes import caption_vocabulary
    from lumiere_jax.text import WordTokenizer
    tok = WordTokenizer(caption_vocabulary(), max_length=32)
    a, _ = tok.encode(["a red circle moving left"])
    b, _ = tok.encode(["a red circle moving right"])
    assert int((a != b).sum()) == 1 and tok.unk_id not in a
    for bad in ([], ["a", "a"], ["two words"]):
        with pytest.raises(ValueError, match="vocab"):
            WordTokenizer(bad)
