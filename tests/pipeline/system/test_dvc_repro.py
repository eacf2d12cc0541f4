"""`dvc repro` runs prepare -> train -> evaluate end to end; a second run skips everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ml

STAGES = ("prepare", "train", "evaluate")


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        # The stages call `python`: make it this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "DVC_STUDIO_OFFLINE": "true",
        "GIT_AUTHOR_NAME": "mltest",
        "GIT_AUTHOR_EMAIL": "mltest@example.invalid",
        "GIT_COMMITTER_NAME": "mltest",
        "GIT_COMMITTER_EMAIL": "mltest@example.invalid",
    }
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _dvc(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = _run([sys.executable, "-m", "dvc", *args], repo)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_repro_runs_every_stage_then_skips_them(pipeline_repo: Path) -> None:
    repo = pipeline_repo
    # An identity of its own: a fresh CI machine may have no git user configured.
    git = ["git", "-c", "user.name=mltest", "-c", "user.email=mltest@localhost"]
    for args in ([*git, "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "init"]):
        assert _run(args, repo).returncode == 0, args
    assert "analytics = false" in (repo / ".dvc" / "config").read_text()

    first = _dvc(repo, "repro")
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first.stdout, first.stdout
    metrics = json.loads((repo / "artifacts" / "eval" / "metrics.json").read_text())
    assert sorted(metrics["summary"]) == ["keywords", "majority", "model", "tfidf_logreg"]
    assert (repo / "artifacts" / "eval" / "plots" / "confusion.png").is_file()
    assert (repo / "dvc.lock").is_file()

    # The default remote is a local folder: push works offline.
    _dvc(repo, "push", "-q")
    assert any((repo / "dvcstore").rglob("*")), "dvc push stored nothing in dvcstore/"

    second = _dvc(repo, "repro")
    assert [line for line in second.stdout.splitlines() if line.strip()] == [
        *(f"Stage '{stage}' didn't change, skipping" for stage in STAGES),
        "Data and pipelines are up to date.",
    ]

    # A change to an evaluate parameter re-runs evaluate only.
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("top_k: 5", "top_k: 2"))
    third = _dvc(repo, "repro")
    assert "Stage 'prepare' didn't change, skipping" in third.stdout
    assert "Stage 'train' didn't change, skipping" in third.stdout
    assert "Running stage 'evaluate'" in third.stdout
    errors = json.loads((repo / "artifacts" / "eval" / "metrics.json").read_text())
    per_class = errors["models"]["majority"]["top_errors"]
    assert max(len(v["false_negatives"]) for v in per_class.values()) == 2
