"""Model checks on the fastText-style classifier, with mltest.model.

The batch is real: eight BBC articles featurized by the pipeline's tokenizer,
so the checks exercise the (ids, offsets) input the training loop feeds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reference_pipeline.data import LabelEncoder
from reference_pipeline.model import TextClassifier, Tokenizer, build_model, collate
from reference_pipeline.predict import PredictError, Predictor

pytestmark = pytest.mark.model

BUCKETS = 2048


@pytest.fixture(scope="module")
def batch(small_splits):
    rows = small_splits.train.groupby("tag").head(2).head(8)
    tokenizer = Tokenizer(hash_buckets=BUCKETS, max_words=60)
    ids, offsets = tokenizer(list(rows["text"]))
    labels = torch.as_tensor(LabelEncoder().fit(small_splits.train["tag"]).encode(rows["tag"]))
    return ids, offsets, labels


def adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=0.05)


def test_classifier_passes_the_model_checks(model_checker, batch):
    model = TextClassifier(hash_buckets=BUCKETS, embedding_dim=16, num_classes=5, dropout=0.2)
    report = model_checker(
        model,
        batch,
        nn.CrossEntropyLoss(),
        adam,
        output_shape=(8, 5),
        output_dtype=torch.float32,
        # An EmbeddingBag row only trains when its n-gram occurs in the batch;
        # the gradient checks skip rows by design, not parameters.
        overfit_steps=100,
    )
    assert "overfit_batch" in report.passed
    assert "parameters_update" in report.passed


def test_examples_are_independent_of_their_batch(batch):
    # Batch independence for a packed (ids, offsets) input: scoring each text
    # alone gives the same logits as scoring the batch.
    ids, offsets, _ = batch
    model = TextClassifier(BUCKETS, 16, 5).eval()
    with torch.no_grad():
        together = model(ids, offsets)
        ends = [*offsets[1:].tolist(), len(ids)]
        alone = torch.cat(
            [
                model(ids[s:e], torch.tensor([0]))
                for s, e in zip(offsets.tolist(), ends, strict=True)
            ]
        )
    torch.testing.assert_close(together, alone)


def test_an_empty_text_gets_finite_logits():
    model = TextClassifier(BUCKETS, 8, 3).eval()
    ids, offsets = collate([torch.tensor([], dtype=torch.int64), torch.tensor([5, 6])])
    logits = model(ids, offsets)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()


def test_model_rebuilds_from_its_args():
    model = TextClassifier(BUCKETS, 8, 3, dropout=0.1)
    clone = build_model(model.args)
    clone.load_state_dict(model.state_dict())
    ids, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 2])
    torch.testing.assert_close(model.eval()(ids, offsets), clone.eval()(ids, offsets))


# --- the trained predictor -----------------------------------------------------


def test_predictor_loads_the_artefacts_and_learns_the_topics(trained_dir, small_splits):
    predictor = Predictor.load(trained_dir)
    assert predictor.labels == ["business", "entertainment", "politics", "sports", "tech"]
    texts = list(small_splits.test["text"])
    proba = predictor.predict_proba(texts)
    assert proba.shape == (len(texts), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = np.mean(np.array(predictor.predict(texts)) == small_splits.test["tag"].to_numpy())
    # 40 articles a topic and 4 epochs: far above the 0.2 of guessing.
    assert accuracy > 0.6


def test_predictions_do_not_depend_on_batch_size(trained_dir, small_splits):
    texts = list(small_splits.val["text"])
    big = Predictor.load(trained_dir, batch_size=512).predict_proba(texts)
    small = Predictor.load(trained_dir, batch_size=7).predict_proba(texts)
    np.testing.assert_allclose(big, small, rtol=1e-5, atol=1e-6)


def test_predictor_cleans_raw_text_like_training(trained_dir):
    predictor = Predictor.load(trained_dir)
    raw = predictor.predict_proba(["<p>Shares  FELL at the BANK</p> https://x.io"])
    cleaned = predictor.predict_proba(["shares fell at the bank"])
    np.testing.assert_allclose(raw, cleaned)


def test_model_file_loads_with_weights_only(trained_dir):
    saved = torch.load(trained_dir / "model.pt", weights_only=True)
    assert set(saved) >= {"model_args", "state_dict", "tokenizer", "preprocess", "classes"}


def test_predictor_input_errors(trained_dir, tmp_path):
    predictor = Predictor.load(trained_dir)
    assert predictor.predict([]) == []
    with pytest.raises(
        PredictError, match=r"^texts must be a list of strings, not a single string$"
    ):
        predictor.predict("one text")
    with pytest.raises(PredictError, match=r"^texts\[1\] is int, expected str$"):
        predictor.predict(["ok", 3])
    # A JSON escape ("\udce9") or undecodable bytes read with surrogateescape: no text.
    with pytest.raises(
        PredictError,
        match=r"^texts\[1\] holds a lone surrogate \(U\+DCE9 at character 3\): "
        r"not valid Unicode text; send UTF-8$",
    ):
        predictor.predict(["ok", "caf\udce9 bar"])
    assert predictor.predict(["café bar"]) == predictor.predict(["café bar"])  # real text is fine
    with pytest.raises(PredictError, match=r"model\.pt: not found; train the model first$"):
        Predictor.load(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(PredictError, match=r"model\.pt: not a trained model file"):
        Predictor.load(tmp_path)
