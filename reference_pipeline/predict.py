"""Prediction: load the trained artefacts and classify texts in batches.

Example:
    >>> predictor = Predictor.load("artifacts")  # doctest: +SKIP
    >>> predictor.predict(["Arsenal beat Chelsea 2-0 in the cup final"])  # doctest: +SKIP
    ['sports']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reference_pipeline.data import LabelEncoder, clean_text
from reference_pipeline.model import Tokenizer, build_model

if TYPE_CHECKING:
    from torch import nn

__all__ = ["EnsemblePredictor", "PredictError", "Predictor", "save_ensemble"]

MODEL_FILE = "model.pt"
ENCODER_FILE = "label_encoder.json"
#: Marks a model folder as an ensemble: its members are in ``members/<name>/``.
ENSEMBLE_FILE = "ensemble.json"
#: What a member folder keeps of a trained model (the checkpoint for resuming is left out).
MEMBER_FILES = (MODEL_FILE, ENCODER_FILE, "config.json", "train_summary.json")


class PredictError(ValueError):
    """The artefacts cannot be loaded or the input cannot be predicted.

    Example:
        >>> raise PredictError("artifacts/model.pt: not found; train first")
        Traceback (most recent call last):
        ...
        reference_pipeline.predict.PredictError: artifacts/model.pt: not found; train first
    """


class Predictor:
    """A trained classifier with its featurizer, label encoder and text cleaning.

    Either kind of model: the hashed n-gram :class:`~reference_pipeline.model.TextClassifier`
    with its :class:`~reference_pipeline.model.Tokenizer`, or the pretrained
    encoder's head (frozen sentence vectors, cached on disk per text hash) or
    fine-tuned network with its featurizer from :mod:`reference_pipeline.encoders`.

    Args:
        model: The trained network.
        tokenizer: The featurizer it was trained with (``encode_many``, ``collate``).
        encoder: The label encoder it was trained with.
        lowercase: Whether training lowercased the text.
        device: Where to run the model.
        batch_size: Texts per forward pass.

    Example:
        >>> predictor = Predictor.load("artifacts", batch_size=256)  # doctest: +SKIP
        >>> predictor.predict_proba(["a text"]).shape  # doctest: +SKIP
        (1, 5)
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        encoder: LabelEncoder,
        *,
        lowercase: bool = True,
        device: str | torch.device = "cpu",
        batch_size: int = 512,
    ) -> None:
        if batch_size < 1:
            raise PredictError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.lowercase = lowercase
        self.batch_size = batch_size
        self._info: dict[str, Any] = {}

    @classmethod
    def load(
        cls,
        artifacts_dir: str | Path,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 512,
        embedding_cache: str | Path | None = None,
    ) -> Predictor:
        """Load ``model.pt`` (``weights_only=True``) and ``label_encoder.json`` from a folder.

        A folder with ``ensemble.json`` (written by :func:`save_ensemble`) loads
        as an :class:`EnsemblePredictor` over its members. A pretrained-encoder
        model loads its weights from the path its checkpoint records; in frozen
        mode they must hash as recorded.

        Args:
            artifacts_dir: The folder ``train`` wrote.
            device: Where to run the model.
            batch_size: Texts per forward pass.
            embedding_cache: Frozen mode: the sentence-vector cache root; ``None``
                (default) = no disk cache (a service must not grow a folder per
                request), ``""`` = the one the model was trained with.

        Raises:
            PredictError: A file is missing, does not hold a trained model, or
                the pretrained weights it names are missing or different.

        Example:
            >>> predictor = Predictor.load("artifacts")  # doctest: +SKIP
        """
        folder = Path(artifacts_dir)
        if (folder / ENSEMBLE_FILE).is_file():
            return EnsemblePredictor.load_folder(
                folder, device=device, batch_size=batch_size, embedding_cache=embedding_cache
            )
        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise PredictError(f"{model_path}: not found; train the model first")
        from reference_pipeline.encoders import EncoderError

        try:
            saved: dict[str, Any] = torch.load(model_path, map_location="cpu", weights_only=True)
            record = dict(saved.get("encoder", {"kind": "hashed"}))
            if record.get("kind", "hashed") == "hashed":
                tokenizer: Any = Tokenizer.from_dict(saved["tokenizer"])
            else:
                tokenizer = _pretrained_featurizer(record, saved, embedding_cache, device)
            model = build_model(saved["model_args"])
            model.load_state_dict(saved["state_dict"])
        except EncoderError as exc:
            raise PredictError(f"{model_path}: {exc}") from exc
        except Exception as exc:
            # Not torch's text: it advises weights_only=False, wrong for a file we cannot trust.
            raise PredictError(
                f"{model_path}: not a trained model file of this pipeline; "
                "train again: python -m reference_pipeline train"
            ) from exc
        encoder_path = folder / ENCODER_FILE
        encoder = (
            LabelEncoder.load(encoder_path)
            if encoder_path.is_file()
            else LabelEncoder(saved.get("classes", []))
        )
        if len(encoder) != model.args["num_classes"]:
            raise PredictError(
                f"{encoder_path}: {len(encoder)} classes but the model has "
                f"{model.args['num_classes']}; the artefacts are from different runs"
            )
        lowercase = bool(saved.get("preprocess", {}).get("lowercase", True))
        predictor = cls(
            model, tokenizer, encoder, lowercase=lowercase, device=device, batch_size=batch_size
        )
        predictor._info = {
            "encoder": record,
            "model_args": dict(saved["model_args"]),
            "classes": encoder.classes,
            "lowercase": lowercase,
            "path": str(folder),
            "config": dict(saved.get("config", {})),
        }
        return predictor

    @property
    def info(self) -> dict[str, Any]:
        """What the checkpoint records: encoder kind and weights hash, model args, classes.

        Keys: ``encoder`` (``{"kind": "hashed"}``, or for ``"pretrained"`` also
        ``mode``, ``path``, ``source``, ``weights_sha256``, ``max_length``,
        ``dim``), ``model_args``, ``classes``, ``lowercase``, ``path`` (the
        folder loaded) and ``config`` (the resolved params of the training run;
        empty for older checkpoints). A copy: changing it changes nothing.

        Example:
            >>> Predictor.load("artifacts").info["encoder"]["kind"]  # doctest: +SKIP
            'hashed'
        """
        import copy

        return copy.deepcopy(self._info)

    @property
    def labels(self) -> list[str]:
        """The class labels, in the column order of :meth:`predict_proba`."""
        return self.encoder.classes

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Return class probabilities, shape ``(len(texts), len(labels))``.

        Texts are cleaned as in training, featurized and scored in batches of
        ``batch_size`` under ``torch.inference_mode()``.

        Raises:
            PredictError: ``texts`` is a single string, holds a non-string, or
                holds a lone surrogate (U+D800 to U+DFFF: what undecodable bytes
                become, and what a JSON escape can smuggle in), which is no text.

        Example:
            >>> predictor.predict_proba(["stocks fell"]).sum(axis=1)  # doctest: +SKIP
            array([1.], dtype=float32)
        """
        if isinstance(texts, str):
            raise PredictError("texts must be a list of strings, not a single string")
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                cleaned: list[str] = []
                for offset, text in enumerate(chunk):
                    if not isinstance(text, str):
                        raise PredictError(
                            f"texts[{start + offset}] is {type(text).__name__}, expected str"
                        )
                    cleaned.append(clean_text(text, lowercase=self.lowercase))
                try:
                    batch = self.tokenizer.collate(self.tokenizer.encode_many(cleaned))
                except UnicodeEncodeError:
                    raise _not_unicode(chunk, start) from None
                if isinstance(batch, dict):
                    logits = self.model(**{k: v.to(self.device) for k, v in batch.items()})
                else:
                    logits = self.model(*(t.to(self.device) for t in batch))
                out[start : start + len(chunk)] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        return out

    def predict(self, texts: Sequence[str]) -> list[str]:
        """Return the most likely label of each text.

        Example:
            >>> predictor.predict(["the striker scored twice"])  # doctest: +SKIP
            ['sports']
        """
        if len(texts) == 0:
            return []
        return self.encoder.decode(self.predict_proba(texts).argmax(axis=1))


class EnsemblePredictor(Predictor):
    """The mean of its members' class probabilities: one model to evaluate, check and serve.

    Members are trained separately (``run`` trains the hashed n-gram model and
    the pretrained encoder side by side) and must share their labels, in the
    same order. Averaging probabilities needs no weights, so nothing is fitted
    on the data a score is reported on. The hashed and the pretrained models
    err on different BBC articles (1 shared error of 21 at one seed), which is
    what the average gains from.

    Args:
        members: ``name -> Predictor``, at least two.
        path: The folder it was loaded from (recorded in :attr:`info`).

    Raises:
        PredictError: Fewer than two members, or members with different labels.

    Example:
        >>> ensemble = Predictor.load("artifacts/model_ensemble")  # doctest: +SKIP
        >>> ensemble.info["encoder"]["members"]  # doctest: +SKIP
        ['hashed', 'pretrained']
    """

    def __init__(self, members: dict[str, Predictor], *, path: str | Path | None = None) -> None:
        if len(members) < 2:
            raise PredictError(f"an ensemble needs at least 2 members, got {len(members)}")
        first_name, first = next(iter(members.items()))
        for name, member in members.items():
            if member.labels != first.labels:
                raise PredictError(
                    f"ensemble member {name!r} has labels {member.labels}, but "
                    f"{first_name!r} has {first.labels}; train them on the same data"
                )
        self.members = dict(members)
        self.encoder = first.encoder
        self.device = first.device
        self.batch_size = first.batch_size
        self.lowercase = first.lowercase
        self._info = {
            "encoder": {
                "kind": "ensemble",
                "combine": "mean probability",
                "members": list(members),
                "member_encoders": {n: m.info["encoder"] for n, m in members.items()},
            },
            "classes": first.labels,
            "lowercase": first.lowercase,
            "path": None if path is None else str(path),
            "config": {n: m.info.get("config", {}) for n, m in members.items()},
        }

    @classmethod
    def load_folder(
        cls,
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        batch_size: int = 512,
        embedding_cache: str | Path | None = None,
    ) -> EnsemblePredictor:
        """Load the members named by ``folder/ensemble.json`` from ``folder/members/``.

        Raises:
            PredictError: ``ensemble.json`` is unreadable or names a missing member.

        Example:
            >>> EnsemblePredictor.load_folder("artifacts/model_ensemble")  # doctest: +SKIP
        """
        import json

        folder = Path(folder)
        manifest = folder / ENSEMBLE_FILE
        try:
            names = json.loads(manifest.read_text(encoding="utf-8"))["members"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError):
            raise PredictError(
                f"{manifest}: not an ensemble manifest of this pipeline "
                '(expected {"members": [names]})'
            ) from None
        members = {
            name: Predictor.load(
                folder / "members" / name,
                device=device,
                batch_size=batch_size,
                embedding_cache=embedding_cache,
            )
            for name in names
        }
        return cls(members, path=folder)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """The members' probabilities, averaged: shape ``(len(texts), len(labels))``.

        Raises:
            PredictError: As :meth:`Predictor.predict_proba`.

        Example:
            >>> ensemble.predict_proba(["stocks fell"]).sum(axis=1)  # doctest: +SKIP
            array([1.], dtype=float32)
        """
        probas = [member.predict_proba(texts) for member in self.members.values()]
        return np.mean(probas, axis=0).astype(np.float32)


def save_ensemble(folder: str | Path, members: dict[str, str | Path]) -> Path:
    """Write an ensemble model folder: each member's artefacts copied in, and ``ensemble.json``.

    The folder is self-contained (``package`` can store it, ``serve`` can serve
    it). It is built beside its final place and swapped in at the end, so an
    earlier ensemble there stays whole if a copy fails.

    Args:
        folder: The ensemble's folder (replaced if it exists).
        members: ``name -> trained model folder``, at least two.

    Raises:
        PredictError: Fewer than two members, or a member folder without ``model.pt``.

    Example:
        >>> save_ensemble("artifacts/model_ensemble",
        ...               {"hashed": "artifacts/model",
        ...                "pretrained": "artifacts/model_pretrained"})  # doctest: +SKIP
        PosixPath('artifacts/model_ensemble')
    """
    import json
    import shutil
    import tempfile

    if len(members) < 2:
        raise PredictError(f"an ensemble needs at least 2 members, got {len(members)}")
    target = Path(folder)
    for source in members.values():
        if not (Path(source) / MODEL_FILE).is_file():
            raise PredictError(f"{Path(source) / MODEL_FILE}: not found; train the model first")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for name, source in members.items():
            dest = staging / "members" / name
            dest.mkdir(parents=True)
            for file_name in MEMBER_FILES:
                if (Path(source) / file_name).is_file():
                    shutil.copy2(Path(source) / file_name, dest / file_name)
        manifest = {"kind": "ensemble", "combine": "mean probability", "members": list(members)}
        (staging / ENSEMBLE_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        old = target.with_name(f".{target.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _pretrained_featurizer(
    record: dict[str, Any],
    saved: dict[str, Any],
    embedding_cache: str | Path | None,
    device: str | torch.device,
) -> Any:
    from reference_pipeline.encoders import featurizer_from_dict

    if embedding_cache == "":
        trained = saved.get("config", {}).get("model", {}).get("embedding_cache")
        embedding_cache = trained or None
    return featurizer_from_dict(record, cache_dir=embedding_cache, device=device)


def _not_unicode(texts: Sequence[str], start: int) -> PredictError:
    """The error for the first text of ``texts`` that holds a lone surrogate."""
    for offset, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return PredictError(
                f"texts[{start + offset}] holds a lone surrogate "
                f"(U+{ord(text[exc.start]):04X} at character {exc.start}): not valid Unicode "
                "text; send UTF-8"
            )
    return PredictError("a text could not be encoded as UTF-8")  # pragma: no cover - found above
