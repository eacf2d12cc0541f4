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

__all__ = ["PredictError", "Predictor"]

MODEL_FILE = "model.pt"
ENCODER_FILE = "label_encoder.json"


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

        A pretrained-encoder model loads its weights from the path its
        checkpoint records; in frozen mode they must hash as recorded.

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
