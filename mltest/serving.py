"""A test kit for served models: start a server, compare it with the model, attack its input.

Three pieces, usable from any test (the ``ml_server`` and ``ml_server_factory``
fixtures wrap the first):

* :func:`serve` / :func:`start_server`: run any server command (``bentoml
  serve``, uvicorn, a custom CLI) in its own process group on a free loopback
  port, wait for a readiness URL, hand back the base URL and an ``httpx``
  client, and stop the whole group (SIGTERM, then SIGKILL after a grace
  period) however the test ends. When a test fails while a server started here
  runs, the test report shows the tail of the server's log.
* :func:`check_service_parity`: the served answers equal the in-process
  predictions (labels equal, probabilities within a tolerance); mismatches are
  shown as a table.
* :func:`check_service_rejects_bad_input`: malformed requests generated from
  the service's OpenAPI schema (schemathesis negative mode) plus a fixed
  battery (malformed JSON, wrong types, missing fields, empty list, too many
  items, oversized strings and body, invalid UTF-8, wrong content type). Each
  must get a 4xx with a body, never a 5xx; the server must be healthy after.

Both checks record the latency of the calls they made (p50, p95, p99) and the
throughput in the mltest report, as figures and never as an assertion.

Needs the ``serving`` extra (httpx, schemathesis).

Example:
    >>> with serve(["python", "-m", "http.server", "{port}", "--bind", "{host}"],
    ...            ready_path="/") as server:  # doctest: +SKIP
    ...     assert server.client.get("/").status_code == 200
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mltest.errors import MLCheckFailure, MLTestError, MLUsageError, require
from mltest.report import format_table, record_check, record_figure, record_metric

__all__ = [
    "BadInputCase",
    "RunningServer",
    "ServerFactory",
    "ServerStartError",
    "bad_input_cases",
    "check_service_parity",
    "check_service_rejects_bad_input",
    "free_port",
    "latency_summary",
    "record_latency",
    "serve",
    "start_server",
]

LOOPBACK = "127.0.0.1"
DEFAULT_GRACE = 10.0
_LOG_TAIL_LINES = 40
_EXTRA = "serving"


class ServerStartError(MLTestError, RuntimeError):
    """The server did not become ready; the message ends with the tail of its log.

    Example:
        >>> raise ServerStartError("server exited with status 1 before it was ready")
        Traceback (most recent call last):
        ...
        mltest.serving.ServerStartError: server exited with status 1 before it was ready
    """


def _httpx() -> Any:
    return require("httpx", _EXTRA, purpose="the served-model test kit")


def free_port(host: str = LOOPBACK) -> int:
    """A port free on ``host`` now (the OS picks it, so xdist workers never share one).

    Example:
        >>> 1024 < free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# Running servers
# ---------------------------------------------------------------------------

#: Every server started here and not yet stopped: stopped at exit, and their
#: log tails go into the report of a failing test.
_RUNNING: list[RunningServer] = []
_RUNNING_LOCK = threading.Lock()


@dataclass(eq=False)
class RunningServer:
    """A server process started by :func:`start_server`.

    Attributes:
        command: The command line, with ``{host}`` and ``{port}`` filled in.
        host: The address it listens on.
        port: The port it listens on.
        base_url: ``http://host:port``.
        process: The process (leader of its own process group).
        log_path: Where its stdout and stderr go.
        client: An ``httpx.Client`` with ``base_url`` set; every response's
            latency is appended to :attr:`latencies_ms`.
        latencies_ms: Latency of each call made through :attr:`client`.

    Example:
        >>> server.client.post("/classify", json={"items": ["a"]})  # doctest: +SKIP
    """

    command: list[str]
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    grace: float = DEFAULT_GRACE
    client: Any = None
    latencies_ms: list[float] = field(default_factory=list)
    _log_file: Any = None
    _stopped: bool = False
    _temp_log: bool = False
    _final_log: str | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``.

        Example:
            >>> server.base_url  # doctest: +SKIP
            'http://127.0.0.1:40123'
        """
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        """The full URL of ``path``.

        Example:
            >>> server.url("/readyz")  # doctest: +SKIP
            'http://127.0.0.1:40123/readyz'
        """
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def alive(self) -> bool:
        """Whether the process is still running.

        Example:
            >>> server.alive()  # doctest: +SKIP
            True
        """
        return self.process.poll() is None

    def log_text(self) -> str:
        """The whole server log so far.

        Example:
            >>> "Uvicorn running" in server.log_text()  # doctest: +SKIP
            True
        """
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server log.

        Example:
            >>> print(server.log_tail(5))  # doctest: +SKIP
        """
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace: float | None = None) -> int | None:
        """Stop the process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Idempotent. Returns the leader's exit status.

        Example:
            >>> server.stop(grace=5)  # doctest: +SKIP
            0
        """
        grace = self.grace if grace is None else grace
        if not self._stopped:
            self._stopped = True
            _stop_group(self.process, grace)
            if self.client is not None:
                self.client.close()
                self.client = None
            if self._log_file is not None:
                self._log_file.close()
            if self._temp_log:
                # Keep the text (for log_tail after the stop), not the file.
                self._final_log = self.log_text()
                with contextlib.suppress(OSError):
                    self.log_path.unlink()
            with _RUNNING_LOCK:
                if self in _RUNNING:
                    _RUNNING.remove(self)
        return self.process.returncode


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a reused id owned by someone else
        return False
    return True


