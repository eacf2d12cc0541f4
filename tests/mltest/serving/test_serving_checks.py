"""check_service_parity and check_service_rejects_bad_input on a tiny server with known bugs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from tiny_server import expected_proba

pytest.importorskip("httpx")
pytest.importorskip("schemathesis")

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.serving import (
    RunningServer,
    bad_input_cases,
    check_service_parity,
    check_service_rejects_bad_input,
    latency_summary,
    serve,
)

TEXTS = ["a good film", "a dull film", "good flip", "so bad", "flip side", "good good"]
LABELS = ["neg", "pos"]


@pytest.fixture
def start(app_command: list[str]) -> Iterator[object]:
    servers: list[object] = []

    def run(mode: str) -> RunningServer:
        context = serve(app_command, ready_path="/ready", env={"APP_MODE": mode})
        server = context.__enter__()
        servers.append(context)
        return server

    yield run
    for context in servers:
        context.__exit__(None, None, None)  # type: ignore[attr-defined]


def test_parity_passes_when_the_server_serves_the_model(start) -> None:
    server = start("good")
    result = check_service_parity(server, TEXTS, expected_proba(TEXTS), labels=LABELS, batch_size=4)
    assert result.cases == 6
    assert result.mismatches == []
    assert result.max_abs_diff < 1e-12
    assert result.latency["requests"] == 2


def test_parity_accepts_a_function_and_a_plain_httpx_client(start) -> None:
    import httpx

    server = start("good")
    with httpx.Client(base_url=server.base_url) as client:
        check_service_parity(client, TEXTS, expected_proba, labels=LABELS, batch_size=4)


def test_parity_shows_wrong_labels_as_a_table(start) -> None:
    server = start("flip")
    with pytest.raises(MLCheckFailure) as info:
        check_service_parity(server, TEXTS, expected_proba(TEXTS), labels=LABELS, batch_size=4)
    assert str(info.value).splitlines()[:5] == [
        "2 of 6 served answers differ from the in-process model (atol 0.0001)",
        "",
        "#  input      expected  served  max |dp|  why",
        "2  good flip  pos       neg     0         label differs",
        "4  flip side  neg       pos     0         label differs",
    ]


def test_parity_catches_probabilities_off_by_more_than_the_tolerance(start) -> None:
    server = start("skew")
    with pytest.raises(MLCheckFailure) as info:
        check_service_parity(server, TEXTS[:2], expected_proba(TEXTS[:2]), labels=LABELS)
    assert str(info.value).splitlines()[3] == (
        "0  a good film  pos       pos     0.01      probability off by more than 0.0001"
    )
    # the same answers pass at a tolerance that admits the skew
    check_service_parity(server, TEXTS[:2], expected_proba(TEXTS[:2]), labels=LABELS, atol=0.02)


def test_parity_usage_errors_are_one_line(start) -> None:
    server = start("good")
    with pytest.raises(MLUsageError, match=r"^inputs is empty: give at least one item"):
        check_service_parity(server, [], [], labels=LABELS)
    with pytest.raises(MLUsageError, match=r"^expected has shape \(1, 2\); need \(2, 2\)"):
        check_service_parity(server, TEXTS[:2], expected_proba(TEXTS[:1]), labels=LABELS)


def test_bad_input_battery_passes_on_a_strict_server(start) -> None:
    server = start("good")
    rows = check_service_rejects_bad_input(
        server, health_path="/ready", max_chars=100, max_examples=15
    )
    names = [r[0] for r in rows]
    assert "too many items (5)" in names  # maxItems 4, read from the OpenAPI schema
    assert "oversized string (101 chars)" in names
    assert any(n.startswith("generated from the schema") for n in names)
    assert all(400 <= r[1] < 500 for r in rows)


def test_bad_input_battery_names_the_5xx(start) -> None:
    server = start("crash")
    with pytest.raises(MLCheckFailure) as info:
        check_service_rejects_bad_input(server, health_path="/ready", openapi_path=None)
    lines = str(info.value).splitlines()
    assert lines[:4] == [
        "4 of 23 malformed requests were not refused cleanly",
        "",
        "case                          status  answer                              problem",
        'wrong type: number item       500     {"error": "Internal Server Error"}  '
        "server error on client input",
    ]
    assert [line.split("  ")[0] for line in lines[4:7]] == [
        "wrong type: null item",
        "wrong type: nested list item",
        "wrong type: boolean item",
    ]
    assert "tiny: Traceback: AttributeError: 'int' object has no attribute 'lower'" in lines


def test_bad_input_battery_catches_an_accepted_empty_list(start) -> None:
    server = start("lenient")
    with pytest.raises(MLCheckFailure) as info:
        check_service_rejects_bad_input(server, health_path="/ready", openapi_path=None)
    assert str(info.value).splitlines()[3].split() == [
        "empty",
        "list",
        "200",
        "[]",
        "accepted",
        "a",
        "malformed",
        "request",
    ]


def test_bad_input_battery_notices_a_server_that_died(start) -> None:
    server = start("die")
    with pytest.raises(MLCheckFailure) as info:
        check_service_rejects_bad_input(server, health_path="/ready", openapi_path=None)
    lines = str(info.value).splitlines()
    assert lines[0] == "3 of 23 malformed requests were not refused cleanly"
    assert [line.split() for line in lines[3:6]] == [
        ["invalid", "UTF-8", "-", "connection", "failed:", "RemoteProtocolError", "no", "answer"],
        ["(4", "later", "cases)", "-", "not", "sent", "the", "server", "stopped", "answering"],
        ["(after", "the", "battery)", "-", "GET", "/ready", "failed", "server", "unhealthy"],
    ]
    assert lines[-1] == "tiny: fatal: cannot decode the body"


def test_fixed_cases_cover_the_issue_list() -> None:
    names = [c.name for c in bad_input_cases(max_items=2, max_chars=5, max_body_bytes=2000)]
    for expected in (
        "malformed JSON",
        "wrong type: number item",
        "missing field",
        "empty list",
        "too many items (3)",
        "oversized string (6 chars)",
        "invalid UTF-8",
        "deeply nested JSON",
        "wrong content type: text/plain",
        "oversized body (4,000+ bytes)",
    ):
        assert expected in names
    bodies = {c.name: c.content for c in bad_input_cases(max_items=2)}
    assert len(json.loads(bodies["too many items (3)"])["items"]) == 3
    with pytest.raises(UnicodeDecodeError):
        bodies["invalid UTF-8"].decode("utf-8")


def test_latency_summary_percentiles() -> None:
    summary = latency_summary(list(range(1, 101)), seconds=4.0)
    assert (summary["p50_ms"], summary["p99_ms"], summary["rps"]) == (50.5, 99.01, 25.0)


def test_latency_is_recorded_in_the_report(pytester: pytest.Pytester, app_command) -> None:
    pytester.makepyfile(
        f"""
        from mltest.serving import check_service_parity, serve

        def test_parity():
            with serve({app_command!r}, ready_path="/ready") as server:
                check_service_parity(server, ["good"], [[0.1, 0.9]], labels=["neg", "pos"])
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "--ml-report", "report.json")
    result.assert_outcomes(passed=1)
    report = json.loads((pytester.path / "report.json").read_text())
    (test,) = [t for t in report["tests"] if t["nodeid"].endswith("test_parity")]
    assert set(test["metrics"]) >= {"service_parity.p50_ms", "service_parity.p99_ms"}
    (check,) = test["checks"]
    assert (check["kind"], check["name"], check["passed"]) == ("serving", "service_parity", True)


