"""The server fixture and factory: start on a free loopback port, wait, show logs, never leak."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tiny_server import APP, pid_alive

pytest.importorskip("httpx")

from mltest.serving import ServerStartError, free_port, serve, start_server


def _pids(path: Path, wait: float = 30.0) -> list[int]:
    for _ in range(int(wait / 0.05)):
        if path.is_file() and path.read_text().strip():
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError(f"{path} was never written")


def test_serve_yields_base_url_and_client_then_stops_the_server(
    app_command: list[str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    with serve(app_command, ready_path="/ready", env={"APP_PIDFILE": str(pidfile)}) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        response = server.client.post("/classify", json={"items": ["good day"]})
        assert response.status_code == 200
        assert response.json()[0]["tag"] == "pos"
        assert len(server.latencies_ms) == 1
        (pid,) = _pids(pidfile)
        assert pid_alive(pid)
    assert not pid_alive(pid)
    assert server.process.returncode is not None


def test_a_server_ignoring_sigterm_and_its_child_are_killed_after_the_grace(
    app_command: list[str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    env = {"APP_MODE": "stubborn", "APP_PIDFILE": str(pidfile)}
    with serve(app_command, ready_path="/ready", env=env, grace=0.5) as server:
        leader, child = _pids(pidfile)
        assert pid_alive(child)
    assert server.process.returncode == -signal.SIGKILL
    assert not pid_alive(leader)
    for _ in range(40):  # the orphaned child is reaped by init shortly after SIGKILL
        if not pid_alive(child):
            break
        time.sleep(0.05)
    assert not pid_alive(child)


def test_an_interrupt_inside_the_block_still_stops_the_server(
    app_command: list[str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    pids: list[int] = []

    def interrupted() -> None:
        with serve(app_command, ready_path="/ready", env={"APP_PIDFILE": str(pidfile)}):
            pids.extend(_pids(pidfile))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert pids
    assert not pid_alive(pids[0])


def test_a_server_that_exits_at_start_is_reported_with_its_log(app_command: list[str]) -> None:
    with pytest.raises(ServerStartError) as info:
        start_server(app_command, ready_path="/ready", env={"APP_MODE": "exit"}, timeout=20)
    message = str(info.value)
    assert message.startswith("server exited with status 3 before it was ready (")
    assert message.splitlines()[1:] == [
        "--- server log (last lines) ---",
        "tiny: boom: config file missing",
    ]


def test_a_server_never_ready_times_out_is_stopped_and_shows_its_log(
    app_command: list[str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    env = {"APP_MODE": "never_ready", "APP_PIDFILE": str(pidfile)}
    with pytest.raises(ServerStartError) as info:
        start_server(app_command, ready_path="/ready", env=env, timeout=1)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("server not ready after 1 s: GET http://127.0.0.1:")
    assert "/ready gave HTTP 503, expected 200 (" in lines[0]
    assert "tiny: listening on" in "\n".join(lines[2:])
    (pid,) = _pids(pidfile)
    assert not pid_alive(pid)


def test_a_taken_port_is_retried_on_a_fresh_one(app_command: list[str]) -> None:
    # The first attempt gets a port something already holds; the kit tries another.
    busy = subprocess.Popen(
        [sys.executable, "-c", APP.split("if __name__")[0] + "import time; time.sleep(60)"]
    )
    holder = __import__("socket").socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    ports = iter([taken])

    def command(host: str, port: int) -> list[str]:
        return [*app_command[:-1], str(next(ports, port))]

    try:
        with serve(command, ready_path="/ready", timeout=20) as server:
            assert server.port != taken
            assert server.client.get("/ready").status_code == 200
    finally:
        holder.close()
        busy.kill()
        busy.wait()


def test_free_port_is_free_on_loopback() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_ml_server_fixture_stops_servers_and_shows_the_log_of_a_failing_test(
    pytester: pytest.Pytester, app_command: list[str], tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    pytester.makepyfile(
        f"""
        COMMAND = {app_command!r}
        ENV = {{"APP_PIDFILE": {str(pidfile)!r}}}

        def test_passes(ml_server):
            server = ml_server(COMMAND, ready_path="/ready", env=ENV)
            assert server.client.get("/ready").status_code == 200

        def test_fails(ml_server):
            server = ml_server(COMMAND, ready_path="/ready", env=ENV)
            server.client.post("/classify", json={{"items": ["good"]}})
            assert False, "the model said no"
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- server log (last 40 lines): *tiny_app.py * -*",
            "tiny: listening on * in mode good",
            '*"POST /classify HTTP/1.1" 200 -',
        ]
    )
    assert result.stdout.str().count("server log (last 40 lines)") == 1
    (pid,) = _pids(pidfile)
    assert not pid_alive(pid)


def test_ml_server_factory_serves_a_module_scoped_server(
    pytester: pytest.Pytester, app_command: list[str]
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture(scope="module")
        def server(ml_server_factory):
            with ml_server_factory.serve({app_command!r}, ready_path="/ready") as running:
                yield running

        def test_one(server):
            assert server.client.get("/ready").status_code == 200

        def test_same_server(server):
            assert server.alive()
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=2)


def _pytest_holding_a_server(
    app_command: list[str], tmp_path: Path, **popen: Any
) -> tuple[subprocess.Popen[bytes], int]:
    """A pytest run whose one test holds an ``ml_server``; returns it and the server's pid."""
    pidfile = tmp_path / "pids"
    test = tmp_path / "test_hold.py"
    test.write_text(
        f"""
import time

def test_hold(ml_server):
    ml_server({app_command!r}, ready_path="/ready", env={{"APP_PIDFILE": {str(pidfile)!r}}})
    time.sleep(60)
""",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    run = subprocess.Popen([*argv, str(test)], cwd=tmp_path, env=env, **popen)
    (pid,) = _pids(pidfile)
    return run, pid


def test_no_server_survives_an_interrupted_session(app_command: list[str], tmp_path: Path) -> None:
    """SIGINT to a pytest run that holds a server: the fixture's teardown stops it."""
    run, pid = _pytest_holding_a_server(
        app_command, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    out = run.communicate(timeout=30)[0].decode()
    assert "KeyboardInterrupt" in out
    assert not pid_alive(pid)


def test_no_server_survives_a_killed_session(app_command: list[str], tmp_path: Path) -> None:
    """SIGKILL to pytest (a CI timeout): no teardown runs, the parent-death signal stops it."""
    run, pid = _pytest_holding_a_server(
        app_command, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert pid_alive(pid)
    run.kill()
    run.wait(timeout=30)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pid)


def test_start_usage_errors_are_one_line(tmp_path: Path) -> None:
    from mltest.errors import MLUsageError

    with pytest.raises(ServerStartError, match=r"^cannot start '/no/such/server': No such file"):
        start_server(["/no/such/server", "{port}"])
    with pytest.raises(MLUsageError, match=r"^timeout must be positive, got 0"):
        start_server(["x"], timeout=0)
    with pytest.raises(MLUsageError, match=r"^command is empty: give the server's command line"):
        start_server([])


def test_an_explicit_log_path_is_kept(app_command: list[str], tmp_path: Path) -> None:
    log = tmp_path / "logs" / "server.log"
    with serve(app_command, ready_path="/ready", log_path=log) as server:
        server.client.get("/ready")
    assert "tiny: listening on" in log.read_text()
    assert "tiny: listening on" in server.log_tail()