def _die_with_parent() -> None:
    """In the server's child process: get SIGTERM if the test process dies (Linux).

    The server runs in its own session so that its whole group can be stopped;
    that also keeps it out of reach of a terminal's Ctrl-C and of a killed
    pytest. A parent-death signal closes that gap: when pytest is killed with
    SIGKILL (or by a CI timeout), the kernel sends the server SIGTERM. Elsewhere
    this does nothing.
    """
    if not sys.platform.startswith("linux"):  # pragma: no cover - Linux here
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    pgid = process.pid  # start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        process.poll()
        if process.returncode is not None and not _group_alive(pgid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@atexit.register
def _stop_all() -> None:
    with _RUNNING_LOCK:
        servers = list(_RUNNING)
    for server in servers:
        server.stop(grace=2.0)


def _fill(value: str, host: str, port: int) -> str:
    return value.replace("{host}", host).replace("{port}", str(port))


def _address_in_use(log: str) -> bool:
    text = log.lower()
    return "address already in use" in text or "errno 98" in text


def start_server(
    command: Sequence[str] | Callable[[str, int], Sequence[str]],
    *,
    ready_path: str = "/readyz",
    ready_status: int = 200,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    host: str = LOOPBACK,
    port: int | None = None,
    grace: float = DEFAULT_GRACE,
    log_path: str | os.PathLike[str] | None = None,
    attempts: int = 3,
) -> RunningServer:
    """Start a server and wait until ``GET ready_path`` answers ``ready_status``.

    The caller stops it (:meth:`RunningServer.stop`); prefer :func:`serve` or
    the ``ml_server`` fixture, which always do.

    Args:
        command: The command line; ``{host}`` and ``{port}`` in any argument are
            filled in. Or a function ``(host, port) -> command``.
        ready_path: The readiness URL path.
        ready_status: The status that means ready.
        timeout: Seconds to wait for readiness.
        env: Extra environment variables (``{host}``/``{port}`` filled in too).
        cwd: Working folder of the server.
        host: Address to bind; loopback unless you need otherwise.
        port: A fixed port; default a free one.
        grace: Seconds between SIGTERM and SIGKILL when stopping.
        log_path: Where the server's output goes (default a temp file).
        attempts: Starts tried when the port was taken in between (free port only).

    Returns:
        The ready server.

    Raises:
        ServerStartError: The process exited, or was not ready within ``timeout``;
            the message ends with the tail of its log.

    Example:
        >>> server = start_server(["python", "-m", "http.server", "{port}"],
        ...                       ready_path="/")  # doctest: +SKIP
        >>> server.stop()  # doctest: +SKIP
    """
    httpx = _httpx()
    if timeout <= 0:
        raise MLUsageError(f"timeout must be positive, got {timeout}")
    last_error: ServerStartError | None = None
    for _ in range(max(1, attempts if port is None else 1)):
        chosen = port if port is not None else free_port(host)
        argv = (
            list(command(host, chosen))
            if callable(command)
            else [_fill(str(a), host, chosen) for a in command]
        )
        if not argv:
            raise MLUsageError("command is empty: give the server's command line")
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="mltest-server-", suffix=".log")
            os.close(fd)
            path = Path(name)
        else:
            path = Path(log_path)
            path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(path, "ab")  # noqa: SIM115 - closed by RunningServer.stop
        full_env = {**os.environ, **{k: _fill(v, host, chosen) for k, v in (env or {}).items()}}
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=full_env,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            log_file.close()
            raise ServerStartError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
        server = RunningServer(
            argv, host, chosen, process, path, grace=grace, _log_file=log_file,
            _temp_log=log_path is None,
        )  # fmt: skip
        with _RUNNING_LOCK:
            _RUNNING.append(server)
        try:
            _wait_ready(server, httpx, ready_path, ready_status, timeout)
        except ServerStartError as exc:
            server.stop(grace=min(grace, 5.0))
            if port is None and _address_in_use(server.log_text()):
                last_error = exc
                continue
            raise
        except BaseException:
            server.stop(grace=min(grace, 5.0))
            raise
        server.client = _timed_client(httpx, server)
        return server
    assert last_error is not None
    raise last_error


