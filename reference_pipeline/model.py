"""The classifier: fastText-style hashed n-grams averaged by an EmbeddingBag.

A text becomes a bag of ids: each word, each word bigram (up to
``word_ngrams``) and each character n-gram of each word (with ``<``/``>``
boundary marks, lengths ``char_ngram_min..char_ngram_max``) is hashed with
CRC-32 into ``hash_buckets`` rows. CRC-32 is stable across processes and
platforms, unlike Python's salted ``hash()``, so a saved model featurizes the
same text the same way forever. The model averages the bag's embeddings,
applies dropout and a linear layer. Trained from scratch; nothing downloaded.

Example:
    >>> tok = Tokenizer(hash_buckets=1000)
    >>> ids, offsets = tok(["the cat sat", "a dog"])
    >>> model = TextClassifier(hash_buckets=1000, embedding_dim=8, num_classes=3)
    >>> model(ids, offsets).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from reference_pipeline.config import ModelConfig

__all__ = [
    "TextClassifier",
    "Tokenizer",
    "build_model",
    "collate",
    "encoder_record",
    "make_featurizer",
    "model_args_for",
    "ngram_ids",
    "param_groups",
]

_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Tokenizer:
    """Turn texts into ``(ids, offsets)`` tensors for :class:`TextClassifier`.

    Deterministic: the same text gives the same ids in every process.

    Example:
        >>> tok = Tokenizer(hash_buckets=100, word_ngrams=1, char_ngram_max=0)
        >>> tok.encode("Hello hello") == tok.encode("Hello hello")
        True
        >>> tok.words("It's 3pm, ok?")
        ["It's", '3pm', ',', 'ok', '?']
    """

    # Rows of the embedding table; every n-gram id is in [0, hash_buckets).
    hash_buckets: int = 65536
    # Word n-grams up to this length (1 = unigrams only).
    word_ngrams: int = 2
    # Shortest character n-gram of a word (with boundary marks).
    char_ngram_min: int = 3
    # Longest character n-gram; 0 turns character n-grams off.
    char_ngram_max: int = 5
    # Only the first max_words words are used (0 = all).
    max_words: int = 400

    def __post_init__(self) -> None:
        if self.hash_buckets < 1:
            raise ValueError(f"hash_buckets must be >= 1, got {self.hash_buckets}")
        if self.word_ngrams < 1:
            raise ValueError(f"word_ngrams must be >= 1, got {self.word_ngrams}")
        if self.char_ngram_max and not 1 <= self.char_ngram_min <= self.char_ngram_max:
            raise ValueError(
                f"char n-gram range {self.char_ngram_min}..{self.char_ngram_max} is empty"
            )
        # Per-word ids (unigram + character n-grams) are cached: words repeat a lot.
        object.__setattr__(self, "_cache", {})

    def to_dict(self) -> dict[str, int]:
        """Return the settings, enough to rebuild an identical tokenizer.

        Example:
            >>> Tokenizer.from_dict(Tokenizer().to_dict()) == Tokenizer()
            True
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tokenizer:
        """Rebuild a tokenizer from :meth:`to_dict` output.

        Example:
            >>> Tokenizer.from_dict({"hash_buckets": 10}).hash_buckets
            10
        """
        return cls(**{k: int(v) for k, v in data.items()})

    def words(self, text: str) -> list[str]:
        """Split a text into words and punctuation marks.

        Example:
            >>> Tokenizer().words("a b.")
            ['a', 'b', '.']
        """
        if not self.max_words:
            return _WORD.findall(text)
        return [m.group() for m in itertools.islice(_WORD.finditer(text), self.max_words)]

    def _hash(self, key: str) -> int:
        return zlib.crc32(key.encode("utf-8")) % self.hash_buckets

    def _word_entry(self, word: str) -> tuple[int, np.ndarray]:
        """The word's raw CRC-32 and its ids (unigram, then character n-grams), cached."""
        cache: dict[str, tuple[int, np.ndarray]] = self._cache  # type: ignore[attr-defined]
        entry = cache.get(word)
        if entry is None:
            raw = zlib.crc32(("w " + word).encode("utf-8"))
            ids = [raw % self.hash_buckets]
            if self.char_ngram_max:
                marked = f"<{word}>"
                for n in range(self.char_ngram_min, self.char_ngram_max + 1):
                    for i in range(len(marked) - n + 1):
                        ids.append(self._hash("c " + marked[i : i + n]))
            if len(cache) > 500_000:  # bound memory on endless streams of new words
                cache.clear()
            entry = (raw, np.asarray(ids, dtype=np.int64))
            cache[word] = entry
        return entry

    def encode_array(self, text: str) -> np.ndarray:
        """Return the n-gram ids of one text as an int64 array (empty for an empty text).

        Word n-grams (n >= 2) hash the words' CRC-32 values together, as
        fastText does, so they cost a few array operations per text.

        Example:
            >>> Tokenizer(word_ngrams=2, char_ngram_max=0).encode_array("a b c").shape
            (5,)
        """
        words = self.words(text)
        if not words:
            return np.zeros(0, dtype=np.int64)
        cache: dict[str, tuple[int, np.ndarray]] = self._cache  # type: ignore[attr-defined]
        entries = [cache.get(w) or self._word_entry(w) for w in words]
        raw = np.fromiter((e[0] for e in entries), dtype=np.int64, count=len(entries))
        parts = [e[1] for e in entries]
        for n in range(2, min(self.word_ngrams, len(words)) + 1):
            parts.append(ngram_ids(raw, n, self.hash_buckets))
        return np.concatenate(parts)

    def encode(self, text: str) -> list[int]:
        """Return the n-gram ids of one text as a list (may be empty).

        Example:
            >>> len(Tokenizer(word_ngrams=2, char_ngram_max=0).encode("a b c"))
            5
        """
        return [int(i) for i in self.encode_array(text)]

    def encode_many(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Return one int64 id tensor per text (for datasets encoded once).

        Example:
            >>> [t.dtype for t in Tokenizer().encode_many(["a"])]
            [torch.int64]
        """
        return [torch.from_numpy(self.encode_array(t)) for t in texts]

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode texts into a flat id tensor and per-text offsets.

        Example:
            >>> ids, offsets = Tokenizer(word_ngrams=1, char_ngram_max=0)(["a b", "c"])
            >>> ids.shape, offsets.tolist()
            (torch.Size([3]), [0, 2])
        """
        return collate(self.encode_many(texts))

    def collate(self, items: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch per-text id tensors into ``(ids, offsets)`` (the train loop's collate).

        Example:
            >>> Tokenizer().collate([torch.tensor([1]), torch.tensor([2, 3])])[1].tolist()
            [0, 1]
        """
        return collate(items)


#: Multiplier and modulus of the word n-gram hash (a prime below 2**31).
_NGRAM_MULT = 1_000_003
_NGRAM_MOD = 2_147_483_647
_NGRAM_SALT = 2_654_435_761


def ngram_ids(word_hashes: np.ndarray, n: int, buckets: int) -> np.ndarray:
    """Bucket ids of the word n-grams of a text, from its words' CRC-32 values.

    ``h = (...((c0 * M + c1) mod P) * M + c2 ...) mod P``, then
    ``(h + n * SALT) mod buckets``; integer arithmetic, the same everywhere.

    Example:
        >>> ngram_ids(np.array([1, 2, 3]), 2, 10).tolist()
        [7, 1]
    """
    m = len(word_hashes) - n + 1
    acc = word_hashes[:m] % _NGRAM_MOD
    for i in range(1, n):
        acc = (acc * _NGRAM_MULT + word_hashes[i : i + m]) % _NGRAM_MOD
    return (acc + n * _NGRAM_SALT) % buckets


def collate(encoded: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate per-text id tensors into ``(ids, offsets)``.

    Example:
        >>> ids, offsets = collate([torch.tensor([1, 2]), torch.tensor([3])])
        >>> ids.tolist(), offsets.tolist()
        ([1, 2, 3], [0, 2])
    """
    lengths = torch.tensor([len(t) for t in encoded], dtype=torch.int64)
    offsets = torch.zeros(len(encoded), dtype=torch.int64)
    if len(encoded) > 1:
        offsets[1:] = torch.cumsum(lengths[:-1], dim=0)
    ids = torch.cat(list(encoded)) if encoded else torch.zeros(0, dtype=torch.int64)
    return ids, offsets


class TextClassifier(nn.Module):
    """Mean of n-gram embeddings, dropout, then a linear layer to class logits.

    Args:
        hash_buckets: Rows of the embedding table (the tokenizer's bucket count).
        embedding_dim: Width of each embedding.
        num_classes: Number of classes.
        dropout: Dropout probability on the document vector.

    Example:
        >>> model = TextClassifier(hash_buckets=50, embedding_dim=4, num_classes=2)
        >>> ids, offsets = torch.tensor([1, 2, 3]), torch.tensor([0, 1])
        >>> model(ids, offsets).shape
        torch.Size([2, 2])
    """

    def __init__(
        self, hash_buckets: int, embedding_dim: int, num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.args: dict[str, Any] = {
            "hash_buckets": hash_buckets,
            "embedding_dim": embedding_dim,
            "num_classes": num_classes,
            "dropout": dropout,
        }
        self.embedding = nn.EmbeddingBag(hash_buckets, embedding_dim, mode="mean")
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embedding_dim, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise as fastText does: small uniform embeddings, zero output bias.

        Example:
            >>> TextClassifier(10, 4, 2).fc.bias.abs().sum().item()
            0.0
        """
        bound = 1.0 / self.embedding.embedding_dim
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Return logits of shape ``(len(offsets), num_classes)``.

        An empty bag (a text with no tokens) averages to the zero vector.

        Example:
            >>> m = TextClassifier(10, 4, 3)
            >>> m(torch.tensor([1, 2]), torch.tensor([0])).shape
            torch.Size([1, 3])
        """
        pooled: torch.Tensor = self.embedding(ids, offsets)
        logits: torch.Tensor = self.fc(self.dropout(pooled))
        return logits


def build_model(model_args: dict[str, Any]) -> nn.Module:
    """Rebuild a model from its saved ``args``.

    ``args["arch"]`` picks the network: absent or ``"hashed"`` is
    :class:`TextClassifier`; ``"embedding_head"`` and ``"transformer"`` are the
    pretrained encoder's head and fine-tuned network (in
    :mod:`reference_pipeline.encoders`; a transformer is rebuilt from its
    ``source`` weights, which the saved state then overwrites).

    Example:
        >>> build_model({"hash_buckets": 10, "embedding_dim": 4, "num_classes": 2}).args["dropout"]
        0.0
    """
    args = dict(model_args)
    arch = args.pop("arch", "hashed")
    if arch == "hashed":
        return TextClassifier(**args)
    from reference_pipeline import encoders

    if arch == "embedding_head":
        args.pop("arch", None)
        return encoders.EmbeddingHead(**args)
    if arch == "transformer":
        _, transformer = encoders.load_pretrained(args["source"])
        return encoders.TransformerClassifier(
            transformer,
            int(args["num_classes"]),
            float(args.get("dropout", 0.1)),
            source=args["source"],
            scale=float(args.get("scale", 1.0)),
        )
    raise ValueError(f"unknown model arch {arch!r}: expected hashed, embedding_head or transformer")


ENCODERS = ("hashed", "pretrained")


def make_featurizer(
    cfg: ModelConfig,
    device: torch.device | str = "cpu",
    *,
    mode: str | None = None,
    train_texts: Sequence[str] | None = None,
) -> Any:
    """The featurizer of ``model.encoder``: texts -> per-text items -> batches.

    Every featurizer has ``encode_many(texts)`` (one item per text),
    ``collate(items)`` (a tuple of tensors, or a dict the model takes as
    keywords) and ``to_dict()``. The hashed encoder's is a :class:`Tokenizer`.

    Args:
        cfg: The ``model`` section.
        device: Training device (decides ``pretrained_mode: auto``).
        mode: Overrides the resolved pretrained mode.
        train_texts: The training texts: with ``pretrained_mode: auto`` off CUDA,
            their token count decides between ``finetune`` (at most
            ``cpu_finetune_tokens``) and ``frozen``. Without them ``auto`` is
            ``frozen`` off CUDA.

    Raises:
        ValueError: An unknown ``model.encoder`` (``EncoderError`` for the pretrained one).

    Example:
        >>> from reference_pipeline.config import ModelConfig
        >>> type(make_featurizer(ModelConfig())).__name__
        'Tokenizer'
    """
    if cfg.encoder == "hashed":
        return Tokenizer(
            hash_buckets=cfg.hash_buckets,
            word_ngrams=cfg.word_ngrams,
            char_ngram_min=cfg.char_ngram_min,
            char_ngram_max=cfg.char_ngram_max,
            max_words=cfg.max_words,
        )
    if cfg.encoder != "pretrained":
        raise ValueError(f"model.encoder {cfg.encoder!r}: use {' or '.join(ENCODERS)}")
    from reference_pipeline import encoders

    tokens = None
    auto_on_cpu = cfg.pretrained_mode == "auto" and torch.device(device).type != "cuda"
    if mode is None and auto_on_cpu and train_texts is not None and cfg.cpu_finetune_tokens:
        tokens = encoders.count_tokens(
            cfg.pretrained_path,
            train_texts,
            cfg.max_length,
            stop_above=cfg.cpu_finetune_tokens,
        )
    resolved = mode or encoders.resolve_mode(
        cfg.pretrained_mode,
        device,
        train_tokens=tokens,
        cpu_finetune_tokens=cfg.cpu_finetune_tokens,
    )
    if resolved == "frozen":
        return encoders.FrozenFeaturizer(
            cfg.pretrained_path,
            max_length=cfg.max_length,
            max_chunks=cfg.max_chunks,
            cache_dir=cfg.embedding_cache or None,
            device=device,
        )
    return encoders.TokenFeaturizer(cfg.pretrained_path, max_length=cfg.max_length, device=device)


def encoder_record(featurizer: Any) -> dict[str, Any]:
    """What a checkpoint says about its encoder: ``{"kind": "hashed"}`` or the pretrained record.

    Example:
        >>> encoder_record(Tokenizer())
        {'kind': 'hashed'}
    """
    if isinstance(featurizer, Tokenizer):
        return {"kind": "hashed"}
    record: dict[str, Any] = featurizer.to_dict()
    return record


def model_args_for(cfg: ModelConfig, featurizer: Any, num_classes: int) -> dict[str, Any]:
    """The ``args`` of the network that fits ``featurizer`` (what :func:`build_model` takes).

    Example:
        >>> from reference_pipeline.config import ModelConfig
        >>> model_args_for(ModelConfig(), Tokenizer(), 3)["num_classes"]
        3
    """
    if isinstance(featurizer, Tokenizer):
        return {
            "hash_buckets": cfg.hash_buckets,
            "embedding_dim": cfg.embedding_dim,
            "num_classes": num_classes,
            "dropout": cfg.dropout,
        }
    if featurizer.mode == "frozen":
        return {
            "arch": "embedding_head",
            "dim": featurizer.dim,
            "num_classes": num_classes,
            "dropout": cfg.dropout,
            "hidden": cfg.head_hidden,
            "scale": cfg.head_scale,
        }
    return {
        "arch": "transformer",
        "source": featurizer.path,
        "num_classes": num_classes,
        "dropout": cfg.dropout,
        "scale": cfg.head_scale,
    }


def param_groups(model: nn.Module, cfg: ModelConfig, lr: float) -> list[dict[str, Any]]:
    """Optimizer groups with their peak learning rate (``base_lr``; a schedule scales it).

    The hashed model trains at ``lr`` (``train.lr``); the pretrained head at
    ``model.head_lr`` and a fine-tuned encoder at ``model.finetune_lr``.

    Example:
        >>> from reference_pipeline.config import ModelConfig
        >>> [g["base_lr"] for g in param_groups(TextClassifier(10, 4, 2), ModelConfig(), 0.2)]
        [0.2]
    """
    if isinstance(model, TextClassifier):
        return [{"params": list(model.parameters()), "base_lr": lr, "lr": lr}]
    head = getattr(model, "head", None)
    if head is None:  # EmbeddingHead alone (frozen mode)
        return [{"params": list(model.parameters()), "base_lr": cfg.head_lr, "lr": cfg.head_lr}]
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in model.parameters() if id(p) not in head_ids]
    return [
        {"params": body, "base_lr": cfg.finetune_lr, "lr": cfg.finetune_lr},
        {"params": list(head.parameters()), "base_lr": cfg.head_lr, "lr": cfg.head_lr},
    ]
