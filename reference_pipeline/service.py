r"""The BentoML service: classify news items with the model saved in the BentoML model store.

``python -m reference_pipeline package`` saves a trained model into the store
(``BENTOML_HOME`` honoured); ``python -m reference_pipeline serve`` runs
``bentoml serve reference_pipeline.service:Classifier``. Endpoints:

* ``POST /classify``: ``{"items": [{"title": ..., "description": ...} | "text", ...]}``
  -> one ``{tag, confidence, probabilities, model_version}`` per item.
  Batchable: BentoML's adaptive batching merges concurrent requests.
* ``POST /metadata``: the model version, labels, training metrics and provenance.
* BentoML's own ``/healthz``, ``/readyz``, ``/livez``, ``/metrics`` and ``/docs.json``.

Every request to ``/classify`` is checked before BentoML sees it (see
:class:`RequestLimits`): content type, body size, UTF-8, JSON, shape, items per
request and characters per text. Each failure is a 4xx with
``{"error": "<one line naming the problem or the limit>"}``; no client input
reaches the model unchecked, so none can cause a 5xx.

Configuration comes from the environment. Read when the service starts:
``RP_MODEL_TAG`` (default ``reference-classifier:latest``), ``RP_PREDICTION_LOG``
(folder of the prediction log, ``off`` to disable), ``RP_LOG_TEXT`` (``0``:
store only a hash of each text), ``RP_LOG_MAX_BYTES``, ``RP_LOG_BACKUPS``.
Read when this module is imported, because they shape the decorators and the
OpenAPI schema: ``RP_MAX_BATCH_SIZE``, ``RP_MAX_LATENCY_MS``, ``RP_WORKERS`` (default: one
per available core),
``RP_ACCESS_LOG`` (``0``: no access log line per request) and the limits
``RP_MAX_ITEMS``, ``RP_MAX_CHARS``, ``RP_MAX_BODY_BYTES``. Each of these numbers
must be a whole number >= 1; anything else stops the start with one line that
names the variable (:func:`reference_pipeline.config.env_int`).

Example:
    $ python -m reference_pipeline package --model-dir artifacts/model
    $ python -m reference_pipeline serve --port 3000
    $ curl -s localhost:3000/classify -H 'content-type: application/json' \\
        -d '{"items": ["Chelsea win the cup final"]}'
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, ConfigDict, Field

from reference_pipeline.config import available_cores, env_int

__all__ = [
    "MODEL_NAME",
    "Article",
    "Classifier",
    "Metadata",
    "Prediction",
    "RequestLimits",
    "item_text",
    "package_model",
    "validate_request",
]

#: Name of the model in the BentoML store (``package`` saves it under this name).
MODEL_NAME = "reference-classifier"
DEFAULT_TAG = f"{MODEL_NAME}:latest"
#: The model's confidences on the validation split, stored with the model.
REFERENCE_CONFIDENCE = "reference_confidence.json"


#: Adaptive batching. Measured with ``benchmarks/serving.py`` on 2 shared cores,
#: 2 workers (docs/serving.md, Load): max batch 16 gave the lowest p99 (98-128 ms
#: against 104-146 ms for 32 and 64) at the same req/s; at concurrency 32 over two
#: workers a batch rarely holds more than 16 anyway. A 1,000 ms cap lets the
#: dispatcher shed requests only when the server is far behind, not in the
#: machine's stalls.
MAX_BATCH_SIZE = env_int("RP_MAX_BATCH_SIZE", 16)
MAX_LATENCY_MS = env_int("RP_MAX_LATENCY_MS", 1000)


#: Worker processes, one model each. Default: one per available core. With
#: uvloop and httptools, 2 workers on 2 cores served ~2x the req/s of one and
#: brought p99 under 100 ms (docs/serving.md, Load).
WORKERS = env_int("RP_WORKERS", available_cores())
ACCESS_LOG = os.environ.get("RP_ACCESS_LOG", "1").strip().lower() not in ("0", "false", "no")
#: Request limits, also published in the OpenAPI schema (``maxItems``, ``maxLength``).
MAX_ITEMS = env_int("RP_MAX_ITEMS", 64)
MAX_CHARS = env_int("RP_MAX_CHARS", 50000)
MAX_BODY_BYTES = env_int("RP_MAX_BODY_BYTES", 4 * 1024 * 1024)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Article(BaseModel):
    """One news item: the model reads ``title + " " + description``.

    Example:
        >>> Article(title="Chelsea win", description="The cup final...").title
        'Chelsea win'
    """

    model_config = ConfigDict(extra="forbid")
    title: str = Field(description="The headline.", max_length=MAX_CHARS)
    description: str = Field(
        "", description="The article text (may be empty).", max_length=MAX_CHARS
    )


class Prediction(BaseModel):
    """The answer for one item.

    Example:
        >>> Prediction(tag="sport", confidence=0.9, probabilities={"sport": 0.9},
        ...            model_version="reference-classifier:abc").tag
        'sport'
    """

    tag: str = Field(description="The most likely class.")
    confidence: float = Field(description="Probability of `tag`.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")
    model_version: str = Field(description="The BentoML model tag that answered.")


class Metadata(BaseModel):
    """What is being served.

    Example:
        >>> Metadata(model_version="m:1", labels=["a"], metrics={}, info={}).labels
        ['a']
    """

    model_version: str
    labels: list[str]
    metrics: dict[str, Any] = Field(description="Training and evaluation metrics.")
    info: dict[str, Any] = Field(description="Provenance: data hash, git SHA, config, encoder.")
    limits: dict[str, int] = Field(default_factory=dict, description="Request limits.")


def item_text(item: Article | str | dict[str, Any]) -> str:
    """The model input of one item, joined as ``evaluate.model_texts`` joins a row.

    Example:
        >>> item_text({"title": "Cup final", "description": "Chelsea win"})
        'Cup final Chelsea win'
        >>> item_text("plain text")
        'plain text'
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        title, description = str(item.get("title", "")), str(item.get("description", ""))
    else:
        title, description = item.title, item.description
    return f"{title} {description}".strip()


