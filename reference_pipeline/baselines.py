"""Baselines, simplest first: majority class, keyword rules, TF-IDF + logistic regression.

Each baseline has ``fit(train_texts, train_labels)`` with integer class ids
``0..k-1`` (from :class:`~reference_pipeline.data.LabelEncoder`) and
``predict_proba(texts) -> (n, k)`` in that same class order, so the evaluation
code scores them exactly as it scores the neural model.

Example:
    >>> from reference_pipeline.data import LabelEncoder  # doctest: +SKIP
    >>> encoder = LabelEncoder().fit(train_df["tag"])  # doctest: +SKIP
    >>> models = fit_baselines(train_df, encoder)  # doctest: +SKIP
    >>> models["tfidf_logreg"].predict_proba(test_df["text"]).shape  # doctest: +SKIP
    (317, 5)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from reference_pipeline.data import LabelEncoder

__all__ = [
    "Baseline",
    "KeywordBaseline",
    "MajorityClassBaseline",
    "TfidfLogRegBaseline",
    "fit_baselines",
    "fit_timed",
    "single_threaded",
]

_WORD = re.compile(r"[a-z][a-z']+")


class Baseline(Protocol):
    """What every baseline (and the neural model's predictor) offers the evaluation.

    Example:
        >>> isinstance(MajorityClassBaseline(2), Baseline)  # doctest: +SKIP
        True
    """

    name: str

    def fit(self, train_texts: Sequence[str], train_labels: Sequence[int] | np.ndarray) -> Any:
        """Learn from texts and integer class ids."""
        ...

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Return ``(len(texts), num_classes)`` probabilities."""
        ...


def _labels(train_labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("baseline: no training labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"baseline: labels must be class ids in 0..{num_classes - 1}")
    return labels


class MajorityClassBaseline:
    """Predict the training label distribution for every text (argmax = majority class).

    Example:
        >>> b = MajorityClassBaseline(3).fit(["a", "b", "c"], [2, 2, 0])
        >>> b.predict_proba(["x"]).round(2).tolist()
        [[0.33, 0.0, 0.67]]
    """

    name = "majority"

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.prior_: np.ndarray | None = None

    def fit(
        self, train_texts: Sequence[str], train_labels: Sequence[int] | np.ndarray
    ) -> MajorityClassBaseline:
        """Count the class frequencies.

        Example:
            >>> MajorityClassBaseline(2).fit(["a"], [1]).prior_.tolist()
            [0.0, 1.0]
        """
        labels = _labels(train_labels, self.num_classes)
        counts = np.bincount(labels, minlength=self.num_classes).astype(np.float64)
        self.prior_ = counts / counts.sum()
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Return the prior for every text.

        Example:
            >>> MajorityClassBaseline(2).fit(["a"], [0]).predict_proba(["b", "c"]).shape
            (2, 2)
        """
        if self.prior_ is None:
            raise RuntimeError("MajorityClassBaseline: call fit() first")
        return np.tile(self.prior_, (len(texts), 1))


class KeywordBaseline:
    """Rule-based: count each class's keywords in a text; no hit falls back to the prior.

    Keywords are declared (``keywords={class_id: [...]}``) or learned in
    :meth:`fit`: the ``per_class`` words with the highest smoothed log-odds of
    appearing in that class's documents against the others.

    Args:
        num_classes: Number of classes.
        keywords: Declared keywords per class id; learned when ``None``.
        per_class: Keywords learned per class.
        min_docs: A learned keyword appears in at least this many documents.

    Example:
        >>> b = KeywordBaseline(2, keywords={0: ["goal"], 1: ["shares"]})
        >>> b.fit(["a goal", "shares up"], [0, 1]).predict_proba(["late goal"]).argmax()
        np.int64(0)
    """

    name = "keywords"

    def __init__(
        self,
        num_classes: int,
        keywords: Mapping[int, Sequence[str]] | None = None,
        *,
        per_class: int = 25,
        min_docs: int = 5,
    ) -> None:
        self.num_classes = num_classes
        self.declared = keywords
        self.per_class = per_class
        self.min_docs = min_docs
        self.keywords_: dict[int, list[str]] = {}
        self.prior_: np.ndarray | None = None

    def fit(
        self, train_texts: Sequence[str], train_labels: Sequence[int] | np.ndarray
    ) -> KeywordBaseline:
        """Learn (or take) the keywords and the class prior.

        Example:
            >>> b = KeywordBaseline(2, min_docs=1, per_class=1)
            >>> b.fit(["a ball", "b cash"], [0, 1]).keywords_
            {0: ['ball'], 1: ['cash']}
        """
        labels = _labels(train_labels, self.num_classes)
        counts = np.bincount(labels, minlength=self.num_classes).astype(np.float64)
        self.prior_ = counts / counts.sum()
        if self.declared is not None:
            self.keywords_ = {int(k): [w.lower() for w in v] for k, v in self.declared.items()}
            return self
        doc_freq = [Counter[str]() for _ in range(self.num_classes)]
        for text, label in zip(train_texts, labels, strict=True):
            doc_freq[label].update(set(_WORD.findall(text.lower())))
        total = Counter[str]()
        for counter in doc_freq:
            total.update(counter)
        for k in range(self.num_classes):
            n_in = max(counts[k], 1.0)
            n_out = max(counts.sum() - counts[k], 1.0)
            scores = []
            for word, df_all in total.items():
                if df_all < self.min_docs:
                    continue
                inside = doc_freq[k][word]
                outside = df_all - inside
                p_in = (inside + 0.5) / (n_in + 1)
                p_out = (outside + 0.5) / (n_out + 1)
                scores.append((np.log(p_in / (1 - p_in)) - np.log(p_out / (1 - p_out)), word))
            scores.sort(key=lambda s: (-s[0], s[1]))
            self.keywords_[k] = [w for _, w in scores[: self.per_class]]
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Return keyword-hit shares per class (smoothed), or the prior without hits.

        Example:
            >>> b = KeywordBaseline(2, keywords={0: ["goal"], 1: ["shares"]})
            >>> b = b.fit(["x", "y"], [0, 1])
            >>> b.predict_proba(["nothing"]).tolist()
            [[0.5, 0.5]]
        """
        if self.prior_ is None:
            raise RuntimeError("KeywordBaseline: call fit() first")
        lookup: dict[str, list[int]] = {}
        for k, words in self.keywords_.items():
            for word in words:
                lookup.setdefault(word, []).append(k)
        out = np.empty((len(texts), self.num_classes), dtype=np.float64)
        for i, text in enumerate(texts):
            hits = np.zeros(self.num_classes)
            for word in _WORD.findall(text.lower()):
                for k in lookup.get(word, ()):
                    hits[k] += 1
            if hits.sum() == 0:
                out[i] = self.prior_
            else:
                smoothed = hits + 0.1
                out[i] = smoothed / smoothed.sum()
        return out


class TfidfLogRegBaseline:
    """TF-IDF of word unigrams and bigrams, then multinomial logistic regression.

    Args:
        num_classes: Number of classes.
        c: Inverse regularisation strength of the logistic regression.
        seed: Random state for the solver.

    Example:
        >>> b = TfidfLogRegBaseline(2).fit(["good goal", "bad shares"] * 3, [0, 1] * 3)
        >>> b.predict_proba(["goal"]).shape
        (1, 2)
    """

    name = "tfidf_logreg"

    def __init__(self, num_classes: int, *, c: float = 10.0, seed: int = 0) -> None:
        self.num_classes = num_classes
        self.c = c
        self.seed = seed
        self.pipeline_: Any = None

    def fit(
        self, train_texts: Sequence[str], train_labels: Sequence[int] | np.ndarray
    ) -> TfidfLogRegBaseline:
        """Fit the vectorizer and the classifier.

        Example:
            >>> TfidfLogRegBaseline(2).fit(["red ball", "blue cash"], [0, 1]).pipeline_ is not None
            True
        """
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        labels = _labels(train_labels, self.num_classes)
        self.pipeline_ = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, max_features=200_000),
            LogisticRegression(C=self.c, max_iter=1000, random_state=self.seed),
        )
        self.pipeline_.fit(list(train_texts), labels)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Return probabilities over all ``num_classes`` (0 for a class absent in training).

        Example:
            >>> b = TfidfLogRegBaseline(3).fit(["goal", "shares"], [0, 2])
            >>> b.predict_proba(["goal"])[:, 1].tolist()
            [0.0]
        """
        if self.pipeline_ is None:
            raise RuntimeError("TfidfLogRegBaseline: call fit() first")
        seen = self.pipeline_.predict_proba(list(texts))
        out = np.zeros((len(texts), self.num_classes), dtype=np.float64)
        out[:, self.pipeline_.classes_] = seen
        return out


def single_threaded() -> Any:
    """A context in which BLAS and OpenMP pools use one thread (threadpoolctl).

    scikit-learn's solvers (and numpy's BLAS) start one thread per core by
    default; on a shared 2-core machine that oversubscribes and inflates a
    TF-IDF fit about 30x. Timings taken inside this context are honest and
    comparable with the neural model's (trained with one torch thread).

    Example:
        >>> with single_threaded():
        ...     pass
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def fit_timed(
    model: Baseline, train_texts: Sequence[str], train_labels: Sequence[int] | np.ndarray
) -> float:
    """Fit a baseline single-threaded; return the seconds the fit took.

    Example:
        >>> fit_timed(MajorityClassBaseline(2), ["a", "b"], [0, 1]) >= 0
        True
    """
    import time

    with single_threaded():
        start = time.perf_counter()
        model.fit(train_texts, train_labels)
        return time.perf_counter() - start


def fit_baselines(
    train_df: pd.DataFrame, encoder: LabelEncoder, *, seed: int = 0
) -> dict[str, Baseline]:
    """Fit every baseline on ``train_df["text"]`` and the encoded ``train_df["tag"]``.

    Returns:
        ``{"majority": ..., "keywords": ..., "tfidf_logreg": ...}``, fitted.

    Example:
        >>> models = fit_baselines(train_df, encoder)  # doctest: +SKIP
        >>> sorted(models)  # doctest: +SKIP
        ['keywords', 'majority', 'tfidf_logreg']
    """
    texts = list(train_df["text"])
    labels = encoder.encode(train_df["tag"])
    k = len(encoder)
    models: list[Baseline] = [
        MajorityClassBaseline(k),
        KeywordBaseline(k),
        TfidfLogRegBaseline(k, seed=seed),
    ]
    for model in models:
        fit_timed(model, texts, labels)
    return {model.name: model for model in models}
