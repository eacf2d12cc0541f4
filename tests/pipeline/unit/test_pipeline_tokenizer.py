"""Unit tests of the hashing featurizer (reference_pipeline.model.Tokenizer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib

import pytest
import torch

from reference_pipeline.model import Tokenizer, collate

TEXTS = ["Shares in Yukos fell 20% on Monday.", "The striker scored twice", ""]


def test_same_text_same_ids_in_one_process():
    tok = Tokenizer()
    assert tok.encode(TEXTS[0]) == Tokenizer().encode(TEXTS[0])


def test_ids_do_not_depend_on_python_hash_seed():
    # Python's hash() is salted per process; the tokenizer must not use it.
    code = (
        "import json, sys; from reference_pipeline.model import Tokenizer; "
        "print(json.dumps(Tokenizer().encode(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code, TEXTS[0]],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout) == Tokenizer().encode(TEXTS[0])


def test_ids_are_crc32_of_the_tagged_ngram():
    # Pinned: a change here silently breaks every saved model's features.
    buckets, prime = 2**20, 2**31 - 1
    yukos, fell = zlib.crc32(b"w yukos"), zlib.crc32(b"w fell")
    bigram = ((yukos % prime) * 1_000_003 + fell) % prime
    tok = Tokenizer(hash_buckets=buckets, word_ngrams=2, char_ngram_max=0)
    assert tok.encode("yukos fell") == [
        yukos % buckets,
        fell % buckets,
        (bigram + 2 * 2_654_435_761) % buckets,
    ]
    with_chars = Tokenizer(hash_buckets=buckets, word_ngrams=1, char_ngram_min=3, char_ngram_max=3)
    assert with_chars.encode("ab") == [
        zlib.crc32(b"w ab") % buckets,
        zlib.crc32(b"c <ab") % buckets,
        zlib.crc32(b"c ab>") % buckets,
    ]


def test_ids_are_in_the_bucket_range():
    tok = Tokenizer(hash_buckets=97)
    ids = tok.encode(" ".join(TEXTS))
    assert ids
    assert min(ids) >= 0
    assert max(ids) < 97


def test_feature_counts_follow_the_settings():
    words = Tokenizer().words("a bb ccc")
    assert words == ["a", "bb", "ccc"]
    assert len(Tokenizer(word_ngrams=1, char_ngram_max=0).encode("a bb ccc")) == 3
    assert len(Tokenizer(word_ngrams=3, char_ngram_max=0).encode("a bb ccc")) == 3 + 2 + 1
    # "<bb>" has 2 trigrams and 1 four-gram; "<a>" has one trigram.
    assert len(Tokenizer(word_ngrams=1, char_ngram_min=3, char_ngram_max=4).encode("a bb")) == (
        2 + 1 + 2 + 1
    )


def test_max_words_truncates():
    tok = Tokenizer(word_ngrams=1, char_ngram_max=0, max_words=2)
    assert tok.encode("one two three") == tok.encode("one two")


def test_empty_text_gives_an_empty_bag():
    ids, offsets = Tokenizer()(["", "word"])
    assert offsets.tolist() == [0, 0]
    assert len(ids) > 0


def test_collate_offsets():
    ids, offsets = collate(
        [torch.tensor([1, 2, 3]), torch.tensor([], dtype=torch.int64), torch.tensor([4])]
    )
    assert ids.tolist() == [1, 2, 3, 4]
    assert offsets.tolist() == [0, 3, 3]
    assert ids.dtype == offsets.dtype == torch.int64


def test_settings_round_trip():
    tok = Tokenizer(hash_buckets=10, word_ngrams=1, char_ngram_min=2, char_ngram_max=3, max_words=5)
    assert Tokenizer.from_dict(json.loads(json.dumps(tok.to_dict()))) == tok


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hash_buckets": 0}, "hash_buckets must be >= 1, got 0"),
        ({"word_ngrams": 0}, "word_ngrams must be >= 1, got 0"),
        ({"char_ngram_min": 4, "char_ngram_max": 3}, "char n-gram range 4..3 is empty"),
    ],
)
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Tokenizer(**kwargs)