def test_parity_reports_answers_it_cannot_read(start) -> None:
    server = start("good")
    with pytest.raises(
        MLCheckFailure, match=r"^service parity: cannot read the answer to items 0\.\.1"
    ):
        check_service_parity(
            server, TEXTS[:2], expected_proba(TEXTS[:2]), labels=LABELS,
            parse_response=lambda body: [(p["label"], {}) for p in body],
        )  # fmt: skip
    with pytest.raises(MLCheckFailure, match=r"^service parity: 2 items sent, 1 answers received"):
        check_service_parity(
            server, TEXTS[:2], expected_proba(TEXTS[:2]), labels=LABELS,
            parse_response=lambda body: [(p["tag"], p["probabilities"]) for p in body][:1],
        )  # fmt: skip
    with pytest.raises(MLCheckFailure) as info:
        check_service_parity(server, ["good"], [[0.1, 0.9, 0.0]], labels=["neg", "pos", "odd"])
    assert str(info.value).splitlines()[3].endswith("no probability for 'odd'")


def test_usage_errors_of_the_checks(start) -> None:
    server = start("good")
    with pytest.raises(
        MLUsageError, match=r"^expected a RunningServer or an httpx.Client, got str"
    ):
        check_service_parity("http://x", ["a"], [[0.5, 0.5]], labels=LABELS)
    with pytest.raises(MLUsageError, match=r"^batch_size must be >= 1, got 0"):
        check_service_parity(server, ["a"], [[0.5, 0.5]], labels=LABELS, batch_size=0)
    with pytest.raises(MLUsageError, match=r"^GET /nope gave HTTP 404: give openapi_path="):
        check_service_rejects_bad_input(server, openapi_path="/nope")
    with pytest.raises(
        MLUsageError, match=r"^the OpenAPI schema has no JSON request body for POST"
    ):
        check_service_rejects_bad_input(server, path="/other", health_path="/ready")
    server.stop()
    with pytest.raises(MLUsageError, match=r"^the server is not running \(it was stopped\)"):
        check_service_parity(server, ["a"], [[0.5, 0.5]], labels=LABELS)
