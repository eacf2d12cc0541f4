"""The prediction log: every served item, written off the request path to rotating JSONL.

Each served item becomes one JSON line: ``time`` (Unix seconds), ``text`` (or
``null`` when text logging is off), ``text_sha256``, ``text_chars``, ``tag``,
``confidence`` and ``model_version``. The request thread only puts each batch on a
queue; one writer thread builds the rows, appends them and flushes after each burst.

Bounded: each process writes its own file ``predictions-<worker>.jsonl`` in the
log folder (so several workers never interleave), which rotates to ``.1``,
``.2``... when it would pass ``max_bytes``; ``backups`` old files are kept.
The queue holds at most ``max_queue`` writes (one per served batch); past
that, their rows are dropped and counted rather than letting memory grow
(``dropped`` says how many). The request thread does no hashing or JSON: it
queues the texts and predictions of a batch as one entry, and the writer
thread builds the rows.

Nothing answered is lost on a clean stop: :meth:`PredictionLog.close` (called
from the service's shutdown hook on SIGTERM, and at exit) drains the queue,
flushes and fsyncs. A line torn by a hard kill is cut off when the file is
opened again, so the log always parses.

Example:
    >>> log = PredictionLog(tmp_path, log_text=False)  # doctest: +SKIP
    >>> log.write(["a text"], [("sport", 0.9)], "reference-classifier:abc")  # doctest: +SKIP
    >>> log.close()  # doctest: +SKIP
    >>> read_log(tmp_path)[0]["tag"]  # doctest: +SKIP
    'sport'
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["PredictionLog", "iter_log_files", "read_log"]

DEFAULT_DIR = "artifacts/predictions"
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_BACKUPS = 3
_STOP = object()


class PredictionLog:
    """Append prediction rows to a rotating JSONL file from a background thread.

    Args:
        folder: The log folder (created).
        log_text: Store the text; ``False`` stores only its SHA-256 and length.
        max_bytes: Size at which the file rotates.
        backups: Rotated files kept (``.1`` newest).
        name: File stem; default ``predictions-<worker>`` (BentoML's worker index, else the pid).
        max_queue: Writes (batches of rows) waiting at most; past it their rows are
            dropped and counted.
        linger: Seconds the writer waits after waking, to take several batches at once.

    Example:
        >>> log = PredictionLog("artifacts/predictions", log_text=False)  # doctest: +SKIP
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        log_text: bool = True,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backups: int = DEFAULT_BACKUPS,
        name: str | None = None,
        max_queue: int = 10_000,
        linger: float = 0.02,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError(f"max_bytes {max_bytes} is under 1024")
        if backups < 0:
            raise ValueError(f"backups {backups} is negative")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_text = log_text
        self.max_bytes = max_bytes
        self.backups = backups
        self.path = self.folder / f"{name or 'predictions-' + _worker_id()}.jsonl"
        self.linger = linger
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._lock = threading.Lock()
        _repair(self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115 - owned by the writer thread
        self._size = self._file.tell()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PredictionLog | None:
        """The log configured by ``RP_PREDICTION_LOG`` (``off`` -> ``None``) and friends.

        ``RP_LOG_TEXT=0`` stores hashes only; ``RP_LOG_MAX_BYTES`` and
        ``RP_LOG_BACKUPS`` bound the files.

        Example:
            >>> PredictionLog.from_env({"RP_PREDICTION_LOG": "off"}) is None
            True
        """
        env = os.environ if env is None else env
        folder = env.get("RP_PREDICTION_LOG", DEFAULT_DIR)
        if folder.strip().lower() in ("", "off", "none", "0"):
            return None
        return cls(
            folder,
            log_text=env.get("RP_LOG_TEXT", "1").strip().lower() not in ("0", "false", "no"),
            max_bytes=int(env.get("RP_LOG_MAX_BYTES", DEFAULT_MAX_BYTES)),
            backups=int(env.get("RP_LOG_BACKUPS", DEFAULT_BACKUPS)),
        )

    def write(
        self, texts: Sequence[str], predictions: Sequence[tuple[str, float]], model_version: str
    ) -> None:
        """Queue one row per item; returns at once (never blocks the request).

        Example:
            >>> log.write(["a"], [("sport", 0.9)], "m:1")  # doctest: +SKIP
        """
        # The request thread only pairs the values up and queues one entry per
        # call: hashing, rounding and JSON happen on the writer thread, and one
        # queue hand-off (a lock and a wake-up) serves the whole batch.
        rows = list(zip(texts, predictions, strict=True))
        if not rows:
            return
        try:
            self._queue.put_nowait((time.time(), rows, model_version))
        except queue.Full:
            self.dropped += len(rows)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued row is on disk.

        Example:
            >>> log.flush()  # doctest: +SKIP
        """
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self, timeout: float = 10.0) -> None:
        """Drain the queue, fsync and close (idempotent).

        Example:
            >>> log.close()  # doctest: +SKIP
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        atexit.unregister(self.close)

    # -- writer thread ------------------------------------------------------

    def _run(self) -> None:
        while True:
            entries = [self._queue.get()]
            if entries[0] is not _STOP:
                # Under load, let a few more batches arrive: fewer wake-ups, writes
                # and flushes (each one competes with the request thread for the GIL).
                time.sleep(self.linger)
            while True:  # take what is waiting: one write and flush per burst
                try:
                    entries.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(e is _STOP for e in entries)
            lines = [line for e in entries if e is not _STOP for line in self._lines(e)]
            for line in lines:
                if self._size and self._size + len(line) > self.max_bytes:
                    self._rotate()
                self._file.write(line)
                self._size += len(line)
            self._file.flush()
            self.written += len(lines)
            for _ in entries:
                self._queue.task_done()
            if stop:
                os.fsync(self._file.fileno())
                self._file.close()
                return

    def _lines(self, entry: Any) -> list[bytes]:
        """The JSON lines of one queued ``(time, [(text, (tag, confidence))], version)``."""
        try:
            now, rows, model_version = entry
        except (TypeError, ValueError):  # not an entry of write(): nothing to log
            return []
        stamp = round(now, 6)
        out = []
        for text, (tag, confidence) in rows:
            row = {
                "time": stamp,
                "text": text if self.log_text else None,
                "text_sha256": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
                "text_chars": len(text),
                "tag": tag,
                "confidence": round(float(confidence), 6),
                "model_version": model_version,
            }
            out.append(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
        return out

    def _rotate(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.backups == 0:
            self.path.unlink()
        else:
            for i in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{i}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0


def _worker_id() -> str:
    try:
        from bentoml._internal.context import server_context

        index = server_context.worker_index
    except Exception:  # pragma: no cover - bentoml missing or not a server
        index = None
    return f"w{index}" if index else f"p{os.getpid()}"


def _repair(path: Path) -> None:
    """Cut a last line torn by a hard kill, so appending keeps every line valid."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)


def iter_log_files(path: str | os.PathLike[str]) -> list[Path]:
    """The log files under ``path`` (a file or a folder), oldest first.

    Example:
        >>> iter_log_files("artifacts/predictions")  # doctest: +SKIP
        [PosixPath('artifacts/predictions/predictions-w1.jsonl.1'), ...]
    """
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such file or folder")
    files = [f for f in p.iterdir() if f.is_file() and ".jsonl" in f.name]

    def age(f: Path) -> tuple[str, int]:
        stem, _, suffix = f.name.partition(".jsonl")
        n = int(suffix[1:]) if suffix[1:].isdigit() else 0
        return (stem, -n)

    return sorted(files, key=age)


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every row of the log under ``path``; a line that does not parse is skipped.

    Example:
        >>> rows = read_log("artifacts/predictions")  # doctest: +SKIP
    """
    return list(_rows(path))


def _rows(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    for file in iter_log_files(path):
        with open(file, "rb") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    yield row