def _wait_ready(
    server: RunningServer, httpx: Any, ready_path: str, ready_status: int, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    url = server.url(ready_path)
    last = "no answer"
    with httpx.Client(timeout=2.0) as probe:
        while True:
            code = server.process.poll()
            if code is not None:
                raise ServerStartError(
                    f"server exited with status {code} before it was ready "
                    f"({' '.join(server.command)})\n--- server log (last lines) ---\n"
                    f"{server.log_tail()}"
                )
            try:
                status = probe.get(url).status_code
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if status == ready_status:
                    return
                last = f"HTTP {status}"
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"server not ready after {timeout:g} s: GET {url} gave {last}, "
                    f"expected {ready_status} ({' '.join(server.command)})\n"
                    f"--- server log (last lines) ---\n{server.log_tail()}"
                )
            time.sleep(0.1)


def _timed_client(httpx: Any, server: RunningServer) -> Any:
    def on_response(response: Any) -> None:
        response.read()
        server.latencies_ms.append(response.elapsed.total_seconds() * 1000.0)

    return httpx.Client(
        base_url=server.base_url, timeout=30.0, event_hooks={"response": [on_response]}
    )


@contextlib.contextmanager
def serve(
    command: Sequence[str] | Callable[[str, int], Sequence[str]], **options: Any
) -> Iterator[RunningServer]:
    """Run a server for the duration of a ``with`` block; it is stopped however the block ends.

    Takes the arguments of :func:`start_server`.

    Example:
        >>> with serve(["bentoml", "serve", "svc:Svc", "--host", "{host}",
        ...             "--port", "{port}"]) as server:  # doctest: +SKIP
        ...     server.client.post("/classify", json={"items": ["a"]})
    """
    server = start_server(command, **options)
    try:
        yield server
    finally:
        server.stop()


class ServerFactory:
    """Starts servers and stops every one of them at :meth:`close` (the fixtures' engine).

    Example:
        >>> factory = ServerFactory()  # doctest: +SKIP
        >>> server = factory.start(["my-server", "--port", "{port}"])  # doctest: +SKIP
        >>> factory.close()  # doctest: +SKIP
    """

    def __init__(self, **defaults: Any) -> None:
        self.defaults = defaults
        self.servers: list[RunningServer] = []

    def start(
        self, command: Sequence[str] | Callable[[str, int], Sequence[str]], **options: Any
    ) -> RunningServer:
        """Start a server (see :func:`start_server`); it stops at :meth:`close` at the latest.

        Example:
            >>> factory.start(["uvicorn", "app:app", "--port", "{port}"],
            ...               ready_path="/health")  # doctest: +SKIP
        """
        server = start_server(command, **{**self.defaults, **options})
        self.servers.append(server)
        return server

    @contextlib.contextmanager
    def serve(
        self, command: Sequence[str] | Callable[[str, int], Sequence[str]], **options: Any
    ) -> Iterator[RunningServer]:
        """Like :func:`serve`, and stopped at :meth:`close` too.

        Example:
            >>> with factory.serve(["my-server", "--port", "{port}"]) as server:  # doctest: +SKIP
            ...     ...
        """
        server = self.start(command, **options)
        try:
            yield server
        finally:
            server.stop()

    def close(self) -> None:
        """Stop every server this factory started.

        Example:
            >>> factory.close()  # doctest: +SKIP
        """
        for server in self.servers:
            server.stop()
        self.servers.clear()


