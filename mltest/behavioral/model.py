"""The model interface of behavioural tests: texts in, probabilities or labels out.

Any callable ``list[str] -> (n, k) probabilities`` (numpy, torch, nested
lists) or ``list[str] -> n labels`` works, together with its label list.
:class:`Model` batches the calls, deduplicates texts (each unique text is
predicted once, and remembered for later tests using the same ``Model``),
and validates the output: a wrong shape, a non-finite value or a label
outside the label list is one :class:`ModelOutputError` naming the problem.

Example:
    >>> import numpy as np
    >>> m = Model(lambda texts: np.tile([0.2, 0.8], (len(texts), 1)), ["neg", "pos"])
    >>> m.predict(["a", "b", "a"]).label_names()
    ['pos', 'pos', 'pos']
    >>> m.calls
    1
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mltest.errors import MLUsageError, require

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Model",
    "ModelOutputError",
    "Predictions",
    "as_model",
    "from_predictor",
    "from_torch",
]

#: Texts per model call unless told otherwise.
DEFAULT_BATCH_SIZE = 256


class ModelOutputError(MLUsageError):
    """The model returned something behavioural tests cannot use.

    Example:
        >>> raise ModelOutputError("model returned shape (3,) for 2 texts")
        Traceback (most recent call last):
        ...
        mltest.behavioral.model.ModelOutputError: model returned shape (3,) for 2 texts
    """


def _np() -> Any:
    return require("numpy", "behavioral", purpose="behavioural tests")


class Predictions:
    """Predictions for a list of texts: a probability matrix and the label list.

    Attributes:
        probs: ``(n, k)`` float array; one-hot rows for label-only models.
        labels: The label names, ``k`` of them.
        has_proba: False when the model returned labels (confidences unknown).

    Example:
        >>> import numpy as np
        >>> p = Predictions(np.array([[0.1, 0.9]]), ("a", "b"))
        >>> p.label_names(), p.confidence().tolist()
        (['b'], [0.9])
    """

    __slots__ = ("_argmax", "has_proba", "labels", "probs")

    def __init__(self, probs: np.ndarray, labels: Sequence[str], has_proba: bool = True) -> None:
        self.probs = probs
        self.labels = tuple(labels)
        self.has_proba = has_proba
        self._argmax: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.probs.shape[0])

    def label_index(self) -> np.ndarray:
        """The predicted class index of each text (argmax)."""
        if self._argmax is None:
            self._argmax = self.probs.argmax(axis=1)
        return self._argmax

    def label_names(self) -> list[str]:
        """The predicted label of each text."""
        return [self.labels[i] for i in self.label_index().tolist()]

    def confidence(self) -> np.ndarray:
        """The probability of the predicted class for each text."""
        idx = self.label_index()
        return self.probs[_np().arange(len(idx)), idx]  # type: ignore[no-any-return]

    def take(self, rows: np.ndarray) -> Predictions:
        """The predictions of the given rows."""
        return Predictions(self.probs[rows], self.labels, self.has_proba)


class Model:
    """A text classifier as behavioural tests see it.

    Args:
        predict: ``list[str] -> (n, k)`` probabilities (numpy array, torch
            tensor or nested lists) or ``-> n`` labels (names from
            ``labels``, or integer class indices).
        labels: The class names, in the order of the probability columns.
        batch_size: Texts per call.
        cache: Remember predictions by text, so that tests sharing this
            ``Model`` (return it from a session-scoped fixture) predict each
            unique text once.
        name: Shown in messages.

    Attributes:
        calls: Number of calls made to ``predict`` so far.
        texts_predicted: Number of texts sent to ``predict`` so far.

    Example:
        >>> m = Model(lambda texts: ["pos" for _ in texts], ["neg", "pos"])
        >>> m.predict(["fine"]).has_proba
        False
    """

    def __init__(
        self,
        predict: Callable[[list[str]], Any],
        labels: Sequence[str],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cache: bool = True,
        name: str | None = None,
    ) -> None:
        if not callable(predict):
            raise MLUsageError(f"model: predict must be callable, got {type(predict).__name__}")
        if isinstance(labels, str) or not labels:
            raise MLUsageError(f"model: give the label list (a non-empty list), got {labels!r}")
        names = [str(x) for x in labels]
        if len(set(names)) != len(names):
            raise MLUsageError(f"model: the label list has duplicates: {names}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise MLUsageError(f"model: batch_size must be >= 1, got {batch_size!r}")
        self.predict_fn = predict
        self.labels = tuple(names)
        self.batch_size = batch_size
        self.cache = cache
        self.name: str = name or str(getattr(predict, "__name__", type(predict).__name__))
        self.calls = 0
        self.texts_predicted = 0
        self._index: dict[str, int] = {}
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None
        self._has_proba: bool | None = None

    def __repr__(self) -> str:
        return f"Model({self.name}, labels={list(self.labels)})"

    def predict(self, texts: Sequence[str]) -> Predictions:
        """Predict ``texts``: unique texts only, in batches, validated.

        Raises:
            ModelOutputError: When the output has the wrong shape, a non-finite
                value or a label outside the label list.

        Example:
            >>> m = Model(lambda t: [[1.0, 0.0]] * len(t), ["a", "b"])
            >>> len(m.predict(["x", "y", "x"]))
            3
        """
        np = _np()
        if not self.cache:
            self._index.clear()
            self._blocks.clear()
            self._matrix = None
        index = self._index
        unique = list(dict.fromkeys(texts))
        missing = [t for t in unique if t not in index] if index else unique
        if missing:
            start = len(index)
            for b in range(0, len(missing), self.batch_size):
                batch = missing[b : b + self.batch_size]
                self._blocks.append(self._call(batch))
            index.update(zip(missing, range(start, start + len(missing)), strict=False))
            self._matrix = None
        if self._matrix is None:
            if not self._blocks:
                k = len(self.labels)
                return Predictions(np.zeros((0, k)), self.labels, self._has_proba is not False)
            self._matrix = (
                np.concatenate(self._blocks) if len(self._blocks) > 1 else self._blocks[0]
            )
            self._blocks = [self._matrix]
        rows = np.fromiter(map(index.__getitem__, texts), dtype=np.intp, count=len(texts))
        return Predictions(self._matrix[rows], self.labels, bool(self._has_proba))

    def _call(self, batch: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_predicted += len(batch)
        out = self.predict_fn(batch)
        probs, has_proba = _to_matrix(out, batch, self.labels, self.name)
        if self._has_proba is None:
            self._has_proba = has_proba
        elif self._has_proba != has_proba:
            raise ModelOutputError(
                f"model {self.name}: returned probabilities for some batches and labels "
                "for others; return one kind"
            )
        return probs


def _to_matrix(
    out: Any, batch: Sequence[str], labels: Sequence[str], name: str
) -> tuple[np.ndarray, bool]:
    """Turn a model's raw output into an ``(n, k)`` float matrix, validating it."""
    np = _np()
    n, k = len(batch), len(labels)
    if hasattr(out, "detach") and hasattr(out, "cpu"):  # a torch tensor
        out = out.detach().cpu()
        out = out.float().numpy() if out.is_floating_point() else out.numpy()
    if isinstance(out, (list, tuple)) and out and isinstance(out[0], str):
        arr = np.asarray(out, dtype=object)
    else:
        try:
            arr = np.asarray(out)
        except (ValueError, TypeError) as exc:
            raise ModelOutputError(
                f"model {name}: output is not an array of probabilities or labels "
                f"({type(out).__name__}: {exc})"
            ) from None
    if arr.ndim == 1 and arr.dtype.kind in "OUS":  # labels
        if arr.shape[0] != n:
            raise ModelOutputError(
                f"model {name}: returned {arr.shape[0]} labels for {n} texts; "
                "return one label per text"
            )
        position = {lab: i for i, lab in enumerate(labels)}
        idx = np.empty(n, dtype=np.intp)
        for i, lab in enumerate(arr.tolist()):
            j = position.get(lab) if isinstance(lab, str) else None
            if j is None:
                raise ModelOutputError(
                    f"model {name}: returned label {lab!r} for text {batch[i]!r}, which is "
                    f"not in the label list {list(labels)}"
                )
            idx[i] = j
        probs = np.zeros((n, k))
        probs[np.arange(n), idx] = 1.0
        return probs, False
    if arr.ndim == 1 and arr.dtype.kind in "iu":  # class indices
        if arr.shape[0] != n:
            raise ModelOutputError(
                f"model {name}: returned {arr.shape[0]} labels for {n} texts; "
                "return one label per text"
            )
        bad = np.flatnonzero((arr < 0) | (arr >= k))
        if bad.size:
            i = int(bad[0])
            raise ModelOutputError(
                f"model {name}: returned class index {int(arr[i])} for text {batch[i]!r}, "
                f"outside the label list of {k} labels {list(labels)}"
            )
        probs = np.zeros((n, k))
        probs[np.arange(n), arr] = 1.0
        return probs, False
    if arr.dtype.kind not in "fiub" or arr.shape != (n, k):
        shape = tuple(arr.shape) if arr.dtype.kind in "fiub" else f"{arr.shape} ({arr.dtype})"
        raise ModelOutputError(
            f"model {name}: returned shape {shape} for {n} texts; expected ({n}, {k}) = "
            f"(texts, labels {list(labels)}) probabilities, or {n} labels"
        )
    probs = arr.astype(np.float64, copy=False)
    finite = np.isfinite(probs)
    if not finite.all():
        i = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ModelOutputError(
            f"model {name}: returned non-finite probabilities {probs[i].tolist()} for text "
            f"{batch[i]!r}"
        )
    return probs, True


