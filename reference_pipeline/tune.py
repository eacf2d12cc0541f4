"""Hyperparameter search with Optuna: seeded TPE sampler, median pruning, RDB storage.

Each trial samples the learning rate, embedding width, dropout, word n-gram
range and number of epochs, trains the classifier with a short inline loop
over the public pieces of :mod:`reference_pipeline.model` (the training
stage's :func:`~reference_pipeline.train.train` has no per-epoch hook) and
reports validation macro-F1 after every epoch, so the median pruner can stop
a hopeless trial early. The trial's value is its best epoch's macro-F1, as
early stopping would keep.

The study lives in a database: SQLite under the output folder by default
(``sqlite:///artifacts/tune/optuna.db``), or any SQLAlchemy URL given as
``storage`` (``postgresql://user@host/db``) so several machines can work on
one study: run the same command on each with the same ``--storage`` and
``--study-name``. The best parameters go to ``best_params.json``, with the
dotted overrides to train with them.

Example:
    >>> settings = TuneConfig(n_trials=20)
    >>> result = tune(params, train_df, val_df, "artifacts/tune", settings)  # doctest: +SKIP
    >>> result["overrides"]  # doctest: +SKIP
    {'train.lr': 0.012, 'model.embedding_dim': 64, ...}
"""

from __future__ import annotations

import dataclasses
import os
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from reference_pipeline.config import Params

__all__ = ["BEST_PARAMS_FILE", "TuneConfig", "TuneError", "default_storage", "tune"]

BEST_PARAMS_FILE = "best_params.json"
DEFAULT_DB = "optuna.db"


class TuneError(ValueError):
    """Tuning cannot run; the one-line message names the setting at fault.

    Example:
        >>> raise TuneError("tune.lr_min must be below tune.lr_max")
        Traceback (most recent call last):
        ...
        reference_pipeline.tune.TuneError: tune.lr_min must be below tune.lr_max
    """


