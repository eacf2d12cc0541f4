"""The service in-process through its ASGI app: answers, limits, schema, metadata, the log.

Fast (no subprocess, no port): the BentoML model store is pointed at a temp
folder, the small trained model packaged into it, and the ASGI app driven by
Starlette's TestClient (which runs the startup and shutdown hooks). The
limits are the defaults (they are read when the module is imported; the
system test sets small ones for its subprocess).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("bentoml")

from reference_pipeline.predlog import read_log
from reference_pipeline.service import (
    RequestError,
    RequestLimits,
    item_text,
    validate_request,
)

pytestmark = pytest.mark.ml

LIMITS = RequestLimits(max_items=4, max_chars=100, max_body_bytes=2000)


@contextmanager
def _served(model_dir: Path, data_dir: Path, tmp: Path) -> Iterator[dict[str, Any]]:
    """``model_dir`` packaged into a store under ``tmp`` and served in-process."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore
    from starlette.testclient import TestClient

    from reference_pipeline.service import Classifier, package_model

    mp = pytest.MonkeyPatch()
    mp.setenv("RP_PREDICTION_LOG", str(tmp / "log"))
    store = ModelStore(str(tmp / "models"))
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(store)
    try:
        tag = package_model(model_dir, data_dir=data_dir)
        with TestClient(Classifier.to_asgi()) as client:
            yield {"client": client, "tag": tag, "log": tmp / "log"}
    finally:
        BentoMLContainer.model_store.set(previous)
        mp.undo()


@pytest.fixture(scope="module")
def asgi(trained_dir: Path, small_split_dir: Path, tmp_path_factory) -> Iterator[dict[str, Any]]:
    with _served(trained_dir, small_split_dir, tmp_path_factory.mktemp("asgi")) as served:
        yield served


def test_an_ensemble_folder_is_packaged_whole_for_the_service(
    trained_dir: Path, twin_trained_dir: Path, small_split_dir: Path, tmp_path: Path
) -> None:
    """``package`` stores an ensemble's members too; the store's copy loads as the service does.

    (A second ASGI app in one process would register BentoML's Prometheus
    metrics twice, so this stops at the store: the service's start-up is
    ``Predictor.load(<stored model>.path)``.)
    """
    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    from reference_pipeline.predict import EnsemblePredictor, Predictor, save_ensemble
    from reference_pipeline.service import package_model

    folder = save_ensemble(tmp_path / "ensemble", {"hashed": trained_dir, "twin": twin_trained_dir})
    texts = ["the striker scored twice", "shares fell sharply", "a new phone was launched"]
    expected = Predictor.load(folder).predict_proba(texts)
    previous = BentoMLContainer.model_store.get()
    BentoMLContainer.model_store.set(ModelStore(str(tmp_path / "models")))
    try:
        tag = package_model(folder, data_dir=small_split_dir)
        stored = bentoml.models.get(tag)
        served = Predictor.load(stored.path)
        metadata = json.loads(Path(stored.path, "bento_metadata.json").read_text())
    finally:
        BentoMLContainer.model_store.set(previous)
    assert isinstance(served, EnsemblePredictor)
    assert served.info["encoder"]["members"] == ["hashed", "twin"]
    assert served.predict_proba(texts) == pytest.approx(expected, abs=1e-6)
    assert metadata["labels"] == served.labels
    assert set(metadata["info"]["config"]) == {"hashed", "twin"}  # the members' configs