class _ServerLogReporter:
    """Adds the tail of each running server's log to the report of a failing test."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: Any, call: Any) -> Iterator[None]:
        outcome: Any = yield
        report = outcome.get_result()
        if not report.failed:
            return
        with _RUNNING_LOCK:
            servers = list(_RUNNING)
        for server in servers:
            report.sections.append(
                (
                    f"server log (last {_LOG_TAIL_LINES} lines): {' '.join(server.command)}",
                    server.log_tail(),
                )
            )


_REPORTER_NAME = "mltest-serving-log"


def install_log_reporter(config: pytest.Config) -> None:
    """Show running servers' log tails in failing tests' reports (once per session).

    Example:
        >>> install_log_reporter(request.config)  # doctest: +SKIP
    """
    if not config.pluginmanager.has_plugin(_REPORTER_NAME):
        config.pluginmanager.register(_ServerLogReporter(), _REPORTER_NAME)


# ---------------------------------------------------------------------------
# Latency
# ---------------------------------------------------------------------------


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    pos = q / 100 * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def latency_summary(
    latencies_ms: Iterable[float], seconds: float | None = None
) -> dict[str, float]:
    """p50, p95, p99, mean and max of latencies, plus requests/s when ``seconds`` is known.

    Example:
        >>> latency_summary([10, 20, 30, 40], seconds=2.0)["p50_ms"]
        25.0
    """
    values = sorted(float(v) for v in latencies_ms)
    out = {
        "requests": float(len(values)),
        "p50_ms": _percentile(values, 50),
        "p95_ms": _percentile(values, 95),
        "p99_ms": _percentile(values, 99),
        "mean_ms": sum(values) / len(values) if values else float("nan"),
        "max_ms": values[-1] if values else float("nan"),
    }
    if seconds:
        out["rps"] = len(values) / seconds
    return out


def record_latency(
    name: str, latencies_ms: Sequence[float], seconds: float | None = None
) -> dict[str, float]:
    """Record p50/p95/p99 and throughput in the mltest report (never asserts).

    Also attaches a latency histogram figure. Returns the summary.

    Example:
        >>> round(record_latency("classify", [12.0, 15.5, 40.1], seconds=0.1)["p99_ms"], 1)
        39.6
    """
    summary = latency_summary(latencies_ms, seconds)
    for key in ("requests", "p50_ms", "p95_ms", "p99_ms", "rps"):
        if key in summary:
            record_metric(f"{name}.{key}", round(summary[key], 3))
    if latencies_ms:
        edges = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
        counts = [0] * (len(edges) + 1)
        for v in latencies_ms:
            counts[next((i for i, e in enumerate(edges) if v <= e), len(edges))] += 1
        labels = [f"<={e}" for e in edges] + [f">{edges[-1]}"]
        record_figure(
            f"{name}.latency",
            "bars",
            {"labels": labels, "series": {"calls": counts}, "x_label": "ms", "y_label": "calls"},
            title=f"{name}: latency of {len(latencies_ms)} calls",
            caption=(
                f"p50 {summary['p50_ms']:.1f} ms, p95 {summary['p95_ms']:.1f} ms, "
                f"p99 {summary['p99_ms']:.1f} ms"
            ),
        )
    return summary


# ---------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------


def _client_of(target: Any) -> Any:
    if isinstance(target, RunningServer):
        if target.client is None:
            raise MLUsageError("the server is not running (it was stopped)")
        return target.client
    if hasattr(target, "post") and hasattr(target, "get"):
        return target
    raise MLUsageError(f"expected a RunningServer or an httpx.Client, got {type(target).__name__}")


def _default_request(batch: Sequence[Any]) -> Any:
    return {"items": list(batch)}


def _default_response(body: Any) -> list[tuple[str, Mapping[str, float]]]:
    return [(str(p["tag"]), p["probabilities"]) for p in body]


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 3] + "..."


@dataclass
class ParityResult:
    """What :func:`check_service_parity` compared.

    Attributes:
        cases: Inputs compared.
        mismatches: One row per mismatch: index, input, expected, served, max |dp|, why.
        max_abs_diff: Largest probability difference seen.
        latency: The latency summary of the calls made.

    Example:
        >>> check_service_parity(server, texts, proba, labels=labels).max_abs_diff  # doctest: +SKIP
        2.9e-08
    """

    cases: int
    mismatches: list[list[Any]]
    max_abs_diff: float
    latency: dict[str, float]


_PARITY_COLUMNS = ("index", "input", "expected", "served", "max_abs_diff", "why")


def check_service_parity(
    server: Any,
    inputs: Sequence[Any],
    expected: Any,
    *,
    labels: Sequence[str],
    path: str = "/classify",
    batch_size: int = 32,
    atol: float = 1e-4,
    make_request: Callable[[Sequence[Any]], Any] = _default_request,
    parse_response: Callable[[Any], Sequence[tuple[str, Mapping[str, float]]]] = _default_response,
) -> ParityResult:
    """Fail unless the served answers equal the in-process predictions.

    Sends ``inputs`` in batches of ``batch_size`` and compares each answer with
    the same row of ``expected``: the served label must be the arg-max label
    (either of two labels within ``atol`` of each other counts), and every
    class probability must be within ``atol``.

    Args:
        server: A :class:`RunningServer` or an ``httpx.Client`` with a base URL.
        inputs: The items to send, as the request expects them.
        expected: Probabilities from the in-process model, shape ``(len(inputs),
            len(labels))``, or a function ``inputs -> that array``.
        labels: The class of each column of ``expected``.
        path: The endpoint.
        batch_size: Items per request.
        atol: Largest allowed probability difference.
        make_request: ``batch -> JSON body`` (default ``{"items": batch}``).
        parse_response: ``JSON body -> [(label, {class: probability}), ...]``
            (default: a list of ``{"tag", "probabilities"}``).

    Returns:
        The comparison, when everything matched.

    Raises:
        MLCheckFailure: With a table of the mismatched rows (and failed calls).

    Example:
        >>> texts = list(test_df["text"][:200])  # doctest: +SKIP
        >>> check_service_parity(server, texts, predictor.predict_proba(texts),
        ...                      labels=predictor.labels)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    client = _client_of(server)
    if not inputs:
        raise MLUsageError("inputs is empty: give at least one item to compare")
    if batch_size < 1:
        raise MLUsageError(f"batch_size must be >= 1, got {batch_size}")
    table = expected(inputs) if callable(expected) else expected
    rows = [list(map(float, r)) for r in table]
    labels = [str(x) for x in labels]
    if len(rows) != len(inputs) or any(len(r) != len(labels) for r in rows):
        raise MLUsageError(
            f"expected has shape ({len(rows)}, {len(rows[0]) if rows else 0}); "
            f"need ({len(inputs)}, {len(labels)}): one row per input, one column per label"
        )
    mismatches: list[list[Any]] = []
    latencies: list[float] = []
    worst = 0.0
    started = time.perf_counter()
    for start in range(0, len(inputs), batch_size):
        batch = inputs[start : start + batch_size]
        t0 = time.perf_counter()
        response = client.post(path, json=make_request(batch))
        latencies.append((time.perf_counter() - t0) * 1000.0)
        if response.status_code != 200:
            answer = _short(response.text.strip().splitlines()[0] if response.text.strip() else "")
            for i in range(start, start + len(batch)):
                mismatches.append(
                    [i, _short(inputs[i]), "-", "-", "-", f"HTTP {response.status_code} {answer}"]
                )
            continue
        try:
            served = list(parse_response(response.json()))
        except (ValueError, KeyError, TypeError) as exc:
            raise MLCheckFailure(
                f"service parity: cannot read the answer to items {start}..{start + len(batch) - 1}"
                f" ({type(exc).__name__}: {exc}); body: {_short(response.text, 200)}"
            ) from None
        if len(served) != len(batch):
            raise MLCheckFailure(
                f"service parity: {len(batch)} items sent, {len(served)} answers received "
                f"(items {start}..{start + len(batch) - 1})"
            )
        for offset, (label, probabilities) in enumerate(served):
            i = start + offset
            row = rows[i]
            missing = [c for c in labels if c not in probabilities]
            if missing:
                mismatches.append(
                    [i, _short(inputs[i]), "-", label, "-", f"no probability for {missing[0]!r}"]
                )
                continue
            diff = max(abs(float(probabilities[c]) - p) for c, p in zip(labels, row, strict=True))
            worst = max(worst, diff)
            top = max(row)
            best = labels[row.index(top)]
            allowed = {c for c, p in zip(labels, row, strict=True) if top - p <= atol}
            why = []
            if label not in allowed:
                why.append("label differs")
            if diff > atol:
                why.append(f"probability off by more than {atol:g}")
            if why:
                mismatches.append(
                    [i, _short(inputs[i]), best, label, f"{diff:.3g}", "; ".join(why)]
                )
    seconds = time.perf_counter() - started
    latency = record_latency("service_parity", latencies, seconds)
    passed = not mismatches
    headline = (
        f"served answers match the in-process model on {len(inputs)} inputs "
        f"(max |dp| {worst:.2g}, atol {atol:g})"
        if passed
        else f"{len(mismatches)} of {len(inputs)} served answers differ from the in-process model "
        f"(atol {atol:g})"
    )
    record_check(
        "serving",
        "service_parity",
        passed,
        headline=headline,
        metrics={
            "cases": len(inputs),
            "failed": len(mismatches),
            "max_abs_diff": worst,
            "p50_ms": latency["p50_ms"],
            "p95_ms": latency["p95_ms"],
            "p99_ms": latency["p99_ms"],
        },
        examples=[
            dict(
                zip(["index", "input", "expected", "served", "max_abs_diff", "why"], m, strict=True)
            )
            for m in mismatches
        ],
        group={"check": "service_parity"},
    )
    if mismatches:
        lines = format_table(
            ["#", "input", "expected", "served", "max |dp|", "why"], mismatches, limit=15
        )
        raise MLCheckFailure(
            f"{headline}\n\n"
            + "\n".join(lines)
            + "\n\nThe server and the model disagree: is it serving the same model version, "
            "with the same text preprocessing (join, cleaning, lowercasing)?"
        )
    return ParityResult(len(inputs), mismatches, worst, latency)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BadInputCase:
    """One malformed request.

    Attributes:
        name: What is wrong with it (``"malformed JSON"``).
        content: The raw body.
        content_type: The ``Content-Type`` header (``None``: none sent).

    Example:
        >>> BadInputCase("empty list", b'{"items": []}').content_type
        'application/json'
    """

    name: str
    content: bytes
    content_type: str | None = "application/json"