@dataclass
class TuneConfig:
    """The ``tune:`` section of ``params.yaml``: budget, storage and search space.

    Example:
        >>> TuneConfig(n_trials=5).embedding_dims
        [32, 64, 128]
    """

    # Trials this process runs (several processes may share one study).
    n_trials: int = 20
    # Stop starting new trials after this many seconds (None = no limit).
    timeout: float | None = None
    # Seed of the TPE sampler (and of each trial's weight init and shuffling).
    seed: int = 42
    # SQLAlchemy URL of the study database; None = sqlite:///<out>/optuna.db.
    storage: str | None = None
    # Name of the study in the database; the same name resumes/extends it.
    study_name: str = "reference-pipeline"
    # Learning-rate range, sampled log-uniformly.
    lr_min: float = 1e-3
    lr_max: float = 5e-2
    # Embedding widths to choose from.
    embedding_dims: list[int] = field(default_factory=lambda: [32, 64, 128])
    # Dropout range, sampled uniformly.
    dropout_min: float = 0.0
    dropout_max: float = 0.5
    # Word n-gram range: up to 1 (unigrams) ... up to max_word_ngrams.
    max_word_ngrams: int = 2
    # Epoch budget range of a trial.
    min_epochs: int = 2
    max_epochs: int = 8
    # "median" stops a trial whose val macro-F1 is below the median of earlier
    # trials at the same epoch; "none" runs every trial to its last epoch.
    pruner: str = "median"
    # The median pruner leaves a trial alone for its first warmup epochs and
    # until startup_trials trials have finished.
    pruner_warmup_epochs: int = 1
    pruner_startup_trials: int = 3

    @classmethod
    def from_params(cls, params: Params) -> TuneConfig:
        """Read the ``tune`` section (``params.extra["tune"]``), checking keys and types.

        CLI overrides arrive as strings (``--set tune.n_trials=5``) and are
        parsed as YAML scalars.

        Raises:
            TuneError: An unknown key or a value of the wrong type.

        Example:
            >>> from reference_pipeline.config import Params
            >>> TuneConfig.from_params(Params(extra={"tune": {"n_trials": "3"}})).n_trials
            3
        """
        raw = dict(params.extra.get("tune") or {})
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in hints:
                known = ", ".join(f"tune.{k}" for k in hints)
                raise TuneError(f"unknown key 'tune.{key}' (known: {known})")
            kwargs[key] = _coerce(f"tune.{key}", value, hints[key])
        settings = cls(**kwargs)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check ranges; raise :class:`TuneError` naming the first bad setting.

        Example:
            >>> TuneConfig(min_epochs=3, max_epochs=2).validate()
            Traceback (most recent call last):
            ...
            reference_pipeline.tune.TuneError: tune.min_epochs (3) must be in 1..tune.max_epochs (2)
        """
        if self.n_trials < 1:
            raise TuneError(f"tune.n_trials must be >= 1, got {self.n_trials}")
        if not 0 < self.lr_min < self.lr_max:
            raise TuneError(f"tune.lr_min ({self.lr_min}) must be in (0, tune.lr_max)")
        if not 0 <= self.dropout_min <= self.dropout_max < 1:
            raise TuneError("tune.dropout_min <= tune.dropout_max must both be in [0, 1)")
        if not self.embedding_dims or any(d < 1 for d in self.embedding_dims):
            raise TuneError("tune.embedding_dims must be a non-empty list of positive ints")
        if self.max_word_ngrams < 1:
            raise TuneError(f"tune.max_word_ngrams must be >= 1, got {self.max_word_ngrams}")
        if self.pruner not in ("median", "none"):
            raise TuneError(f"tune.pruner must be 'median' or 'none', got {self.pruner!r}")
        if not 1 <= self.min_epochs <= self.max_epochs:
            raise TuneError(
                f"tune.min_epochs ({self.min_epochs}) must be in 1..tune.max_epochs "
                f"({self.max_epochs})"
            )


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    if isinstance(value, str) and annotation is not str and annotation != (str | None):
        import yaml

        value = yaml.safe_load(value)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if value is None and type(None) in args:
        return None
    if origin is list:
        if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return value
        raise TuneError(f"{key} must be a list of ints, got {value!r}")
    wanted = [a for a in args if a is not type(None)] or [annotation]
    for kind in wanted:
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            return value
    names = " or ".join(getattr(k, "__name__", str(k)) for k in wanted)
    raise TuneError(f"{key} must be {names}, got {value!r}")


def default_storage(out_dir: str | os.PathLike[str]) -> str:
    """The default study database: SQLite in ``out_dir``.

    Example:
        >>> default_storage("artifacts/tune")
        'sqlite:///artifacts/tune/optuna.db'
    """
    return f"sqlite:///{Path(out_dir) / DEFAULT_DB}"


def _suggest(trial: optuna.Trial, params: Params, settings: TuneConfig) -> Params:
    """Sample one configuration and return params with it applied."""
    model = dataclasses.replace(
        params.model,
        embedding_dim=trial.suggest_categorical("embedding_dim", list(settings.embedding_dims)),
        dropout=trial.suggest_float("dropout", settings.dropout_min, settings.dropout_max),
        word_ngrams=trial.suggest_int("word_ngrams", 1, settings.max_word_ngrams),
    )
    train = dataclasses.replace(
        params.train,
        lr=trial.suggest_float("lr", settings.lr_min, settings.lr_max, log=True),
        epochs=trial.suggest_int("epochs", settings.min_epochs, settings.max_epochs),
    )
    return dataclasses.replace(params, model=model, train=train)


#: Where each sampled name goes in params.yaml.
_OVERRIDE_KEYS = {
    "lr": "train.lr",
    "epochs": "train.epochs",
    "embedding_dim": "model.embedding_dim",
    "dropout": "model.dropout",
    "word_ngrams": "model.word_ngrams",
}


class _Objective:
    """Train one sampled configuration, reporting val macro-F1 each epoch."""

    def __init__(
        self,
        params: Params,
        train_df: pd.DataFrame,
        val_df: pd.DataFrame,
        settings: TuneConfig,
        epoch_callback: Callable[[int, int, float], None] | None,
    ) -> None:
        import torch

        from reference_pipeline.data import LabelEncoder
        from reference_pipeline.train import select_device

        self.params = params
        self.settings = settings
        self.train_texts = [str(t) for t in train_df["text"]]
        self.val_texts = [str(t) for t in val_df["text"]]
        self.encoder = LabelEncoder().fit(train_df["tag"])
        self.y_train = torch.as_tensor(self.encoder.encode(train_df["tag"]))
        self.y_val = self.encoder.encode(val_df["tag"])
        self.device = select_device(params.train.device)
        self.epoch_callback = epoch_callback
        # Featurizing is the slow part; trials with the same tokenizer share it.
        self._features: dict[tuple[int, ...], tuple[list[Any], list[Any]]] = {}

    def _encoded(self, params: Params) -> tuple[list[Any], list[Any]]:
        from reference_pipeline.model import Tokenizer

        m = params.model
        tokenizer = Tokenizer(
            hash_buckets=m.hash_buckets,
            word_ngrams=m.word_ngrams,
            char_ngram_min=m.char_ngram_min,
            char_ngram_max=m.char_ngram_max,
            max_words=m.max_words,
        )
        key = tuple(tokenizer.to_dict().values())
        if key not in self._features:
            self._features[key] = (
                tokenizer.encode_many(self.train_texts),
                tokenizer.encode_many(self.val_texts),
            )
        return self._features[key]

    def __call__(self, trial: optuna.Trial) -> float:
        import numpy as np
        import optuna
        import torch

        from reference_pipeline.model import build_model, collate
        from reference_pipeline.train import macro_f1

        params = _suggest(trial, self.params, self.settings)
        x_train, x_val = self._encoded(params)
        k = len(self.encoder)
        seed = self.settings.seed
        torch.manual_seed(seed)
        model = build_model(
            {
                "hash_buckets": params.model.hash_buckets,
                "embedding_dim": params.model.embedding_dim,
                "num_classes": k,
                "dropout": params.model.dropout,
            }
        ).to(self.device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=params.train.lr, weight_decay=params.train.weight_decay
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        batch_size = params.train.batch_size
        best = 0.0
        for epoch in range(1, params.train.epochs + 1):
            # Phase 1: one pass over shuffled training batches.
            model.train()
            order = torch.randperm(
                len(x_train), generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
            )
            for batch in torch.split(order, batch_size):
                ids, offsets = collate([x_train[i] for i in batch.tolist()])
                optimizer.zero_grad(set_to_none=True)
                logits = model(ids.to(self.device), offsets.to(self.device))
                loss = loss_fn(logits.float(), self.y_train[batch].to(self.device))
                loss.backward()
                optimizer.step()
            # Phase 2: validation macro-F1, reported so the pruner can act.
            model.eval()
            preds: list[Any] = []
            with torch.inference_mode():
                for start in range(0, len(x_val), 512):
                    ids, offsets = collate(x_val[start : start + 512])
                    out = model(ids.to(self.device), offsets.to(self.device))
                    preds.append(out.argmax(dim=1).cpu().numpy())
            f1 = macro_f1(self.y_val, np.concatenate(preds), k)
            best = max(best, f1)
            trial.report(f1, epoch)
            if self.epoch_callback is not None:
                self.epoch_callback(trial.number, epoch, f1)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                raise optuna.TrialPruned(f"val macro-F1 {f1:.4f} at epoch {epoch}")
        return best


def tune(
    params: Params,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    settings: TuneConfig | None = None,
    *,
    epoch_callback: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Run (or extend) an Optuna study and write ``best_params.json``.

    Args:
        params: Base parameters; each trial overrides the sampled keys.
        train_df: Training rows with ``text`` and ``tag``.
        val_df: Validation rows; their macro-F1 is the objective.
        out_dir: Folder for ``best_params.json`` (and the default SQLite study).
        settings: Budget, storage and search space; defaults to
            ``TuneConfig.from_params(params)``.
        epoch_callback: Called as ``(trial_number, epoch, val_macro_f1)`` after
            each epoch (progress display).

    Returns:
        The content of ``best_params.json``: ``best_value``, ``best_params``,
        ``overrides`` (dotted keys for ``--set``), ``best_trial``, trial counts,
        ``epochs_trained``, ``study_name``, ``storage``, ``seconds`` and ``best_params_path``.

    Raises:
        TuneError: A bad setting or storage URL.

    Example:
        >>> result = tune(params, train_df, val_df, "artifacts/tune",
        ...               TuneConfig(n_trials=10))  # doctest: +SKIP
        >>> result["best_value"]  # doctest: +SKIP
        0.981
    """
    import optuna

    from reference_pipeline.evaluate import write_json_atomic

    settings = settings or TuneConfig.from_params(params)
    settings.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage_url = settings.storage or default_storage(out)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=settings.seed)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(
            n_startup_trials=settings.pruner_startup_trials,
            n_warmup_steps=settings.pruner_warmup_epochs,
        )
        if settings.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    try:
        study = optuna.create_study(
            study_name=settings.study_name,
            storage=storage_url,
            direction="maximize",
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    except Exception as exc:
        # A malformed URL is a ValueError/ArgumentError, a missing driver an
        # ImportError, an unreachable server SQLAlchemy's OperationalError.
        if not isinstance(exc, ValueError | ImportError) and not type(exc).__module__.startswith(
            "sqlalchemy"
        ):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TuneError(
            f"storage {storage_url!r}: cannot open the study database: {first}"
        ) from exc
    objective = _Objective(params, train_df, val_df, settings, epoch_callback)
    start = time.perf_counter()
    study.optimize(objective, n_trials=settings.n_trials, timeout=settings.timeout)
    seconds = time.perf_counter() - start
    states = [t.state for t in study.trials]
    complete = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
    pruned = sum(s == optuna.trial.TrialState.PRUNED for s in states)
    if complete == 0:
        raise TuneError(
            f"study {settings.study_name!r}: no trial completed ({pruned} pruned); "
            "raise tune.n_trials or tune.pruner_startup_trials"
        )
    best = study.best_trial
    path = out / BEST_PARAMS_FILE
    result: dict[str, Any] = {
        "best_value": best.value,
        "best_params": dict(best.params),
        "overrides": {_OVERRIDE_KEYS[k]: v for k, v in best.params.items()},
        "best_trial": best.number,
        "n_trials": len(study.trials),
        "n_complete": complete,
        "n_pruned": pruned,
        # Epochs trained over all trials: what pruning saves.
        "epochs_trained": sum(len(t.intermediate_values) for t in study.trials),
        "study_name": settings.study_name,
        "storage": storage_url,
        "seconds": round(seconds, 3),
        "best_params_path": str(path),
    }
    write_json_atomic(result, path)
    return result
