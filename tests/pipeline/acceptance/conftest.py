"""The main job's output, for the acceptance tests.

``make run`` trains, evaluates and then runs these tests on what it just
produced, pointing ``PIPELINE_ARTIFACTS`` at its output folder. Without that
variable (``make test``, CI), the fixture runs the main job itself, on the full
default dataset with the default params, into a temporary folder: the targets
are then checked on every CI run, not only when someone runs ``make run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ENV = "PIPELINE_ARTIFACTS"


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The main job's output folder (``data/``, ``model/``, ``eval/``).

    Example:
        >>> def test_model_saved(run_dir):  # doctest: +SKIP
        ...     assert (run_dir / "model" / "model.pt").is_file()
    """
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        if not (path / "eval" / "metrics.json").is_file():
            pytest.fail(
                f"{ENV}={given} holds no eval/metrics.json: run "
                f"`python -m reference_pipeline run --out {given}` first",
                pytrace=False,
            )
        return path
    out = tmp_path_factory.mktemp("main_job")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "BENTOML_DO_NOT_TRACK": "true"}
    job = subprocess.run(
        # --one-encoder: the targets are the default model's; the pretrained
        # encoder's side-by-side row (make run shows it) would cost a CI machine
        # minutes of encoding with an empty embedding cache.
        [sys.executable, "-m", "reference_pipeline", "run", "--out", str(out), "--one-encoder"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if job.returncode != 0:
        pytest.fail(f"the main job failed ({job.returncode}):\n{job.stderr[-3000:]}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def metrics(run_dir: Path) -> dict[str, Any]:
    """The main job's ``eval/metrics.json``: ``summary`` per model, full ``models`` results.

    Example:
        >>> def test_f1(metrics):  # doctest: +SKIP
        ...     assert metrics["summary"]["model"]["macro_f1"] > 0.9
    """
    data: dict[str, Any] = json.loads((run_dir / "eval" / "metrics.json").read_text())
    return data


@pytest.fixture(scope="session")
def behavioral_model(run_dir: Path) -> Any:
    """The trained classifier, as the behavioural tests' model.

    Example:
        >>> def test_predicts(behavioral_model):  # doctest: +SKIP
        ...     assert behavioral_model.predict(["Arsenal won 2-0"]) == ["sport"]
    """
    from reference_pipeline.predict import Predictor

    return Predictor.load(run_dir / "model")


@pytest.fixture(scope="session")
def run_splits(run_dir: Path) -> dict[str, Any]:
    """The train, val and test frames the main job prepared.

    Example:
        >>> def test_sizes(run_splits):  # doctest: +SKIP
        ...     assert len(run_splits["train"]) > len(run_splits["test"])
    """
    from reference_pipeline.data import read_split

    return {name: read_split(run_dir / "data" / f"{name}.csv") for name in ("train", "val", "test")}


@pytest.fixture(scope="session")
def test_split_predictions(run_splits: dict[str, Any], behavioral_model: Any) -> dict[str, Any]:
    """The trained model's predictions on the test split, for the evaluation gates.

    ``y`` holds class indices into ``labels``, ``proba`` the ``(n, k)``
    probabilities, ``texts`` the model inputs.

    Example:
        >>> def test_f1(test_split_predictions):  # doctest: +SKIP
        ...     p = test_split_predictions
        ...     check_metrics(p["y"], proba=p["proba"], labels=p["labels"], min={"macro_f1": 0.9})
    """
    import numpy as np

    from reference_pipeline.evaluate import model_texts

    frame = run_splits["test"]
    texts = model_texts(frame)
    labels = list(behavioral_model.labels)
    index = {label: i for i, label in enumerate(labels)}
    return {
        "y": np.array([index[tag] for tag in frame["tag"]]),
        "proba": np.asarray(behavioral_model.predict_proba(texts), dtype=np.float64),
        "labels": labels,
        "texts": texts,
    }
