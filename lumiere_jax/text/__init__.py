"""Text conditioning: tokenizers, a small trainable encoder, a Flax T5 encoder + HF weight
converter, and a per-caption embedding cache with the null (unconditional) embedding."""

from lumiere_jax.text.cache import (EmbeddingCache, build_embedding_cache, drop_to_null,
                                    make_encode_fn, null_embedding)
from lumiere_jax.text.encoder import TextEncoder, TextEncoderConfig
from lumiere_jax.text.t5 import T5Config, T5Encoder, relative_position_bucket
from lumiere_jax.text.t5_weights import (convert_t5_weights, load_t5_encoder, read_safetensors,
                                         read_safetensors_folder)
from lumiere_jax.text.tokenizers import (ByteTokenizer, SentencePieceTokenizer, Tokenizer,
                                         WordTokenizer, load_tokenizer)

__all__ = [
    "ByteTokenizer", "EmbeddingCache", "SentencePieceTokenizer", "T5Config", "T5Encoder",
    "TextEncoder", "TextEncoderConfig", "Tokenizer", "WordTokenizer", "build_embedding_cache",
    "convert_t5_weights",
    "drop_to_null", "load_t5_encoder", "load_tokenizer", "make_encode_fn", "null_embedding",
    "read_safetensors", "read_safetensors_folder", "relative_position_bucket",
]