@dataclass(frozen=True)
class RequestLimits:
    """Limits on one ``/classify`` request; each breach is a 4xx naming the limit.

    Attributes:
        max_items: Items per request.
        max_chars: Characters per text (title + " " + description).
        max_body_bytes: Bytes of the request body.

    Example:
        >>> RequestLimits(max_items=8).max_items
        8
    """

    max_items: int = MAX_ITEMS
    max_chars: int = MAX_CHARS
    max_body_bytes: int = MAX_BODY_BYTES


class RequestError(ValueError):
    """A bad request: ``status`` and the one-line message the client reads.

    Example:
        >>> RequestError(422, "items: empty list").status
        422
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }.get(type(value), type(value).__name__)


def validate_request(body: bytes, content_type: str, limits: RequestLimits) -> list[str]:
    """Check one ``/classify`` body and return the texts, or raise :class:`RequestError`.

    Raises:
        RequestError: 415 wrong content type, 413 body too large, 400 not UTF-8 or
            not JSON, 422 wrong shape, too many items or a text too long.

    Example:
        >>> validate_request(b'{"items": ["a b"]}', "application/json", RequestLimits())
        ['a b']
        >>> validate_request(b'{"items": []}', "application/json", RequestLimits())
        Traceback (most recent call last):
        ...
        reference_pipeline.service.RequestError: items: empty list; send 1 to 64 items
    """
    media = content_type.split(";")[0].strip().lower()
    if media != "application/json":
        raise RequestError(
            415, f"content type {media or 'missing'!r} is not supported; send application/json"
        )
    if len(body) > limits.max_body_bytes:
        raise RequestError(
            413,
            f"request body is {len(body):,} bytes; the limit is "
            f"{limits.max_body_bytes:,} bytes (RP_MAX_BODY_BYTES)",
        )
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        payload = json.loads(decoded)
    except ValueError as exc:
        raise RequestError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "request body is JSON nested too deeply") from None
    if not isinstance(payload, dict):
        raise RequestError(422, f'expected an object {{"items": [...]}}, got {_type_name(payload)}')
    extra = sorted(set(payload) - {"items"})
    if extra:
        raise RequestError(422, f"unexpected field {extra[0]!r}; the body has only 'items'")
    if "items" not in payload:
        raise RequestError(422, "items: field required")
    items = payload["items"]
    if not isinstance(items, list):
        raise RequestError(422, f"items: expected an array, got {_type_name(items)}")
    if not items:
        raise RequestError(422, f"items: empty list; send 1 to {limits.max_items} items")
    if len(items) > limits.max_items:
        raise RequestError(
            422,
            f"items: {len(items)} items; the limit is {limits.max_items} items per request "
            "(RP_MAX_ITEMS); split the request",
        )
    texts: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"title", "description"})
            if unknown:
                raise RequestError(
                    422, f"items[{i}]: unexpected field {unknown[0]!r}; use title, description"
                )
            if "title" not in item:
                raise RequestError(422, f"items[{i}].title: field required")
            for key in ("title", "description"):
                if key in item and not isinstance(item[key], str):
                    raise RequestError(
                        422, f"items[{i}].{key}: expected a string, got {_type_name(item[key])}"
                    )
        elif not isinstance(item, str):
            raise RequestError(
                422,
                f"items[{i}]: expected a string or {{title, description}}, got {_type_name(item)}",
            )
        text = item_text(item)
        if len(text) > limits.max_chars:
            raise RequestError(
                422,
                f"items[{i}]: text is {len(text):,} characters; the limit is "
                f"{limits.max_chars:,} characters per text (RP_MAX_CHARS)",
            )
        texts.append(text)
    return texts


class RequestGuard:
    """ASGI middleware: check every ``POST /classify`` before BentoML parses it.

    Reads at most ``max_body_bytes + 1`` bytes, answers a bad request itself
    with a JSON ``{"error": ...}`` and a 4xx, and hands a good one on unchanged.

    Example:
        >>> Classifier.add_asgi_middleware(RequestGuard)  # doctest: +SKIP
    """

    def __init__(self, app: ASGIApp, path: str = "/classify") -> None:
        self.app = app
        self.path = path
        self.limits = RequestLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            declared = int(headers.get("content-length", "0") or 0)
        except ValueError:
            await _reply(send, 400, "content-length is not a number")
            return
        limit = self.limits.max_body_bytes
        if declared > limit:
            await _reply(
                send,
                413,
                f"request body is {declared:,} bytes; the limit is {limit:,} bytes "
                "(RP_MAX_BODY_BYTES)",
            )
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reply(
                    send,
                    413,
                    f"request body is over {limit:,} bytes; the limit is {limit:,} bytes "
                    "(RP_MAX_BODY_BYTES)",
                )
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        try:
            validate_request(body, headers.get("content-type", ""), self.limits)
        except RequestError as exc:
            await _reply(send, exc.status, exc.message)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message}).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _model_metrics(folder: str) -> dict[str, Any]:
    path = os.path.join(folder, "bento_metadata.json")
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {}


@bentoml.service(
    name="reference_classifier",
    workers=WORKERS,
    traffic={"timeout": 30},
    # One INFO line per request costs CPU the model could use; the prediction
    # log records every item anyway. RP_ACCESS_LOG=0 turns it off.
    logging={"access": {"enabled": ACCESS_LOG}},
)
class Classifier:
    """Serve the reference text classifier from the BentoML model store.

    The model is found by ``RP_MODEL_TAG`` in the local store only (never a
    remote); the service fails to start with one line when it is missing.

    Example:
        $ bentoml serve reference_pipeline.service:Classifier --host 127.0.0.1 --port 3000
    """

    model_ref = bentoml.models.BentoModel(os.environ.get("RP_MODEL_TAG", DEFAULT_TAG))

    def __init__(self) -> None:
        import torch

        from reference_pipeline.predict import Predictor
        from reference_pipeline.predlog import PredictionLog

        # One intra-op thread per worker: tiny batches are several times faster
        # that way on a shared machine (see NOTES.md), and workers scale out.
        torch.set_num_threads(int(os.environ.get("RP_TORCH_THREADS", "1")))
        tag = self.model_ref.tag
        try:
            stored = bentoml.models.get(tag)
        except bentoml.exceptions.NotFound:
            raise RuntimeError(
                f"model {tag} is not in the BentoML store "
                f"({os.environ.get('BENTOML_HOME', '~/bentoml')}); "
                "run `python -m reference_pipeline package` first"
            ) from None
        self.model_version = str(stored.tag)
        self.predictor = Predictor.load(stored.path, batch_size=MAX_BATCH_SIZE)
        self.labels = list(self.predictor.labels)
        saved = _model_metrics(stored.path)
        info = dict(getattr(self.predictor, "info", {}) or {})
        info.update(saved.get("info", {}))
        self.metadata_doc = Metadata(
            model_version=self.model_version,
            labels=self.labels,
            metrics=saved.get("metrics", {}),
            info=json.loads(json.dumps(info, default=str)),
            limits=vars(RequestLimits()),
        )
        self.log = PredictionLog.from_env()
        # Everything loaded so far (torch, BentoML, the model) lives as long as the
        # worker: move it out of the garbage collector's generations, so a full
        # collection under load does not walk it (those walks were the p99 tail).
        import gc

        gc.collect()
        gc.freeze()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def classify(
        self,
        items: Annotated[
            list[Annotated[str, Field(max_length=MAX_CHARS)] | Article],
            Field(min_length=1, max_length=MAX_ITEMS),
        ],
    ) -> list[Prediction]:
        r"""Classify each item: tag, confidence, every class's probability, model version.

        Example:
            $ curl -s localhost:3000/classify -H 'content-type: application/json' \\
                -d '{"items": [{"title": "Cup final", "description": "Chelsea win"}]}'
        """
        texts = [item_text(item) for item in items]
        proba = self.predictor.predict_proba(texts)
        best = proba.argmax(axis=1).tolist()
        rows = proba.tolist()  # Python floats in one call, not one numpy scalar per cell
        labels, version = self.labels, self.model_version
        # model_construct: the values are built here from the model's output, so
        # pydantic's validation would only re-check them (BentoML validates the
        # output list once more when it serializes it).
        out = [
            Prediction.model_construct(
                tag=labels[k],
                confidence=row[k],
                probabilities=dict(zip(labels, row, strict=True)),
                model_version=version,
            )
            for row, k in zip(rows, best, strict=True)
        ]
        if self.log is not None:
            self.log.write(texts, [(p.tag, p.confidence) for p in out], version)
        return out

    @bentoml.api(route="/metadata")
    def metadata(self) -> Metadata:
        """The model version, labels, training metrics, provenance and request limits.

        Example:
            $ curl -s -X POST localhost:3000/metadata
        """
        return self.metadata_doc

    @bentoml.on_shutdown
    def _flush_log(self) -> None:
        # SIGTERM: uvicorn finishes the requests in flight, then runs this hook;
        # every answered item is in the queue by then, so draining it loses none.
        if self.log is not None:
            self.log.close()


Classifier.add_asgi_middleware(RequestGuard)
# BentoML derives the response's media type from the output's JSON schema on
# every response unless the IO model names it: building that schema (a pydantic
# TypeAdapter) was ~11% of the worker's time under load. The answer is always JSON.
Classifier.apis["classify"].output_spec.media_type = "application/json"


def _sha256(path: str | os.PathLike[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _git_sha() -> str | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_model(
    model_dir: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    eval_dir: str | os.PathLike[str] | None = None,
    name: str = MODEL_NAME,
) -> str:
    """Save a trained model folder into the BentoML model store; return its tag.

    The stored model holds the artefacts (``model.pt``, ``label_encoder.json``,
    ``config.json``...) and ``bento_metadata.json``: labels, training and test
    metrics, the SHA-256 of ``train.csv``, the git SHA, the config and the
    model's confidences on ``val.csv`` (the reference of ``monitor``'s
    confidence test, written there as ``reference_confidence.json`` too).

    Raises:
        reference_pipeline.predict.PredictError: The folder holds no trained model.

    Example:
        >>> package_model("artifacts/model", data_dir="artifacts/data")  # doctest: +SKIP
        'reference-classifier:6ibx4kqk3cs5lrvj'
    """
    import shutil
    from pathlib import Path

    from reference_pipeline.predict import Predictor

    folder = Path(model_dir)
    predictor = Predictor.load(folder)  # fails here, with one line, on a bad folder
    metrics: dict[str, Any] = {}
    for file_name in ("train_metrics.json", "train_summary.json"):
        summary = _read_json(folder / file_name)
        if isinstance(summary, dict):
            metrics.setdefault("train", {}).update(summary)
    if eval_dir is not None:
        evaluated = _read_json(Path(eval_dir) / "metrics.json")
        if isinstance(evaluated, dict) and isinstance(evaluated.get("summary"), dict):
            metrics["test"] = evaluated["summary"].get("model", evaluated["summary"])
    # An ensemble has no config.json of its own: its members' configs, by name.
    info: dict[str, Any] = {
        "config": _read_json(folder / "config.json") or predictor.info.get("config", {})
    }
    reference_confidence: list[float] = []
    if data_dir is not None:
        data = Path(data_dir)
        if (data / "train.csv").is_file():
            info["train_csv_sha256"] = _sha256(data / "train.csv")
        if (data / "val.csv").is_file():
            from reference_pipeline.data import read_split
            from reference_pipeline.evaluate import model_texts

            val = read_split(data / "val.csv")
            proba = predictor.predict_proba(model_texts(val))
            reference_confidence = [round(float(c), 6) for c in proba.max(axis=1)]
    info["git_sha"] = _git_sha()
    document = {
        "labels": predictor.labels,
        "metrics": metrics,
        "info": json.loads(json.dumps(info, default=str)),
    }
    with bentoml.models.create(
        name,
        labels={"framework": "pytorch", "pipeline": "reference_pipeline"},
        metadata={"labels": ",".join(predictor.labels), "git_sha": str(info["git_sha"])},
    ) as model:
        for item in folder.iterdir():
            if item.is_file() and item.name != "checkpoint.pt":  # resume state, not served
                shutil.copy2(item, os.path.join(model.path, item.name))
            elif item.is_dir() and item.name == "members":  # an ensemble's models
                shutil.copytree(item, os.path.join(model.path, item.name))
        with open(os.path.join(model.path, "bento_metadata.json"), "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2)
        with open(os.path.join(model.path, REFERENCE_CONFIDENCE), "w", encoding="utf-8") as f:
            json.dump(reference_confidence, f)
    return str(model.tag)
