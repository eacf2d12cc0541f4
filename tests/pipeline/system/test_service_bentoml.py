"""The real service: `bentoml serve` in a subprocess on 127.0.0.1, tested with mltest.serving.

One server for the module (about 6 s to start): parity with the in-process
Predictor on 250 articles, the bad-input battery, the metadata and BentoML's
own endpoints, and drift through the service (test traffic: exit 0; titles
only: exit 1). The SIGTERM test starts its own server, twice, with two workers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("bentoml")
pytest.importorskip("httpx")

from mltest.serving import (
    RunningServer,
    check_service_parity,
    check_service_rejects_bad_input,
    start_server,
)
from reference_pipeline.cli import app
from reference_pipeline.predict import Predictor
from reference_pipeline.predlog import iter_log_files, read_log
from reference_pipeline.service import item_text

pytestmark = pytest.mark.ml

REPO = Path(__file__).resolve().parents[3]
LIMITS = {"RP_MAX_ITEMS": "32", "RP_MAX_CHARS": "20000", "RP_MAX_BODY_BYTES": "1048576"}
SERVE = [
    sys.executable, "-m", "bentoml", "serve", "reference_pipeline.service:Classifier",
    "--host", "{host}", "--port", "{port}",
]  # fmt: skip


@pytest.fixture(scope="module")
def bentoml_home(trained_dir: Path, small_split_dir: Path, tmp_path_factory) -> Path:
    """A BentoML store holding the small trained model, packaged through the CLI."""
    import subprocess

    home = tmp_path_factory.mktemp("bentoml")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "reference_pipeline", "package", "--model-dir", str(trained_dir),
         "--data-dir", str(small_split_dir), "--eval-dir", str(home / "no-eval")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("packaged reference-classifier:")
    return home


def _env(home: Path, log: Path, **extra: str) -> dict[str, str]:
    return {
        "BENTOML_HOME": str(home),
        "BENTOML_DO_NOT_TRACK": "true",
        "RP_PREDICTION_LOG": str(log),
        "OMP_NUM_THREADS": "1",
        "RP_WORKERS": "1",  # the default is one per core; only the SIGTERM test runs two
        **LIMITS,
        **extra,
    }


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("predictions")


@pytest.fixture(scope="module")
def server(ml_server_factory, bentoml_home: Path, log_dir: Path) -> Iterator[RunningServer]:
    """One `bentoml serve` for the module."""
    with ml_server_factory.serve(
        SERVE, env=_env(bentoml_home, log_dir), cwd=REPO, timeout=120, grace=15
    ) as running:
        yield running


@pytest.fixture(scope="module")
def predictor(trained_dir: Path) -> Predictor:
    return Predictor.load(trained_dir)


@pytest.fixture(scope="module")
def articles(bbc_raw) -> list[dict[str, str]]:
    """250 raw BBC articles (50 per topic) as {title, description} items."""
    from reference_pipeline.data import subsample

    df = subsample(bbc_raw, 50, seed=7)
    return [
        {"title": str(t), "description": str(d)}
        for t, d in zip(df["title"], df["description"], strict=True)
    ]


def test_served_answers_match_the_in_process_predictor(
    server: RunningServer, predictor: Predictor, articles: list[dict[str, str]]
) -> None:
    expected = predictor.predict_proba([item_text(a) for a in articles])
    result = check_service_parity(
        server, articles, expected, labels=predictor.labels, batch_size=25, atol=1e-5
    )
    assert result.cases == 250
    assert result.latency["requests"] == 10


def test_plain_strings_are_served_like_joined_items(
    server: RunningServer, predictor: Predictor, articles: list[dict[str, str]]
) -> None:
    texts = [item_text(a) for a in articles[:20]]
    check_service_parity(server, texts, predictor.predict_proba(texts), labels=predictor.labels)


def test_malformed_requests_get_a_4xx_and_the_server_stays_healthy(
    server: RunningServer,
) -> None:
    rows = check_service_rejects_bad_input(
        server, max_chars=20_000, max_body_bytes=1_048_576, max_examples=15, seed=1
    )
    answers = {name: (status, text) for name, status, text in rows}
    assert answers["too many items (33)"][0] == 422  # maxItems read from the OpenAPI schema
    assert "the limit is 32 items per request" in answers["too many items (33)"][1]
    assert answers["oversized body (1,050,576+ bytes)"][0] == 413
    assert answers["invalid UTF-8"][0] == 400
    assert answers["wrong content type: text/plain"][0] == 415
    assert "Traceback" not in server.log_text()


def test_metadata_and_bentomls_own_endpoints(
    server: RunningServer, predictor: Predictor, small_split_dir: Path
) -> None:
    import hashlib

    meta = server.client.post("/metadata").json()
    assert meta["model_version"].startswith("reference-classifier:")
    assert meta["labels"] == predictor.labels
    assert meta["metrics"]["train"]["best_val_macro_f1"] > 0
    train_csv = (small_split_dir / "train.csv").read_bytes()
    assert meta["info"]["train_csv_sha256"] == hashlib.sha256(train_csv).hexdigest()
    assert meta["info"]["encoder"] == predictor.info["encoder"]
    assert meta["limits"] == {"max_items": 32, "max_chars": 20000, "max_body_bytes": 1048576}
    for path in ("/healthz", "/readyz", "/livez"):
        assert server.client.get(path).status_code == 200
    metrics = server.client.get("/metrics")
    assert metrics.status_code == 200
    assert "bentoml_service_request_total" in metrics.text
    schema = server.client.get("/docs.json").json()["components"]["schemas"]
    assert {"Article", "Prediction"} <= set(schema)


def _send(server: RunningServer, items: list[Any], batch: int = 25) -> None:
    for start in range(0, len(items), batch):
        response = server.client.post("/classify", json={"items": items[start : start + batch]})
        assert response.status_code == 200, response.text


def _wait_rows(log: Path, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = read_log(log)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def _monitor(
    log: Path, reference: Path, confidence: Path, out: Path, last: int
) -> tuple[int, str, Any]:
    result = CliRunner().invoke(
        app,
        ["monitor", "--log", str(log), "--reference", str(reference), "--last", str(last),
         "--reference-confidence", str(confidence), "--out", str(out)],
    )  # fmt: skip
    return result.exit_code, result.output, json.loads(out.read_text()) if out.exists() else None


def test_drift_through_the_service(
    server: RunningServer,
    log_dir: Path,
    small_splits,
    small_split_dir: Path,
    bentoml_home: Path,
    tmp_path: Path,
) -> None:
    (confidence,) = bentoml_home.glob("models/reference-classifier/*/reference_confidence.json")
    test = small_splits.test
    items = [
        {"title": t, "description": d}
        for t, d in zip(test["title"], test["description"], strict=True)
    ]
    before = len(read_log(log_dir))
    _send(server, items)
    assert len(_wait_rows(log_dir, before + len(items))) == before + len(items)
    status, output, report = _monitor(
        log_dir, small_split_dir / "train.csv", confidence, tmp_path / "a.json", len(items)
    )
    assert status == 0, output
    assert output.splitlines()[-2:] == ["no drift", f"report: {tmp_path / 'a.json'}"]
    assert {t["test"] for t in report["tests"]} == {
        "text (length)", "text (tokens)", "tag", "confidence",
    }  # fmt: skip

    # Shifted source: titles only (what a client sending the wrong field would do).
    _send(server, [str(t) for t in test["title"]])
    _wait_rows(log_dir, before + 2 * len(items))
    status, output, report = _monitor(
        log_dir, small_split_dir / "train.csv", confidence, tmp_path / "b.json", len(items)
    )
    assert status == 1, output
    assert report["drift"] is True
    assert "text (length)" in report["drifted"]
    assert output.splitlines()[-2].startswith("DRIFT: text (length)")


def _texts_by_worker(log: Path) -> dict[str, list[str]]:
    """The logged texts of each worker's stream, oldest first."""
    out: dict[str, list[str]] = {}
    for file in iter_log_files(log):
        worker = file.name.partition(".jsonl")[0]
        out.setdefault(worker, []).extend(r["text"] for r in read_log(file))
    return out