def _json(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")


def _schema_limits(schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    """The request body schema of ``POST path`` and its first array field's limits."""
    try:
        body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    except (KeyError, TypeError):
        raise MLUsageError(
            f"the OpenAPI schema has no JSON request body for POST {path} "
            f"(paths: {', '.join(sorted(schema.get('paths', {})))})"
        ) from None
    body = _resolve(schema, body)
    out: dict[str, Any] = {"required": list(body.get("required", []))}
    for name, prop in body.get("properties", {}).items():
        prop = _resolve(schema, prop)
        if prop.get("type") == "array":
            out.setdefault("array_field", name)
            if "maxItems" in prop:
                out.setdefault("max_items", int(prop["maxItems"]))
    return out


def _resolve(schema: Mapping[str, Any], node: Any) -> Any:
    while isinstance(node, Mapping) and "$ref" in node:
        target: Any = schema
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def bad_input_cases(
    *,
    field: str = "items",
    valid_item: Any = "a short text",
    max_items: int | None = None,
    max_chars: int | None = None,
    max_body_bytes: int | None = None,
) -> list[BadInputCase]:
    """The fixed battery of malformed requests for a ``{field: [item, ...]}`` endpoint.

    Limits that are not known are probed with sizes no service should accept
    (100,000 items, 1,000,000 characters); the body-size case is sent only when
    ``max_body_bytes`` is given.

    Example:
        >>> [c.name for c in bad_input_cases()][:3]
        ['malformed JSON', 'truncated JSON', 'not JSON']
    """
    n_items = (max_items + 1) if max_items is not None else 100_000
    n_chars = (max_chars + 1) if max_chars is not None else 1_000_000
    cases = [
        BadInputCase("malformed JSON", b'{"' + field.encode() + b'": [1, 2,,]}'),
        BadInputCase("truncated JSON", b'{"' + field.encode() + b'": ["abc'),
        BadInputCase("not JSON", b"hello, server"),
        BadInputCase("empty body", b""),
        BadInputCase("JSON null", b"null"),
        BadInputCase("JSON array, not an object", _json([valid_item])),
        BadInputCase("missing field", _json({})),
        BadInputCase("misspelt field", _json({field + "s": [valid_item]})),
        BadInputCase("wrong type: string for the list", _json({field: "text"})),
        BadInputCase("wrong type: number for the list", _json({field: 7})),
        BadInputCase("wrong type: null for the list", _json({field: None})),
        BadInputCase("wrong type: number item", _json({field: [7]})),
        BadInputCase("wrong type: null item", _json({field: [None]})),
        BadInputCase("wrong type: nested list item", _json({field: [[valid_item]]})),
        BadInputCase("wrong type: boolean item", _json({field: [True]})),
        BadInputCase("empty list", _json({field: []})),
        BadInputCase(f"too many items ({n_items:,})", _json({field: [valid_item] * n_items})),
        BadInputCase(f"oversized string ({n_chars:,} chars)", _json({field: ["x" * n_chars]})),
        BadInputCase("invalid UTF-8", b'{"' + field.encode() + b'": ["caf\xc3\x28 \xff\xfe"]}'),
        BadInputCase(
            "deeply nested JSON",
            b'{"' + field.encode() + b'": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        ),
        BadInputCase("wrong content type: text/plain", _json({field: [valid_item]}), "text/plain"),
        BadInputCase(
            "wrong content type: form",
            field.encode() + b"=text",
            "application/x-www-form-urlencoded",
        ),
        BadInputCase("no content type", _json({field: [valid_item]}), None),
    ]
    if max_body_bytes is not None:
        filler = "y" * 1000
        count = max_body_bytes // 1000 + 2
        cases.append(
            BadInputCase(
                f"oversized body ({max_body_bytes + 2000:,}+ bytes)",
                _json({field: [filler] * count}),
            )
        )
    return cases


def _generated_cases(
    schema: Mapping[str, Any], path: str, max_examples: int, seed: int
) -> list[BadInputCase]:
    """Requests that violate the OpenAPI schema of ``POST path`` (schemathesis negative mode)."""
    schemathesis = require("schemathesis", _EXTRA, purpose="generated bad requests")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    api = schemathesis.openapi.from_dict(dict(schema))
    operation = api[path]["POST"]
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
    cases: list[BadInputCase] = []

    @hseed(seed)
    @settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(case: Any) -> None:
        body = case.body
        if body is None or type(body).__name__ == "NotSet":
            content = b""
        elif isinstance(body, bytes):
            content = body
        else:
            try:
                content = json.dumps(body, allow_nan=False).encode("utf-8")
            except (TypeError, ValueError):
                content = repr(body).encode("utf-8")
        media = case.media_type or "application/json"
        cases.append(BadInputCase(f"generated from the schema #{len(cases) + 1}", content, media))

    draw()
    unique: dict[tuple[bytes, str | None], BadInputCase] = {}
    for case in cases:
        unique.setdefault((case.content, case.content_type), case)
    return list(unique.values())


def check_service_rejects_bad_input(
    server: Any,
    *,
    path: str = "/classify",
    openapi_path: str = "/docs.json",
    health_path: str = "/readyz",
    field: str | None = None,
    valid_item: Any = "a short text",
    max_items: int | None = None,
    max_chars: int | None = None,
    max_body_bytes: int | None = None,
    max_examples: int = 25,
    seed: int = 0,
    extra_cases: Iterable[BadInputCase] = (),
) -> list[list[Any]]:
    """Fail unless every malformed request gets a 4xx with a body, and the server survives.

    The cases: requests generated from the service's OpenAPI schema for
    ``POST path`` (schemathesis negative mode: wrong types, missing fields,
    constraint breaches), then :func:`bad_input_cases` (malformed JSON, wrong
    types, missing fields, empty list, too many items, oversized strings and
    body, invalid UTF-8, wrong content type) and ``extra_cases``. A 5xx, a
    2xx, an empty body or a dropped connection fails; so does a server that is
    not healthy (``GET health_path`` != 200) afterwards.

    Args:
        server: A :class:`RunningServer` or an ``httpx.Client`` with a base URL.
        path: The endpoint.
        openapi_path: Where the service serves its OpenAPI schema (``None``: no
            generated cases).
        health_path: Must answer 200 after the battery.
        field: The body's list field (default: the schema's first array field, else "items").
        valid_item: One valid item, used to build the oversized cases.
        max_items: The service's items-per-request limit (default: the schema's ``maxItems``).
        max_chars: The service's characters-per-text limit.
        max_body_bytes: The service's body-size limit (the body case is sent only if known).
        max_examples: Generated cases to draw.
        seed: Seed of the generation, so a run can be replayed.
        extra_cases: More :class:`BadInputCase` of your own.

    Returns:
        One row per case: name, status, first line of the answer.

    Raises:
        MLCheckFailure: With a table of every case that was not refused cleanly.

    Example:
        >>> check_service_rejects_bad_input(server, max_items=64, max_chars=50_000,
        ...                                 max_body_bytes=4 * 1024 * 1024)  # doctest: +SKIP
    """
    __tracebackhide__ = True
    httpx = _httpx()
    client = _client_of(server)
    generated: list[BadInputCase] = []
    if openapi_path is not None:
        response = client.get(openapi_path)
        if response.status_code != 200:
            raise MLUsageError(
                f"GET {openapi_path} gave HTTP {response.status_code}: give openapi_path= "
                "where the service serves its OpenAPI schema, or openapi_path=None"
            )
        schema = response.json()
        limits = _schema_limits(schema, path)
        field = field or limits.get("array_field")
        if max_items is None:
            max_items = limits.get("max_items")
        if max_examples > 0:
            generated = _generated_cases(schema, path, max_examples, seed)
    field = field or "items"
    cases = [
        *generated,
        *bad_input_cases(
            field=field,
            valid_item=valid_item,
            max_items=max_items,
            max_chars=max_chars,
            max_body_bytes=max_body_bytes,
        ),
        *extra_cases,
    ]
    rows: list[list[Any]] = []
    failures: list[list[Any]] = []
    latencies: list[float] = []
    started = time.perf_counter()
    for number, case in enumerate(cases):
        headers = {} if case.content_type is None else {"content-type": case.content_type}
        t0 = time.perf_counter()
        try:
            response = client.post(path, content=case.content, headers=headers)
        except httpx.HTTPError as exc:
            latencies.append((time.perf_counter() - t0) * 1000.0)
            row = [case.name, "-", f"connection failed: {type(exc).__name__}"]
            rows.append(row)
            failures.append([*row, "no answer"])
            if not _healthy(client, health_path, httpx):
                left = len(cases) - number - 1
                failures.append(
                    [f"({left} later cases)", "-", "not sent", "the server stopped answering"]
                )
                break
            continue
        latencies.append((time.perf_counter() - t0) * 1000.0)
        text = response.text.strip()
        first = text.splitlines()[0] if text else ""
        row = [case.name, response.status_code, _short(first, 70)]
        rows.append(row)
        status = response.status_code
        if status >= 500:
            failures.append([*row, "server error on client input"])
        elif status < 400:
            failures.append([*row, "accepted a malformed request"])
        elif not text:
            failures.append([*row, "4xx without a body saying why"])
    seconds = time.perf_counter() - started
    healthy = _healthy(client, health_path, httpx)
    if not healthy:
        failures.append(
            ["(after the battery)", "-", f"GET {health_path} failed", "server unhealthy"]
        )
    latency = record_latency("bad_input", latencies, seconds)
    passed = not failures
    headline = (
        f"all {len(cases)} malformed requests refused with a 4xx and a message "
        f"({len(generated)} generated from the OpenAPI schema); server healthy after"
        if passed
        else f"{len(failures)} of {len(cases)} malformed requests were not refused cleanly"
    )
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[str(row[1])] = statuses.get(str(row[1]), 0) + 1
    record_check(
        "serving",
        "rejects_bad_input",
        passed,
        headline=headline,
        metrics={
            "cases": len(cases),
            "failed": len(failures),
            "generated": len(generated),
            **{f"status[{k}]": v for k, v in sorted(statuses.items())},
            "p50_ms": latency["p50_ms"],
            "p99_ms": latency["p99_ms"],
        },
        examples=[
            dict(zip(["case", "status", "answer", "problem"], f, strict=True)) for f in failures
        ],
        group={"check": "rejects_bad_input"},
    )
    if failures:
        lines = format_table(["case", "status", "answer", "problem"], failures, limit=20)
        tail = ""
        if isinstance(server, RunningServer):
            tail = f"\n\n--- server log (last lines) ---\n{server.log_tail(20)}"
        raise MLCheckFailure(
            f"{headline}\n\n"
            + "\n".join(lines)
            + "\n\nValidate the request before the model sees it and answer 4xx with a "
            "one-line reason; a 5xx means client input reached code that cannot handle it." + tail
        )
    return rows


def _healthy(client: Any, path: str, httpx: Any) -> bool:
    try:
        return bool(client.get(path).status_code == 200)
    except httpx.HTTPError:
        return False
