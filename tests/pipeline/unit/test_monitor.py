"""monitor: windows, the four drift tests, and the CLI's exit status (1 drift, 0 none, 2 bad)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reference_pipeline.cli import app
from reference_pipeline.monitor import (
    MonitorError,
    compare_windows,
    load_current,
    load_reference,
    parse_duration,
)
from reference_pipeline.predlog import PredictionLog

pytestmark = pytest.mark.ml


def _log(folder: Path, df, *, log_text: bool = True, confidence: float = 0.9) -> Path:
    log = PredictionLog(folder, name="p", log_text=log_text)
    log.write(list(df["text"]), [(t, confidence) for t in df["tag"]], "m:1")
    log.close()
    return folder


@pytest.fixture(scope="module")
def frames(small_split_dir: Path):
    return load_reference(small_split_dir / "train.csv"), load_reference(
        small_split_dir / "test.csv"
    )


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("90", "30s", "15m", "2h", "1d")] == [
        90, 30, 900, 7200, 86400,
    ]  # fmt: skip
    with pytest.raises(MonitorError, match=r"^--since '2 weeks': expected a duration like 30s"):
        parse_duration("2 weeks")


def test_windows_by_count_and_by_time(tmp_path: Path, frames) -> None:
    _, test = frames
    folder = _log(tmp_path, test)
    assert len(load_current(log=folder, last=7)) == 7
    assert len(load_current(log=folder, since=3600)) == len(test)
    with pytest.raises(MonitorError, match="the current window is empty"):
        load_current(log=folder, since=10, now=10**11)
    with pytest.raises(MonitorError, match="give exactly one of --log PATH or --current CSV"):
        load_current()


def test_test_traffic_is_not_drift_and_one_class_is(frames) -> None:
    train, test = frames
    current = test.assign(text_chars=test["text"].str.len(), confidence=0.8, time=0.0)
    confidences = [0.8] * 40
    result = compare_windows(train, current, reference_confidence=confidences)
    assert result.drifted == []
    assert [c.column for c in result.report.columns] == [
        "text (length)", "text (tokens)", "tag", "confidence",
    ]  # fmt: skip
    one_class = current[current["tag"] == current["tag"].iloc[0]]
    shifted = compare_windows(train, one_class, reference_confidence=confidences)
    assert "tag" in shifted.drifted


def test_hash_only_logs_skip_the_vocabulary(tmp_path: Path, frames) -> None:
    train, test = frames
    current = load_current(log=_log(tmp_path, test, log_text=False))
    result = compare_windows(train, current)
    assert [c.column for c in result.report.columns] == ["text (length)", "tag"]
    assert set(result.skipped) == {"text (tokens)", "confidence"}


def test_cli_exit_status_and_json(tmp_path: Path, frames, small_split_dir: Path) -> None:
    _, test = frames
    runner = CliRunner()
    reference = str(small_split_dir / "train.csv")
    folder = _log(tmp_path / "ok", test)
    out = tmp_path / "ok.json"
    result = runner.invoke(app, ["monitor", "--log", str(folder), "--reference", reference,
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["drift"] is False

    titles = test.assign(text=[t.split(" ")[0] for t in test["text"]])
    folder = _log(tmp_path / "short", titles)
    out = tmp_path / "short.json"
    result = runner.invoke(app, ["monitor", "--log", str(folder), "--reference", reference,
                                 "--out", str(out)])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "text (length)" in json.loads(out.read_text())["drifted"]
    assert "DRIFT: text (length)" in result.output

    result = runner.invoke(app, ["monitor", "--log", str(tmp_path / "none"), "--reference",
                                 reference])  # fmt: skip
    assert result.exit_code == 2
    assert f"error: --log '{tmp_path / 'none'}': no such file or folder" in result.output
