"""The prediction log: rows off the request path, rotation at a size limit, hashes only, repair."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from reference_pipeline.predlog import PredictionLog, iter_log_files, read_log


def _write(log: PredictionLog, n: int, start: int = 0) -> list[str]:
    texts = [f"text number {i} " + "x" * 80 for i in range(start, start + n)]
    log.write(texts, [("sport", 0.5)] * n, "reference-classifier:v1")
    return texts


def test_rows_hold_text_prediction_version_and_time(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, name="p")
    _write(log, 3)
    log.close()
    rows = read_log(tmp_path)
    assert [r["text"][:13] for r in rows] == ["text number 0", "text number 1", "text number 2"]
    row = rows[0]
    assert set(row) == {
        "time", "text", "text_sha256", "text_chars", "tag", "confidence", "model_version",
    }  # fmt: skip
    assert (row["tag"], row["confidence"], row["model_version"]) == (
        "sport", 0.5, "reference-classifier:v1",
    )  # fmt: skip
    assert row["text_sha256"] == hashlib.sha256(row["text"].encode()).hexdigest()


def test_text_logging_off_keeps_only_the_hash_and_length(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, name="p", log_text=False)
    (text,) = _write(log, 1)
    log.close()
    (row,) = read_log(tmp_path)
    assert row["text"] is None
    assert text not in (tmp_path / "p.jsonl").read_text()
    assert row["text_chars"] == len(text)


def test_rotates_at_the_size_limit_and_keeps_the_backups(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, name="p", max_bytes=2048, backups=2)
    for start in range(0, 100, 10):  # ~25 KB in bursts
        _write(log, 10, start)
        log.flush()
    log.close()
    names = sorted(f.name for f in tmp_path.iterdir())
    assert names == ["p.jsonl", "p.jsonl.1", "p.jsonl.2"]
    assert all(f.stat().st_size <= 2048 for f in tmp_path.iterdir())
    rows = read_log(tmp_path)
    numbers = [int(r["text"].split()[2]) for r in rows]
    assert numbers == sorted(numbers)  # oldest file first, in order
    assert numbers[-1] == 99
    assert [f.name for f in iter_log_files(tmp_path)] == ["p.jsonl.2", "p.jsonl.1", "p.jsonl"]


def test_close_drains_everything_queued(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, name="p")
    texts = _write(log, 2000)
    log.close()
    assert len(read_log(tmp_path)) == len(texts)
    log.close()  # idempotent


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, name="p", max_queue=1)
    log._queue.put(object())  # the writer is busy: the next rows cannot be queued
    log._queue.get()
    log._queue.task_done()
    for _ in range(50):
        _write(log, 20)
    log.close()
    assert log.dropped + len(read_log(tmp_path)) == 1000


def test_a_line_torn_by_a_hard_kill_is_cut_when_reopened(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    good = json.dumps({"text": "ok", "tag": "a"}) + "\n"
    path.write_text(good + '{"text": "half', encoding="utf-8")
    log = PredictionLog(tmp_path, name="p")
    _write(log, 1)
    log.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == good.strip()
    assert json.loads(lines[1])["tag"] == "sport"
    assert len(lines) == 2


def test_configuration_from_the_environment(tmp_path: Path) -> None:
    assert PredictionLog.from_env({"RP_PREDICTION_LOG": "off"}) is None
    log = PredictionLog.from_env(
        {"RP_PREDICTION_LOG": str(tmp_path), "RP_LOG_TEXT": "0", "RP_LOG_MAX_BYTES": "4096"}
    )
    assert log is not None
    assert (log.log_text, log.max_bytes) == (False, 4096)
    log.close()
    with pytest.raises(ValueError, match="max_bytes 10 is under 1024"):
        PredictionLog(tmp_path, max_bytes=10)


def test_read_log_of_a_missing_path_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        read_log(tmp_path / "nope")