def from_predictor(predictor: Any, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Model:
    """Wrap an object with ``predict_proba(texts) -> (n, k)`` and ``labels``.

    ``reference_pipeline.predict.Predictor`` has this shape, as do many
    scikit-learn text pipelines once given a ``labels`` attribute.

    Raises:
        MLUsageError: When the object lacks either attribute.

    Example:
        >>> class P:
        ...     labels = ["a", "b"]
        ...     def predict_proba(self, texts):
        ...         return [[0.5, 0.5] for _ in texts]
        >>> from_predictor(P()).labels
        ('a', 'b')
    """
    proba = getattr(predictor, "predict_proba", None)
    labels = getattr(predictor, "labels", None)
    if not callable(proba) or labels is None:
        raise MLUsageError(
            f"{type(predictor).__name__} is not a predictor: it needs a "
            "predict_proba(texts) method and a labels attribute"
        )
    return Model(proba, list(labels), batch_size=batch_size, name=type(predictor).__name__)


def from_torch(
    module: Any,
    tokenizer: Callable[[list[str]], Any],
    labels: Sequence[str],
    *,
    device: Any = None,
    batch_size: int = 64,
    softmax: bool = True,
) -> Model:
    """Wrap a torch model and a tokenizer as a :class:`Model`.

    ``tokenizer(texts)`` returns a tensor, a tuple of tensors or a dict of
    tensors; they are moved to ``device`` and passed to the module
    (positionally, unpacked, or as keyword arguments). The output (or its
    ``.logits``) is turned into probabilities with a softmax unless
    ``softmax=False``. Runs under ``torch.inference_mode()`` in eval mode.

    Example:
        >>> model = from_torch(net, tokenize, ["neg", "pos"])  # doctest: +SKIP
    """
    torch = require("torch", "torch", purpose="from_torch")
    dev = torch.device(device) if device is not None else None

    def move(x: Any) -> Any:
        return x.to(dev) if dev is not None and hasattr(x, "to") else x

    def predict(texts: list[str]) -> Any:
        enc = tokenizer(texts)
        if hasattr(module, "eval"):
            module.eval()
        with torch.inference_mode():
            if isinstance(enc, dict):
                out = module(**{k: move(v) for k, v in enc.items()})
            elif isinstance(enc, (tuple, list)):
                out = module(*[move(v) for v in enc])
            else:
                out = module(move(enc))
            out = getattr(out, "logits", out)
            if softmax:
                out = torch.softmax(out.float(), dim=-1)
        return out

    name = type(module).__name__
    return Model(predict, labels, batch_size=batch_size, name=name)


def as_model(obj: Any, labels: Sequence[str] | None = None) -> Model:
    """Turn what a test was given into a :class:`Model`.

    Accepts a ``Model``; a predictor (``predict_proba`` + ``labels``); or a
    callable plus ``labels`` (taken from ``obj.labels`` when not given).

    Raises:
        MLUsageError: When no label list can be found or ``obj`` is not usable.

    Example:
        >>> as_model(lambda t: ["a"] * len(t), ["a", "b"]).labels
        ('a', 'b')
    """
    if isinstance(obj, Model):
        return obj
    if labels is None and callable(getattr(obj, "predict_proba", None)):
        return from_predictor(obj)
    if not callable(obj):
        raise MLUsageError(
            f"the model is a {type(obj).__name__}: give a mltest.behavioral.Model, an object "
            "with predict_proba(texts) and labels, or a callable texts -> probabilities"
        )
    labels = labels if labels is not None else getattr(obj, "labels", None)
    if labels is None:
        raise MLUsageError(
            f"the model {getattr(obj, '__name__', type(obj).__name__)} has no label list: "
            "wrap it as Model(fn, labels=[...]) or give labels: in the suite"
        )
    return Model(obj, labels)