def test_sigterm_with_requests_in_flight_loses_no_answered_row(
    bentoml_home: Path, tmp_path: Path
) -> None:
    import httpx

    log = tmp_path / "log"
    # Two workers, each with its own log file and its own flush on SIGTERM.
    env = _env(bentoml_home, log, RP_LOG_MAX_BYTES="4096", RP_LOG_BACKUPS="200", RP_WORKERS="2")
    server = start_server(SERVE, env=env, cwd=REPO, timeout=120, grace=20)
    answered: list[str] = []
    failed: list[str] = []
    stop_sending = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            for j in range(10_000):
                if stop_sending.is_set():
                    return
                text = f"request {worker}-{j}: the striker scored twice in the cup final"
                try:
                    response = http.post("/classify", json={"items": [text]})
                except httpx.HTTPError:
                    failed.append(text)
                    return
                if response.status_code == 200:
                    answered.append(text)
                else:
                    failed.append(text)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(answered) < 80 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.killpg(server.process.pid, signal.SIGTERM)
        code = server.process.wait(timeout=30)
        stop_sending.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        stop_sending.set()
        server.stop()
    assert code == 0, server.log_tail()
    assert len(answered) >= 80
    rows = read_log(log)
    logged = [r["text"] for r in rows]
    missing = sorted(set(answered) - set(logged))
    assert missing == [], f"{len(missing)} answered requests have no log row, e.g. {missing[:3]}"
    assert len(logged) == len(set(logged))  # and nothing was logged twice
    assert server.log_text().count("Completed cleanup hook: _flush_log") == 2  # each worker

    # 80+ rows split over 2 workers: each worker rotates at 4 KiB, and kept every row.
    assert len(list(log.glob("*.jsonl.*"))) >= 1
    # Restart on the same log: every line still parses, old rows kept, new rows appended.
    before = _texts_by_worker(log)
    again = start_server(SERVE, env=env, cwd=REPO, timeout=120, grace=20)
    try:
        response = again.client.post("/classify", json={"items": ["after the restart"]})
        assert response.status_code == 200
    finally:
        again.stop()
    # Each worker appends to its own file, so order holds per worker, not across them.
    after = _texts_by_worker(log)
    assert set(before) <= set(after)  # the restart reopened the same files
    for worker, texts in before.items():
        assert after[worker][: len(texts)] == texts, worker
    appended = [t for w, texts in after.items() for t in texts[len(before.get(w, [])) :]]
    assert appended == ["after the restart"]
    for file in log.iterdir():
        for line in file.read_bytes().splitlines():
            json.loads(line)