def test_items_and_plain_strings_get_a_full_answer(asgi, trained_dir: Path) -> None:
    from reference_pipeline.predict import Predictor

    predictor = Predictor.load(trained_dir)
    items = [{"title": "Chelsea win", "description": "the cup final"}, "shares fell sharply"]
    response = asgi["client"].post("/classify", json={"items": items})
    assert response.status_code == 200
    answers = response.json()
    expected = predictor.predict_proba([item_text(i) for i in items])
    assert len(answers) == 2
    for answer, row in zip(answers, expected, strict=True):
        assert set(answer) == {"tag", "confidence", "probabilities", "model_version"}
        assert answer["model_version"] == asgi["tag"]
        assert list(answer["probabilities"]) == predictor.labels
        assert answer["tag"] == predictor.labels[int(row.argmax())]
        assert answer["confidence"] == pytest.approx(float(row.max()), abs=1e-6)
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"items": ["a"] * 65}, 422,
         "items: 65 items; the limit is 64 items per request (RP_MAX_ITEMS); split the request"),
        ({"items": ["x" * 50_001]}, 422,
         "items[0]: text is 50,001 characters; the limit is 50,000 characters per text "
         "(RP_MAX_CHARS)"),
        ({"items": [{"title": "x" * 25_000, "description": "y" * 25_000}]}, 422,
         "items[0]: text is 50,001 characters; the limit is 50,000 characters per text "
         "(RP_MAX_CHARS)"),
        ({"items": ["z" * 49_000] * 64, "pad": "p" * 1_200_000}, 413,
         "request body is 4,336,212 bytes; the limit is 4,194,304 bytes (RP_MAX_BODY_BYTES)"),
        ({"items": []}, 422, "items: empty list; send 1 to 64 items"),
        ({"items": [{"description": "no title"}]}, 422, "items[0].title: field required"),
        ({"items": [{"title": 3}]}, 422, "items[0].title: expected a string, got number"),
        ({"items": [{"title": "a", "description": None}]}, 422,
         "items[0].description: expected a string, got null"),
        ({"items": [{"title": "a", "body": "b"}]}, 422,
         "items[0]: unexpected field 'body'; use title, description"),
        ({"texts": ["a"]}, 422, "unexpected field 'texts'; the body has only 'items'"),
        ([1], 422, 'expected an object {"items": [...]}, got array'),
    ],
)  # fmt: skip
def test_each_limit_and_shape_error_is_one_line_naming_it(
    asgi, body: Any, status: int, message: str
) -> None:
    response = asgi["client"].post("/classify", json=body)
    assert (response.status_code, response.json()) == (status, {"error": message})


def test_raw_body_errors(asgi) -> None:
    client = asgi["client"]
    cases = [
        (b'{"items": ["a",]}', "application/json", 400),
        (b'{"items": ["\xff"]}', "application/json", 400),
        (b'{"items": ["a"]}', "text/plain", 415),
        (b"x" * (4 * 1024 * 1024 + 1), "application/json", 413),
        (b'{"items": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json", 400),
    ]
    for content, media, status in cases:
        response = client.post("/classify", content=content, headers={"content-type": media})
        assert response.status_code == status
        assert len(response.json()["error"].splitlines()) == 1
    assert response.json() == {"error": "request body is JSON nested too deeply"}
    assert client.get("/readyz").status_code == 200


def test_openapi_shows_the_request_and_response_models_with_their_limits(asgi) -> None:
    schema = asgi["client"].get("/docs.json").json()
    body = schema["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]
    items = body["schema"]["properties"]["items"]
    assert (items["minItems"], items["maxItems"]) == (1, 64)
    article = schema["components"]["schemas"]["Article"]
    assert article["properties"]["title"]["maxLength"] == 50_000
    assert set(schema["components"]["schemas"]["Prediction"]["properties"]) == {
        "tag", "confidence", "probabilities", "model_version",
    }  # fmt: skip


def test_metadata_names_the_model_and_its_provenance(asgi, small_split_dir: Path) -> None:
    meta = asgi["client"].post("/metadata").json()
    assert meta["model_version"] == asgi["tag"]
    assert len(meta["labels"]) == 5
    assert meta["info"]["encoder"]["kind"]
    assert len(meta["info"]["train_csv_sha256"]) == 64
    assert "config" in meta["info"]
    assert "git_sha" in meta["info"]
    assert meta["limits"] == {"max_items": 64, "max_chars": 50_000, "max_body_bytes": 4_194_304}


def test_every_answered_item_is_logged(asgi) -> None:
    import time

    client = asgi["client"]
    before = len(read_log(asgi["log"])) if asgi["log"].exists() else 0
    texts = [f"log me {i}" for i in range(3)]
    assert client.post("/classify", json={"items": texts}).status_code == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = read_log(asgi["log"])
        if len(rows) >= before + 3:
            break
        time.sleep(0.02)
    new = rows[before:]
    assert [r["text"] for r in new] == texts
    assert all(r["model_version"] == asgi["tag"] and 0 < r["confidence"] <= 1 for r in new)


def test_validate_request_twins() -> None:
    assert validate_request(b'{"items": ["ok"]}', "application/json; charset=utf-8", LIMITS) == [
        "ok"
    ]
    assert validate_request(
        json.dumps({"items": [{"title": "a"}, "b" * 100]}).encode(), "application/json", LIMITS
    ) == ["a", "b" * 100]
    with pytest.raises(RequestError) as info:
        validate_request(b'{"items": ["ok"]}', "", LIMITS)
    assert (info.value.status, info.value.message) == (
        415,
        "content type 'missing' is not supported; send application/json",
    )
