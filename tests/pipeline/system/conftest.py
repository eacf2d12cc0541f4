"""Fixtures of the pipeline's system tests: tiny, fast configurations of the real pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]

#: Overrides that make a full pipeline run take seconds: a small hash table, no
#: character n-grams, two epochs. The code paths are the real ones.
FAST_OVERRIDES: dict[str, Any] = {
    "model.hash_buckets": 4096,
    "model.char_ngram_max": 0,
    "model.embedding_dim": 32,
    "train.epochs": 2,
    "train.patience": 2,
    "train.device": "cpu",
}


def _fast_params(**extra: Any) -> dict[str, Any]:
    """The repository's params.yaml with :data:`FAST_OVERRIDES` (and ``extra``) applied.

    Example:
        >>> _fast_params(**{"data.source": "tiny.csv"})["data"]["source"]  # doctest: +SKIP
        'tiny.csv'
    """
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in {**FAST_OVERRIDES, **extra}.items():
        section, _, key = dotted.partition(".")
        params[section][key] = value
    return dict(params)


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """A CSV of 12 real BBC News articles per topic (60 rows), written to tmp_path.

    Example:
        >>> def test_prepare(tiny_csv):  # doctest: +SKIP
        ...     assert tiny_csv.read_text().startswith("title,description,tag")
    """
    from reference_pipeline.data import load_dataset, subsample

    df = subsample(load_dataset(), 12, seed=0)
    path = tmp_path / "tiny.csv"
    df[["title", "description", "tag"]].to_csv(path, index=False)
    return path


@pytest.fixture
def pipeline_repo(tmp_path: Path, tiny_csv: Path) -> Path:
    """A scratch project: the package, the DVC setup, a fast params.yaml and the tiny CSV.

    Example:
        >>> def test_repro(pipeline_repo):  # doctest: +SKIP
        ...     assert (pipeline_repo / "dvc.yaml").is_file()
    """
    repo = tmp_path / "project"
    repo.mkdir()
    shutil.copytree(
        REPO / "reference_pipeline",
        repo / "reference_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    # The repository's DVC and git setup as committed: analytics off, the
    # local remote (dvcstore/, next to .dvc/), data/ and artifacts/ ignored.
    for name in ("dvc.yaml", ".gitignore", ".dvcignore", ".dvc/config", ".dvc/.gitignore"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, repo / name)
    shutil.copy(tiny_csv, repo / "tiny.csv")
    params = _fast_params(**{"data.source": "tiny.csv"})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return repo
