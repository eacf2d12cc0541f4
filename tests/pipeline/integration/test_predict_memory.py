"""Batch prediction of 10,000 texts stays under a host-memory budget (pytest-memray).

The budget was set from measurement (``pytest --memray`` prints the peak):
20.7 MiB at the high watermark for 10,000 news snippets with the default
model and batch size 512 (one batch's ids 8.7 MiB, per-text id arrays
4.4 MiB, the tokenizer's per-word cache ~3 MiB). 40 MiB, about twice that,
leaves room for allocator noise and still catches a predictor that
featurizes all texts before scoring (about 90 MiB of ids) or keeps every
batch's tensors alive.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch  # imported here, not inside the test: the first import would count

from reference_pipeline.config import ModelConfig
from reference_pipeline.data import LabelEncoder, clean
from reference_pipeline.model import TextClassifier, Tokenizer
from reference_pipeline.predict import Predictor

pytestmark = pytest.mark.ml

N_TEXTS = 10_000


@pytest.fixture(scope="module")
def texts(bbc_raw) -> list[str]:
    # News snippets: an article's title and opening, 80 words (a Made With ML
    # "title + description" row is about this long). Full articles only make
    # the test slower (memray traces every allocation), not the budget tighter.
    snippets = [" ".join(t.split()[:80]) for t in clean(bbc_raw, lowercase=False)["text"]]
    return list(itertools.islice(itertools.cycle(snippets), N_TEXTS))


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    cfg = ModelConfig()  # the default (benchmarked) size
    torch.manual_seed(0)
    model = TextClassifier(cfg.hash_buckets, cfg.embedding_dim, num_classes=5)
    tokenizer = Tokenizer(
        hash_buckets=cfg.hash_buckets,
        word_ngrams=cfg.word_ngrams,
        char_ngram_min=cfg.char_ngram_min,
        char_ngram_max=cfg.char_ngram_max,
        max_words=cfg.max_words,
    )
    encoder = LabelEncoder(["business", "entertainment", "politics", "sports", "tech"])
    return Predictor(model, tokenizer, encoder, batch_size=512)


@pytest.mark.limit_memory("40 MB")
def test_predicting_10k_texts_fits_the_memory_budget(predictor, texts):
    proba = predictor.predict_proba(texts)
    assert proba.shape == (N_TEXTS, 5)
    assert np.isfinite(proba).all()
