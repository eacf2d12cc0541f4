"""Environment capture: packages, git, DVC lock hashes, devices, header line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mltest.repro import capture_environment, dvc_lock_hashes, environment_header

LOCK = """schema: '2.0'
stages:
  prepare:
    cmd: python -m reference_pipeline prepare
    deps:
    - path: reference_pipeline/data.py
      hash: md5
      md5: 111
    outs:
    - path: data/prepared
      hash: md5
      md5: abc.dir
      size: 10
  train:
    cmd: python -m reference_pipeline train
    outs:
    - path: artifacts/model.pt
      md5: def
"""


def test_dvc_lock_outs_only(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text(LOCK)
    assert dvc_lock_hashes(lock) == {"data/prepared": "abc.dir", "artifacts/model.pt": "def"}


def test_capture_in_a_git_repo_with_dvc_lock(tmp_path: Path) -> None:
    (tmp_path / "dvc.lock").write_text(LOCK)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "dvc.lock"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    env = capture_environment(tmp_path)
    assert env["git"]["dirty"] is False
    assert len(env["git"]["sha"]) == 40
    assert env["dvc"] == {"data/prepared": "abc.dir", "artifacts/model.pt": "def"}
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["packages"]["pytest"] == pytest.__version__
    assert env["packages"]["pytest-mltest"]

    (tmp_path / "dvc.lock").write_text(LOCK + "\n")
    dirty = capture_environment(tmp_path)
    assert dirty["git"]["dirty"] is True
    line = environment_header(dirty)
    assert line.startswith(f"mltest env: python {env['python']}")
    assert line.endswith(f"git {env['git']['sha'][:8]} (dirty), dvc outs 2")


def test_untracked_files_make_the_tree_dirty(tmp_path: Path) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / ".gitignore").write_text("*.log\n")
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", ".gitignore"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    (tmp_path / "run.log").write_text("ignored")
    clean = capture_environment(tmp_path)["git"]
    assert (clean["dirty"], clean["modified"], clean["untracked"]) == (False, False, 0)
    (tmp_path / "new_module.py").write_text("x = 1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "extra.csv").write_text("a\n1\n")
    env = capture_environment(tmp_path)
    assert (env["git"]["dirty"], env["git"]["modified"], env["git"]["untracked"]) == (
        True,
        False,
        2,
    )
    assert environment_header(env).endswith(f"git {env['git']['sha'][:8]} (2 untracked)")
    (tmp_path / ".gitignore").write_text("*.log\n*.tmp\n")
    both = capture_environment(tmp_path)
    assert environment_header(both).endswith("(dirty, 2 untracked)")


def test_capture_outside_git(tmp_path: Path) -> None:
    env = capture_environment(tmp_path)
    assert env["git"] is None
    assert env["dvc"] is None


def test_devices_reported_when_torch_loaded() -> None:
    pytest.importorskip("torch")
    env = capture_environment(".")
    assert env["devices"]["torch_loaded"] is True
    assert isinstance(env["devices"]["cuda_available"], bool)
