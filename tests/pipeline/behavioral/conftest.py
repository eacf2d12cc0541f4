"""The model under behavioural test: the real classifier trained on a BBC News subset.

100 articles per topic, 8 epochs, a 32k-row hash table: about 4 s on two CPU
cores and a test macro-F1 near 0.93, good enough for the capabilities below
to be meaningful and fast enough for every CI run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROWS_PER_TOPIC = 100


@pytest.fixture(scope="session")
def bbc_small_splits() -> Any:
    """Cleaned, stratified splits of ``ROWS_PER_TOPIC`` BBC articles per topic.

    Example:
        >>> def test_sizes(bbc_small_splits):  # doctest: +SKIP
        ...     assert len(bbc_small_splits.test) == 75
    """
    from reference_pipeline.data import clean, load_dataset, split, subsample

    df = subsample(clean(load_dataset(), lowercase=True), ROWS_PER_TOPIC, seed=0)
    return split(df, val_size=0.15, test_size=0.15, seed=0)


@pytest.fixture(scope="session")
def behavioral_model(bbc_small_splits: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A :class:`~reference_pipeline.predict.Predictor` loaded from a fresh training run.

    The default model fixture of ``*.behavioral.yaml`` suites.

    Example:
        >>> def test_sport(behavioral_model):  # doctest: +SKIP
        ...     assert behavioral_model.predict(["chelsea won the cup"]) == ["sports"]
    """
    from reference_pipeline.config import DataConfig, ModelConfig, Params, TrainConfig
    from reference_pipeline.predict import Predictor
    from reference_pipeline.train import train

    params = Params(
        data=DataConfig(max_rows_per_label=ROWS_PER_TOPIC),
        model=ModelConfig(embedding_dim=32, hash_buckets=2**15, char_ngram_max=4, max_words=200),
        train=TrainConfig(
            epochs=8, patience=8, lr=0.02, device="cpu", dvclive=False, num_threads=1
        ),
    )
    out: Path = tmp_path_factory.mktemp("behavioral_model")
    train(params, bbc_small_splits.train, bbc_small_splits.val, out, progress=False)
    return Predictor.load(out)
