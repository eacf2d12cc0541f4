"""The package and serve commands: what they run, and their one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reference_pipeline.cli import app


def test_serve_runs_bentoml_on_loopback_with_telemetry_off(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def fake_exec(file: str, argv: list[str], env: dict[str, str]) -> Any:
        calls.append((file, argv, env))

    monkeypatch.setattr("os.execvpe", fake_exec)
    result = CliRunner().invoke(app, ["serve", "--port", "3123", "--workers", "2", "--no-log-text"])
    assert result.exit_code == 0, result.output
    ((_, argv, env),) = calls
    assert argv[1:] == [
        "-m", "bentoml", "serve", "reference_pipeline.service:Classifier",
        "--host", "127.0.0.1", "--port", "3123",
    ]  # fmt: skip
    assert env["BENTOML_DO_NOT_TRACK"] == "true"
    assert (env["RP_WORKERS"], env["RP_LOG_TEXT"]) == ("2", "0")
    assert env["RP_MODEL_TAG"] == "reference-classifier:latest"


def test_serve_defaults_to_one_worker_per_available_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reference_pipeline.config import available_cores

    calls: list[dict[str, str]] = []
    monkeypatch.setattr("os.execvpe", lambda file, argv, env: calls.append(env))
    monkeypatch.delenv("RP_WORKERS", raising=False)
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 0, result.output
    cores = available_cores()
    assert calls[0]["RP_WORKERS"] == str(cores)
    assert f"({cores} worker(s))" in result.output
    monkeypatch.setenv("RP_WORKERS", "3")  # the environment's choice, when set
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    assert calls[1]["RP_WORKERS"] == "3"


@pytest.mark.parametrize(
    ("name", "value"), [("RP_WORKERS", "two"), ("RP_MAX_ITEMS", "0"), ("RP_MAX_BATCH_SIZE", "1.5")]
)
def test_serve_with_a_bad_service_number_is_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setattr("os.execvpe", lambda *a: pytest.fail("must not start the server"))
    monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["serve", "--workers", "1"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {name}={value!r}: expected a whole number >= 1"


def test_serve_rejects_a_bad_port() -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "--port" in result.output


def test_package_without_a_trained_model_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["package", "--model-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --model-dir '{tmp_path / 'none'}': folder not found; "
        "run `python -m reference_pipeline train` first"
    ]
