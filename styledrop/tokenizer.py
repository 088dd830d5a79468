"""A CLIP tokenizer built from the BPE vocabulary that open_clip ships inside its wheel.

The offline presets need a real tokenizer (prompts must map to the same ids as aMUSEd's CLIP text encoder)
without touching the network, so we rebuild the exact vocabulary and merges of OpenAI's CLIP from
open_clip's `bpe_simple_vocab_16e6.txt.gz`, the same construction open_clip's SimpleTokenizer uses.
"""

from __future__ import annotations

import functools
import gzip
import os

from transformers import CLIPTokenizer

CLIP_MAX_LENGTH = 77
_NUM_MERGES = 49152 - 256 - 2


@functools.lru_cache(maxsize=1)
def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")[1 : _NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges  # type: ignore[return-value]


def clip_tokenizer() -> CLIPTokenizer:
    """Return a fresh CLIPTokenizer with OpenAI CLIP's 49,408-token vocabulary (no network)."""
    vocab, merges = _vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=CLIP_MAX_LENGTH)
