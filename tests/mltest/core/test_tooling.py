"""The project's own tooling: workflow lint, pre-commit helpers, config files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mltest._precommit import check_artefacts, check_toml, check_yaml, main

ROOT = Path(__file__).resolve().parents[3]


def test_github_workflow_passes_actionlint() -> None:
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(actionlint).exists():
        pytest.skip("actionlint is not installed (dev extra, Linux x86_64 only)")
    run = subprocess.run([actionlint], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path: Path) -> None:
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(actionlint).exists():
        pytest.skip("actionlint is not installed (dev extra, Linux x86_64 only)")
    broken = tmp_path / "ci.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n"
    )
    run = subprocess.run([actionlint, str(broken)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "matrix" in run.stdout


def test_precommit_configs_are_valid_yaml() -> None:
    for name in (".pre-commit-config.yaml", ".pre-commit-hooks.yaml", ".github/workflows/ci.yml"):
        assert check_yaml(ROOT / name) is None, name


def test_precommit_hooks_are_local_only() -> None:
    import yaml

    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    ids = {hook["id"] for hook in config["repos"][0]["hooks"]}
    assert {"ruff", "ruff-format", "mypy", "check-yaml", "check-toml", "no-large-files"} <= ids
    assert "mltest-unit" in ids


def test_shipped_hooks_for_other_repos() -> None:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert all({"id", "name", "entry", "language"} <= set(h) for h in hooks)
    assert "mltest-unit" in {h["id"] for h in hooks}


def test_pyproject_packaging_contract() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "pytest-mltest"
    assert project["dependencies"] == ["pytest>=8.0"]
    assert project["entry-points"]["pytest11"] == {"mltest": "mltest.plugin"}
    assert "torch==2.13.0" in project["optional-dependencies"]["torch"]
    assert set(project["optional-dependencies"]) >= {"torch", "data", "pipeline", "dev", "all"}
    assert meta["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["mltest"]
    assert (ROOT / "mltest" / "py.typed").is_file()


def test_check_yaml_and_toml(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("a: 1\n---\nb: 2\n")
    bad.write_text("a: [1, 2\n")
    assert check_yaml(good) is None
    assert (check_yaml(bad) or "").startswith("invalid YAML: while parsing a flow sequence")
    toml = tmp_path / "a.toml"
    toml.write_text("x = 1\n")
    assert check_toml(toml) is None
    toml.write_text("x = \n")
    assert (check_toml(toml) or "").startswith("invalid TOML: Invalid value")


def test_check_artefacts(tmp_path: Path) -> None:
    small, big = tmp_path / "notes.txt", tmp_path / "dump.csv"
    small.write_text("x")
    big.write_bytes(b"0" * 3 * 1024)
    assert check_artefacts(small, max_kb=2) is None
    assert check_artefacts(big, max_kb=2) == (
        f"3 KiB is over the 2 KiB limit: track it with DVC (dvc add {big})"
    )
    assert check_artefacts(Path("w/model.safetensors"), 1024) == (
        "model artefact (.safetensors): track it with DVC (dvc add w/model.safetensors)"
    )
    assert (
        check_artefacts(Path("x.npz"), 1024) == "binary (.npz): track it with DVC (dvc add x.npz)"
    )
    assert check_artefacts(tmp_path / "missing.txt", 1024) is None


def test_precommit_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"x")
    assert main(["artefacts", str(bad)]) == 1
    assert (
        capsys.readouterr().out
        == f"{bad}: model artefact (.pt): track it with DVC (dvc add {bad})\n"
    )
    ok = tmp_path / "a.toml"
    ok.write_text("a = 1\n")
    assert main(["toml", str(ok)]) == 0
    # As pre-commit calls it: the hook's options, then the files.
    assert main(["artefacts", "--max-kb", "1024", str(ok), str(ok)]) == 0
    assert main(["artefacts", "--max-kb", "1024", str(ok), str(bad)]) == 1
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2


def test_makefile_and_ci_contract() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet torch==2.13.0" in makefile
    assert "-m pytest --ml" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme
    assert "make test" in readme


def test_wheel_ships_mltest_only(tmp_path: Path) -> None:
    pytest.importorskip("hatchling")
    import zipfile

    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", str(tmp_path), str(ROOT)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = tmp_path.glob("pytest_mltest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"mltest", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "mltest/py.typed" in names
    assert "mltest/plugin.py" in names
    assert not [n for n in names if n.startswith(("reference_pipeline", "tests", "benchmarks"))]
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith("entry_points.txt")))
        .decode()
    )
    assert "[pytest11]\nmltest = mltest.plugin" in entry_points
