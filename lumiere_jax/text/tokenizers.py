"""Tokenizers: byte-level (offline default, no vocabulary file), word-level over a closed
vocabulary (short sequences for small synthetic datasets), and SentencePiece (T5).

Both return fixed-length, right-padded batches, so every batch has one shape (no
recompiles) and a caption's ids never depend on the other captions in its batch:

    ids, mask = ByteTokenizer(max_length=64).encode(["a cat", "a dog running"])
    # ids: (B, max_length) int32, mask: (B, max_length) bool, True on real tokens (EOS included)
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

PAD_ID = 0
EOS_ID = 1
UNK_ID = 2


class Tokenizer(Protocol):
    """What the text encoders and the embedding cache need from a tokenizer."""

    max_length: int
    vocab_size: int

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...


def _as_text_list(texts: Sequence[str] | np.ndarray | str) -> list[str]:
    """Accepts a list / tuple / 1-D array of `str` or UTF-8 `bytes` (as tf.data / TFDS yields)."""
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of captions, got a single "
                         f"{type(texts).__name__}; wrap it in a list: encode([caption])")
    if isinstance(texts, np.ndarray):
        if texts.ndim != 1:
            raise ValueError(f"texts must be 1-D (B,), got an array of shape {texts.shape}")
        texts = texts.tolist()
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, bytes):
            t = t.decode("utf-8")
        if not isinstance(t, str):
            raise ValueError(f"texts[{i}] must be str or bytes, got {type(t).__name__}")
        out.append(t)
    return out


def _pad_batch(rows: Iterable[list[int]], max_length: int,
               pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    rows = list(rows)
    ids = np.full((len(rows), max_length), pad_id, np.int32)
    mask = np.zeros((len(rows), max_length), bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = True
    return ids, mask


def _check_max_length(max_length: int) -> None:
    if not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"max_length must be an int >= 1, got {max_length!r}")


class ByteTokenizer:
    """UTF-8 bytes as tokens (ByT5 layout): pad 0, EOS 1, UNK 2, byte b -> b + 3; vocab 259.

    Captions longer than `max_length - 1` bytes are truncated; EOS is always the last real
    token, so the empty caption (the null / unconditional prompt) is one EOS token.
    """

    offset = 3
    vocab_size = 256 + offset
    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, UNK_ID

    def __init__(self, max_length: int = 64):
        _check_max_length(max_length)
        self.max_length = int(max_length)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """texts: B captions -> `ids (B, max_length) int32`, `mask (B, max_length) bool`."""
        rows = [[b + self.offset for b in t.encode("utf-8")[: self.max_length - 1]] + [self.eos_id]
                for t in _as_text_list(texts)]
        return _pad_batch(rows, self.max_length, self.pad_id)

    def decode(self, ids: np.ndarray) -> list[str]:
        """ids: (B, L) int -> B strings (stops at the first EOS; bytes split by truncation are
        replaced)."""
        out = []
        for row in np.asarray(ids).reshape(-1, np.shape(ids)[-1]):
            data = bytearray()
            for i in row.tolist():
                if i == self.eos_id:
                    break
                if i >= self.offset:
                    data.append(i - self.offset)
            out.append(data.decode("utf-8", errors="replace"))
        return out


class WordTokenizer:
    """Whole words of a closed vocabulary as tokens: pad 0, EOS 1, UNK 2, `vocab[i]` -> i + 3.

    Text is lower-cased and split on anything that is not a letter or digit, so "Left," and
    "left" are one token; a word outside the vocabulary becomes UNK. Every vocabulary word
    keeps its own id (no sub-word merging), so captions that differ in one word ("left" /
    "right") always differ in one token, and a caption of N words is N + 1 tokens long.
    """

    offset = 3
    pad_id, eos_id, unk_id = PAD_ID, EOS_ID, UNK_ID

    def __init__(self, vocab: Sequence[str], max_length: int = 32):
        _check_max_length(max_length)
        words = [str(w).lower() for w in vocab]
        bad = [w for w in words if not re.fullmatch(r"[a-z0-9]+", w)]
        if not words or bad or len(set(words)) != len(words):
            raise ValueError("vocab must be a non-empty list of distinct "
                             "words of letters / digits; "
                             f"got {len(words)} entries" + (f", invalid: {bad[:5]}" if bad else
                                                            ", with duplicates" if words else ""))
        self.vocab = tuple(words)
        self.vocab_size = len(words) + self.offset
        self.max_length = int(max_length)
        self._ids = {w: i + self.offset for i, w in enumerate(words)}

    def words(self, text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """texts: B captions -> `ids (B, max_length) int32`, `mask (B, max_length) bool`."""
        rows = [[self._ids.get(w, self.unk_id) for w in self.words(t)][: self.max_length - 1]
                + [self.eos_id] for t in _as_text_list(texts)]
        return _pad_batch(rows, self.max_length, self.pad_id)

    def decode(self, ids: np.ndarray) -> list[str]:
        """ids: (B, L) int -> B strings of words (stops at the first EOS; UNK -> '<unk>')."""
        out = []
        for row in np.asarray(ids).reshape(-1, np.shape(ids)[-1]).tolist():
            words = []
            for i in row:
                if i == self.eos_id:
                    break
                if i == self.unk_id:
                    words.append("<unk>")
                elif i >= self.offset:
                    words.append(self.vocab[i - self.offset])
            out.append(" ".join(words))
        return out


class SentencePieceTokenizer:
    """A SentencePiece model (T5's `spiece.model`), encoded the way T5 is: pieces + EOS.

    Pieces are truncated to `max_length - 1` so EOS is always kept. The pad id is the
    model's own (0 for T5); a model trained without a pad piece pads with 0, which is
    harmless because padded positions are masked. A model without an EOS piece gets none.
    """

    def __init__(self, model_file: str | os.PathLike, max_length: int = 128):
        import sentencepiece as spm  # imported here: optional for the byte-level default

        _check_max_length(max_length)
        path = pathlib.Path(model_file)
        if path.is_dir():
            path = path / "spiece.model"
        if not path.is_file():
            raise ValueError(f"SentencePiece model not found: {str(path)!r}; pass the path of a "
                             "'spiece.model' file or of a folder that holds one")
        self.model_file = str(path)
        self.max_length = int(max_length)
        self._sp = spm.SentencePieceProcessor(model_file=self.model_file)
        self.vocab_size = int(self._sp.get_piece_size())
        self.pad_id = max(int(self._sp.pad_id()), 0)
        self.eos_id = int(self._sp.eos_id())

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """texts: B captions -> `ids (B, max_length) int32`, `mask (B, max_length) bool`."""
        eos = [self.eos_id] if self.eos_id >= 0 else []
        keep = self.max_length - len(eos)
        rows = [pieces[:keep] + eos for pieces in self._sp.encode(_as_text_list(texts))]
        return _pad_batch(rows, self.max_length, self.pad_id)

    def decode(self, ids: np.ndarray) -> list[str]:
        """ids: (B, L) int -> B strings (stops at the first EOS, skips padding)."""
        out = []
        for row in np.asarray(ids).reshape(-1, np.shape(ids)[-1]).tolist():
            if self.eos_id in row:
                row = row[: row.index(self.eos_id)]
            out.append(self._sp.decode([i for i in row if i != self.pad_id]))
        return out


def load_tokenizer(spiece_model: str | os.PathLike | None = None,
                   max_length: int = 64) -> ByteTokenizer | SentencePieceTokenizer:
    """`None` -> the offline `ByteTokenizer`; a `spiece.model` (or its folder) -> SentencePiece."""
    if spiece_model is None:
        return ByteTokenizer(max_length)
    return SentencePieceTokenizer(spiece_model, max_length)
