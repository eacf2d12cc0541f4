"""Prediction: load the trained artefacts and classify texts in batches.

Example:
    >>> predictor = Predictor.load("artifacts")  # doctest: +SKIP
    >>> predictor.predict(["Arsenal beat Chelsea 2-0 in the cup final"])  # doctest: +SKIP
    ['sports']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reference_pipeline.data import LabelEncoder, clean_text
from reference_pipeline.model import TextClassifier, Tokenizer, build_model, collate

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
    """A trained classifier with its tokenizer, label encoder and text cleaning.

    Args:
        model: The trained :class:`TextClassifier`.
        tokenizer: The tokenizer it was trained with.
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
        model: TextClassifier,
        tokenizer: Tokenizer,
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
        cls, artifacts_dir: str | Path, *, device: str | torch.device = "cpu", batch_size: int = 512
    ) -> Predictor:
        """Load ``model.pt`` (``weights_only=True``) and ``label_encoder.json`` from a folder.

        Raises:
            PredictError: A file is missing or does not hold a trained model.

        Example:
            >>> predictor = Predictor.load("artifacts")  # doctest: +SKIP
        """
        folder = Path(artifacts_dir)
        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise PredictError(f"{model_path}: not found; train the model first")
        try:
            saved: dict[str, Any] = torch.load(model_path, map_location="cpu", weights_only=True)
            model = build_model(saved["model_args"])
            model.load_state_dict(saved["state_dict"])
            tokenizer = Tokenizer.from_dict(saved["tokenizer"])
        except Exception as exc:
            raise PredictError(f"{model_path}: not a trained model file ({exc})") from exc
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
            "encoder": dict(saved.get("encoder", {"kind": "hashed"})),
            "model_args": dict(saved["model_args"]),
            "classes": encoder.classes,
            "lowercase": lowercase,
            "path": str(folder),
        }
        return predictor

    @property
    def info(self) -> dict[str, Any]:
        """What the checkpoint records: encoder kind and weights hash, model args, classes.

        Keys: ``encoder`` (``{"kind": "hashed"}``, or for ``"pretrained"`` also
        ``mode``, ``path``, ``weights_sha256``, ``max_length``), ``model_args``,
        ``classes``, ``lowercase`` and ``path`` (the folder loaded). A copy:
        changing it changes nothing.

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
            PredictError: ``texts`` is a single string or holds a non-string.

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
                ids, offsets = collate(self.tokenizer.encode_many(cleaned))
                logits = self.model(ids.to(self.device), offsets.to(self.device))
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
