"""Tuning: two tiny trials in a SQLite study under tmp_path; settings are validated."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from reference_pipeline.cli import app
from reference_pipeline.config import Params
from reference_pipeline.tune import TuneConfig, TuneError, default_storage, tune

WORDS = {
    "sport": ["goal", "match", "striker", "cup", "league", "coach"],
    "business": ["shares", "profit", "bank", "market", "deal", "prices"],
}


def _frame(n_per_tag: int, offset: int) -> pd.DataFrame:
    rows = []
    for tag, words in WORDS.items():
        for i in range(n_per_tag):
            picked = [words[(i + j + offset) % len(words)] for j in range(3)]
            rows.append({"text": " ".join(picked) + f" item{i}", "tag": tag})
    return pd.DataFrame(rows)


def _tiny_params() -> Params:
    return Params.from_dict(
        {
            "model": {"hash_buckets": 512, "char_ngram_max": 0},
            "train": {"device": "cpu", "batch_size": 8},
        }
    )


def _tiny_settings(storage: str) -> TuneConfig:
    return TuneConfig(
        n_trials=2,
        storage=storage,
        embedding_dims=[8, 16],
        min_epochs=1,
        max_epochs=2,
        study_name="tiny",
    )


@pytest.mark.ml
def test_two_trials_in_sqlite_write_best_params(tmp_path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    storage = default_storage(tmp_path / "tune")
    seen: list[tuple[int, int, float]] = []
    result = tune(
        _tiny_params(),
        _frame(12, 0),
        _frame(4, 1),
        tmp_path / "tune",
        _tiny_settings(storage),
        epoch_callback=lambda trial, epoch, f1: seen.append((trial, epoch, f1)),
    )
    assert (tmp_path / "tune" / "optuna.db").is_file()
    on_disk = json.loads((tmp_path / "tune" / "best_params.json").read_text())
    assert on_disk == result
    assert result["n_trials"] == 2
    assert set(result["best_params"]) == {"lr", "embedding_dim", "dropout", "word_ngrams", "epochs"}
    assert set(result["overrides"]) == {
        "train.lr",
        "model.embedding_dim",
        "model.dropout",
        "model.word_ngrams",
        "train.epochs",
    }
    assert result["best_params"]["embedding_dim"] in (8, 16)
    # Every epoch was reported to the trial (what the pruner reads) and to the callback.
    study = optuna.load_study(study_name="tiny", storage=storage)
    reported = [(t.number, e, v) for t in study.trials for e, v in t.intermediate_values.items()]
    assert sorted(reported) == sorted(seen)
    assert result["epochs_trained"] == len(seen)
    assert {t.number for t in study.trials} == {0, 1}
    assert result["best_value"] == max(max(t.intermediate_values.values()) for t in study.trials)


@pytest.mark.ml
def test_same_storage_and_name_extend_the_study(tmp_path: Path) -> None:
    storage = default_storage(tmp_path)
    settings = _tiny_settings(storage)
    settings.n_trials = 1
    tune(_tiny_params(), _frame(8, 0), _frame(3, 1), tmp_path, settings)
    again = tune(_tiny_params(), _frame(8, 0), _frame(3, 1), tmp_path, settings)
    assert again["n_trials"] == 2


def test_settings_come_from_the_tune_section_with_types_checked() -> None:
    params = Params(extra={"tune": {"n_trials": "7", "embedding_dims": [16], "timeout": None}})
    settings = TuneConfig.from_params(params)
    assert (settings.n_trials, settings.embedding_dims, settings.timeout) == (7, [16], None)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"n_trial": 3}, "unknown key 'tune.n_trial' (known: tune.n_trials, tune.timeout, "),
        ({"n_trials": "many"}, "tune.n_trials must be int, got 'many'"),
        ({"embedding_dims": [8, "x"]}, "tune.embedding_dims must be a list of ints, got [8, 'x']"),
        ({"lr_min": 0.1, "lr_max": 0.01}, "tune.lr_min (0.1) must be in (0, tune.lr_max)"),
        ({"min_epochs": 0}, "tune.min_epochs (0) must be in 1..tune.max_epochs (8)"),
        ({"pruner": "hyperband"}, "tune.pruner must be 'median' or 'none', got 'hyperband'"),
    ],
)
def test_bad_settings_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(TuneError) as info:
        TuneConfig.from_params(Params(extra={"tune": section}))
    assert str(info.value).startswith(message)


def test_cli_bad_storage_url_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("tune:\n  n_trials: 1\n")
    (tmp_path / "prepared").mkdir()
    for name, frame in (("train", _frame(4, 0)), ("val", _frame(2, 1))):
        frame.to_csv(tmp_path / "prepared" / f"{name}.csv", index=False)
    result = CliRunner().invoke(
        app, ["tune", "--data-dir", "prepared", "--storage", "nosuchdb://x/y"]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: storage 'nosuchdb://x/y': cannot open the study database: "
        "Can't load plugin: sqlalchemy.dialects:nosuchdb\n"
    )
