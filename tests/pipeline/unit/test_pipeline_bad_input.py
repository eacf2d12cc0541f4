"""Bad input to the pipeline CLI (issue 13): one pinned line, exit 2, nothing already there changed.

Each test feeds one hostile input to ``python -m reference_pipeline`` (in
process, through typer's CliRunner), pins the line the user reads on stderr and
the exit status, and compares every file that was there before, byte for byte
and by modification time, with what is there after.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reference_pipeline.cli import app

pytestmark = pytest.mark.ml

Snapshot = dict[str, tuple[str, int]]


def snapshot(*roots: Path) -> Snapshot:
    """Every file under ``roots``: its SHA-256 and mtime (ns), by path."""
    files: Snapshot = {}
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in paths:
            files[str(path)] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mtime_ns,
            )
    return files


def invoke(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    """Run the CLI in process; return the exit code and stderr (a traceback is re-raised)."""
    result = CliRunner().invoke(app, list(args), input=stdin)
    if result.exit_code not in (0, 2) and result.exception is not None:
        raise result.exception
    return result.exit_code, result.stderr


def assert_one_line(stderr: str, line: str) -> None:
    assert stderr.splitlines() == [line], stderr
    assert "Traceback" not in stderr


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_params) -> Path:
    """A working folder with ``small.yaml``: the fast-test params."""
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(small_params().to_dict()), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def model_copy(trained_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the trained artefacts, free to corrupt."""
    return Path(shutil.copytree(trained_dir, tmp_path / "model"))


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder holding ``keep.txt`` that this process cannot write to.

    Mode 0555 stops everyone but root; root (as in this project's containers) is
    stopped by the immutable attribute instead, where ``chattr`` may set it.
    """
    folder = tmp_path / "read_only"
    folder.mkdir()
    (folder / "keep.txt").write_text("already here\n", encoding="utf-8")
    folder.chmod(0o555)
    immutable = False
    if _writable(folder) and shutil.which("chattr"):
        immutable = subprocess.run(["chattr", "+i", str(folder)], check=False).returncode == 0
    try:
        if _writable(folder):
            pytest.skip("cannot make a read-only folder here (root without chattr +i)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


# --- train --resume with a checkpoint that is not one --------------------------


@pytest.mark.parametrize("damage", ["random_bytes", "truncated", "model_file"])
def test_train_resume_from_a_corrupt_checkpoint(
    workdir: Path, small_split_dir: Path, trained_dir: Path, damage: str
) -> None:
    out = workdir / "out"
    out.mkdir()
    real = (trained_dir / "checkpoint.pt").read_bytes()
    content = {
        "random_bytes": random.Random(13).randbytes(4096),
        "truncated": real[: len(real) // 3],
        # A valid torch file of the wrong kind: the final model, not a checkpoint.
        "model_file": (trained_dir / "model.pt").read_bytes(),
    }[damage]
    (out / "checkpoint.pt").write_bytes(content)
    before = snapshot(out)
    code, err = invoke(
        "train", "--params", "small.yaml", "--data-dir", str(small_split_dir),
        "--out", "out", "--resume", "--no-progress",
    )  # fmt: skip
    assert code == 2
    assert_one_line(
        err,
        "error: out/checkpoint.pt: not a valid checkpoint of this pipeline; "
        "train without --resume to start over (that replaces it)",
    )
    assert snapshot(out) == before


# --- corrupt artefacts of a trained model ------------------------------------------


def test_evaluate_with_a_corrupt_label_encoder(
    workdir: Path, small_split_dir: Path, model_copy: Path
) -> None:
    (model_copy / "label_encoder.json").write_text('{"classes": [\n', encoding="utf-8")
    before = snapshot(model_copy, small_split_dir)
    code, err = invoke(
        "evaluate", "--params", "small.yaml", "--data-dir", str(small_split_dir),
        "--model-dir", "model", "--out", "eval", "--no-baselines",
    )  # fmt: skip
    assert code == 2
    assert_one_line(
        err,
        "error: model/label_encoder.json: corrupt label encoder file "
        "(Expecting value: line 2 column 1 (char 14)); train the model again to rewrite it",
    )
    assert snapshot(model_copy, small_split_dir) == before
    assert not (workdir / "eval").exists()


def test_predict_with_a_corrupt_model_file(workdir: Path, model_copy: Path) -> None:
    (model_copy / "model.pt").write_bytes(random.Random(13).randbytes(4096))
    before = snapshot(model_copy)
    code, err = invoke("predict", "--model-dir", "model", "shares fell on monday")
    assert code == 2
    # Not torch's 375 characters advising weights_only=False.
    line = (
        "error: model/model.pt: not a trained model file of this pipeline; "
        "train again: python -m reference_pipeline train"
    )
    assert_one_line(err, line)
    assert "weights_only" not in err
    assert snapshot(model_copy) == before


# --- predict: bytes that are not UTF-8 -------------------------------------------------


def test_predict_refuses_stdin_that_is_not_utf8(workdir: Path, model_copy: Path) -> None:
    before = snapshot(model_copy)
    code, err = invoke("predict", "--model-dir", "model", stdin=b"shares fell\nla caf\xe9 \xff\n")
    assert code == 2
    assert_one_line(
        err, "error: stdin: not UTF-8 text (byte 0xe9 on line 2); send the texts as UTF-8"
    )
    assert snapshot(model_copy) == before


def test_predict_refuses_an_argument_that_is_not_utf8(workdir: Path, model_copy: Path) -> None:
    # What Python makes of the bytes b"caf\xe9" in argv: a lone surrogate.
    code, err = invoke(
        "predict", "--model-dir", "model", "ok", b"caf\xe9".decode(errors="surrogateescape")
    )
    assert code == 2
    assert_one_line(err, "error: text argument 2: not UTF-8 (byte 0xe9); send the texts as UTF-8")


def test_predict_reads_utf8_stdin_with_any_line_ends(workdir: Path, model_copy: Path) -> None:
    # The twin of the refusal: valid UTF-8 (a BOM, CRLF, blank lines, accents) is read.
    text = "\ufeffshares fell\r\nla caf\u00e9 ouvre\n\n"
    result = CliRunner().invoke(
        app, ["predict", "--model-dir", "model"], input=text.encode("utf-8")
    )
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2


# --- output folders that cannot be written -----------------------------------------------


def read_only_lines(option: str) -> list[str]:
    """The line for a read-only folder: mode bits (a user) or the immutable flag (root)."""
    return [
        f"error: {option}: output folder is not writable ({reason}); "
        "choose another output folder or fix its permissions"
        for reason in ("Permission denied", "Operation not permitted")
    ]


def test_prepare_into_a_read_only_folder(workdir: Path, read_only_dir: Path) -> None:
    before = snapshot(read_only_dir)
    code, err = invoke("prepare", "--params", "small.yaml", "--out", "read_only")
    assert code == 2
    assert err.splitlines() in [[line] for line in read_only_lines("read_only")], err
    assert snapshot(read_only_dir) == before


def test_prepare_into_a_regular_file(workdir: Path) -> None:
    (workdir / "taken").write_text("not a folder\n", encoding="utf-8")
    before = snapshot(workdir / "taken")
    code, err = invoke("prepare", "--params", "small.yaml", "--out", "taken")
    assert code == 2
    assert_one_line(err, "error: taken: not a folder; choose another output folder")
    assert snapshot(workdir / "taken") == before


def test_prepare_under_a_regular_file(workdir: Path) -> None:
    (workdir / "taken").write_text("not a folder\n", encoding="utf-8")
    before = snapshot(workdir / "taken")
    code, err = invoke("prepare", "--params", "small.yaml", "--out", "taken/data")
    assert code == 2
    line = (
        "error: taken/data: not a folder (the parent taken is a file); choose another output folder"
    )
    assert_one_line(err, line)
    assert snapshot(workdir / "taken") == before


def test_train_into_a_read_only_folder_fails_before_training(
    workdir: Path, small_split_dir: Path, read_only_dir: Path
) -> None:
    before = snapshot(read_only_dir, small_split_dir)
    code, err = invoke(
        "train", "--params", "small.yaml", "--data-dir", str(small_split_dir),
        "--out", "read_only", "--no-progress",
    )  # fmt: skip
    assert code == 2
    assert err.splitlines() in [[line] for line in read_only_lines("read_only")], err
    assert snapshot(read_only_dir, small_split_dir) == before


def test_evaluate_into_a_read_only_folder(
    workdir: Path, small_split_dir: Path, model_copy: Path, read_only_dir: Path
) -> None:
    before = snapshot(read_only_dir, model_copy)
    code, err = invoke(
        "evaluate", "--params", "small.yaml", "--data-dir", str(small_split_dir),
        "--model-dir", "model", "--out", "read_only", "--no-baselines",
    )  # fmt: skip
    assert code == 2
    assert err.splitlines() in [[line] for line in read_only_lines("read_only")], err
    assert snapshot(read_only_dir, model_copy) == before


# --- data a classifier cannot learn from -------------------------------------------------


def _csv(path: Path, counts: dict[str, int]) -> Path:
    rows = ["title,description,tag"]
    for tag, n in counts.items():
        rows += [f"{tag} story {i},words about {tag} number {i},{tag}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("counts", "sizes", "line"),
    [
        (
            {"sport": 30},
            (),
            "error: one.csv: every row has the label 'sport'; a classifier needs at least "
            "2 labels: add rows of other labels",
        ),
        (
            {"sport": 30, "tech": 2},
            (),
            "error: one.csv: label 'tech' has 2 rows, too few to split (need at least 3); "
            "add rows or drop the label",
        ),
        (
            # 4 rows at 0.45/0.45 round to 2 + 2: none would be left to train on.
            {"sport": 30, "tech": 4},
            ("--set", "data.val_size=0.45", "--set", "data.test_size=0.45"),
            "error: one.csv: label 'tech' has 4 rows; val_size 0.45 and test_size 0.45 "
            "leave none for training: add rows or lower the fractions",
        ),
    ],
    ids=["one_label", "label_below_min_rows", "label_left_without_training_rows"],
)
def test_prepare_rejects_data_a_classifier_cannot_learn(
    workdir: Path, counts: dict[str, int], sizes: tuple[str, ...], line: str
) -> None:
    _csv(workdir / "one.csv", counts)
    before = snapshot(workdir / "one.csv")
    code, err = invoke(
        "prepare", "--params", "small.yaml", "--data", "one.csv", "--out", "data", *sizes
    )
    assert code == 2
    assert_one_line(err, line)
    assert snapshot(workdir / "one.csv") == before
    assert not (workdir / "data").exists()


def test_train_rejects_one_tag_in_hand_made_splits(workdir: Path) -> None:
    # Splits not made by prepare (a user's own train.csv) get the same refusal from train.
    data = workdir / "data"
    data.mkdir()
    for name in ("train", "val"):
        rows = ["text,tag"] + [f"sport story {i},sport" for i in range(6)]
        (data / f"{name}.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    before = snapshot(data)
    code, err = invoke(
        "train", "--params", "small.yaml", "--data-dir", "data", "--out", "model", "--no-progress"
    )
    assert code == 2
    assert_one_line(
        err, "error: train data: every row has the tag 'sport'; a classifier needs at least 2 tags"
    )
    assert snapshot(data) == before
    assert not (workdir / "model").exists()


# --- params.yaml: unknown sections, values out of range --------------------------------


def test_params_file_with_a_misspelt_section(workdir: Path) -> None:
    (workdir / "typo.yaml").write_text("evaluat:\n  top_k: 5\n", encoding="utf-8")
    before = snapshot(workdir / "typo.yaml")
    code, err = invoke("prepare", "--params", "typo.yaml", "--out", "data")
    assert code == 2
    assert_one_line(err, "error: typo.yaml: unknown section 'evaluat' (did you mean 'evaluate'?)")
    assert snapshot(workdir / "typo.yaml") == before
    assert not (workdir / "data").exists()


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("evaluate.top_k=-5", "error: overrides: evaluate.top_k must be >= 0, got -5"),
        ("evaluate.n_bins=0", "error: overrides: evaluate.n_bins must be >= 1, got 0"),
        ("train.epochs=0", "error: overrides: train.epochs must be >= 1, got 0"),
        (
            "model.finetune_epochs=0",
            "error: overrides: model.finetune_epochs must be >= 1, got 0",
        ),
        (
            "model.finetune_batch_size=0",
            "error: overrides: model.finetune_batch_size must be >= 1, got 0",
        ),
        (
            "model.finetune_keep=first",
            "error: overrides: model.finetune_keep must be one of 'last', 'best', got 'first'",
        ),
        (
            "model.finetune_warmup=1",
            "error: overrides: model.finetune_warmup must be in [0, 1), got 1.0",
        ),
        ("train.lr=-0.1", "error: overrides: train.lr must be > 0, got -0.1"),
        ("train.lr=nan", "error: overrides: train.lr must be > 0, got nan"),
        ("data.val_size=1.5", "error: overrides: data.val_size must be in [0, 1), got 1.5"),
        ("model.dropout=1", "error: overrides: model.dropout must be in [0, 1), got 1.0"),
        (
            "train.lr_schedule=cosine",
            "error: overrides: train.lr_schedule must be one of 'constant', 'linear', got 'cosine'",
        ),
    ],
)
def test_out_of_range_setting_is_rejected(workdir: Path, setting: str, line: str) -> None:
    (workdir / "params.yaml").write_text(
        (workdir / "small.yaml").read_text(encoding="utf-8")
        + "evaluate:\n  n_bins: 10\n  top_k: 5\n",
        encoding="utf-8",
    )
    code, err = invoke("prepare", "--out", "data", "--set", setting)
    assert code == 2
    assert_one_line(err, line)
    assert not (workdir / "data").exists()


def test_out_of_range_value_in_the_file_names_the_file(workdir: Path) -> None:
    (workdir / "bad.yaml").write_text("evaluate:\n  top_k: -5\n", encoding="utf-8")
    code, err = invoke("prepare", "--params", "bad.yaml", "--out", "data")
    assert code == 2
    assert_one_line(err, "error: bad.yaml: evaluate.top_k must be >= 0, got -5")


def test_boundary_values_are_accepted(workdir: Path) -> None:
    # The twins: the edges of each range load (top_k=0 keeps no samples, dropout=0).
    from reference_pipeline.config import load_params

    params = load_params(
        None,
        {
            "data.val_size": "0",
            "model.dropout": "0",
            "train.weight_decay": "0",
            "train.num_threads": "0",
            "data.max_rows_per_label": "null",
        },
    )
    assert params.data.val_size == 0.0
    assert params.model.dropout == 0.0
    (workdir / "edge.yaml").write_text("evaluate:\n  top_k: 0\n  n_bins: 1\n", encoding="utf-8")
    assert load_params(workdir / "edge.yaml").extra["evaluate"] == {"top_k": 0, "n_bins": 1}
