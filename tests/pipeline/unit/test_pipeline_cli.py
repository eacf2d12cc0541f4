"""The command line: bad input exits 2 with one pinned line on stderr, no traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reference_pipeline.cli import app

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "no_tag.csv").write_text("title,description\nA,b\n", encoding="utf-8")
    (tmp_path / "latin1.csv").write_bytes(b"title,description,tag\ncaf\xe9,x,y\n")
    (tmp_path / "empty.csv").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["prepare", "--params", "missing.yaml"], "error: --params 'missing.yaml': file not found"),
        (["prepare", "--data", "nope.csv"], "error: --data 'nope.csv': file not found"),
        (
            ["prepare", "--data", "no_tag.csv"],
            "error: no_tag.csv: missing column 'tag' (found: title, description)",
        ),
        (
            ["prepare", "--data", "latin1.csv"],
            "error: latin1.csv: not UTF-8 text (byte 0xe9 on line 2); re-save the file as UTF-8",
        ),
        (
            ["prepare", "--data", "empty.csv"],
            "error: empty.csv: file is empty; expected a header row title,description,tag",
        ),
        (
            ["prepare", "--set", "train.lrr=0.1"],
            "error: override: unknown key 'train.lrr' (did you mean 'train.lr'?)",
        ),
        (
            ["prepare", "--set", "train.lr"],
            "error: --set 'train.lr': expected key=value, e.g. --set train.lr=0.01",
        ),
        (
            ["train", "--device", "tpu"],
            "error: --device 'tpu': unknown device; use auto, cpu, cuda, cuda:N or mps",
        ),
        (
            ["train", "--data-dir", "nowhere"],
            "error: --data-dir 'nowhere': folder not found; "
            "run `python -m reference_pipeline prepare` first",
        ),
        (
            ["predict", "--model-dir", "nowhere", "some text"],
            "error: --model-dir 'nowhere': folder not found; "
            "run `python -m reference_pipeline train` first",
        ),
        (["predict"], "error: no texts: give them as arguments or one per line on stdin"),
        (
            ["run", "--data", "no_tag.csv", "--out", "out"],
            "error: no_tag.csv: missing column 'tag' (found: title, description)",
        ),
        (
            ["run", "--device", "gpu"],
            "error: --device 'gpu': unknown device; use auto, cpu, cuda, cuda:N or mps",
        ),
        (
            ["tune", "--set", "tune.n_trials=lots"],
            "error: tune.n_trials must be int, got 'lots'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(workdir: Path, args: list[str], line: str) -> None:
    code, out, err = _invoke(*args, stdin="")
    assert (code, err.splitlines()) == (2, [line])
    assert out == ""


def test_unavailable_cuda_is_named(workdir: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error path cannot be reached")
    code, _, err = _invoke("train", "--device", "cuda")
    assert (code, err) == (2, "error: --device 'cuda': CUDA is not available on this machine\n")


def test_prepare_writes_the_three_splits(workdir: Path) -> None:
    rows = ["title,description,tag"]
    rows += [f"win {i},match report {i},sport" for i in range(10)]
    rows += [f"shares {i},market report {i},business" for i in range(10)]
    (workdir / "tiny.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = _invoke("prepare", "--data", "tiny.csv", "--out", "prepared")
    assert (code, err) == (0, "")
    counts = {
        name: len((workdir / "prepared" / f"{name}.csv").read_text().splitlines()) - 1
        for name in ("train", "val", "test")
    }
    assert sum(counts.values()) == 20
    assert min(counts.values()) >= 2  # both labels in every split
    assert out == (
        f"prepared tiny.csv: train {counts['train']}, val {counts['val']}, "
        f"test {counts['test']} rows -> prepared\n"
    )


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys; sys.argv = ['reference_pipeline', '--help']\n"
        "from reference_pipeline.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'pandas', 'sklearn', 'optuna', 'dvc') "
        "if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "HEAVY []"
    assert "prepare" in proc.stdout
    assert "evaluate" in proc.stdout
