"""A tiny stdlib HTTP model server with switchable bugs, for the serving kit's tests.

``APP`` is written to a file and run as ``python app.py PORT``. ``APP_MODE``
selects its behaviour: ``good`` (validates everything, answers 4xx with a
message), ``flip`` (serves the wrong label for texts with "flip"), ``skew``
(probabilities off by 0.01), ``crash`` (a non-string item raises: HTTP 500),
``lenient`` (accepts an empty list), ``die`` (invalid UTF-8 kills the
process), ``never_ready`` (/ready answers 503), ``exit`` (exits with status 3
at start) and ``stubborn`` (ignores SIGTERM and has a child process).
"""

from __future__ import annotations

APP = r"""
import json, os, signal, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = os.environ.get("APP_MODE", "good")
LABELS = ["neg", "pos"]
MAX_ITEMS, MAX_CHARS = 4, 100
SCHEMA = {
    "openapi": "3.0.2",
    "info": {"title": "tiny", "version": "1"},
    "paths": {"/classify": {"post": {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                                     "items": {"type": "string", "maxLength": MAX_CHARS}}}}}}},
        "responses": {"200": {"description": "ok"}}}}},
}

def proba(text):
    p = 0.9 if "good" in text else 0.2
    return [1 - p, p]

def predict(text):
    probs = proba(text)
    if MODE == "skew":
        probs = [probs[0] + 0.01, probs[1] - 0.01]
    tag = LABELS[probs.index(max(probs))]
    if MODE == "flip" and "flip" in text:
        tag = LABELS[1 - LABELS.index(tag)]
    return {"tag": tag, "probabilities": dict(zip(LABELS, probs))}

class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        print("tiny:", fmt % args, flush=True)

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ready":
            self.reply(503 if MODE == "never_ready" else 200, {"ready": MODE != "never_ready"})
        elif self.path == "/docs.json":
            self.reply(200, SCHEMA)
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != "/classify":
            return self.reply(404, {"error": "not found"})
        if (self.headers.get("content-type") or "").split(";")[0] != "application/json":
            return self.reply(415, {"error": "send application/json"})
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            if MODE == "die":
                print("tiny: fatal: cannot decode the body", flush=True)
                os._exit(1)
            return self.reply(400, {"error": "body is not UTF-8"})
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            return self.reply(400, {"error": "body is not JSON"})
        if not isinstance(body, dict) or set(body) != {"items"}:
            return self.reply(422, {"error": "expected {\"items\": [...]}"})
        items = body["items"]
        if not isinstance(items, list):
            return self.reply(422, {"error": "items: expected a list"})
        if not items and MODE != "lenient":
            return self.reply(422, {"error": "items: empty list"})
        if len(items) > MAX_ITEMS:
            return self.reply(422, {"error": f"items: more than {MAX_ITEMS}"})
        for item in items:
            if not isinstance(item, str):
                if MODE == "crash":
                    print("tiny: Traceback: AttributeError: "
                          "'int' object has no attribute 'lower'", flush=True)
                    return self.reply(500, {"error": "Internal Server Error"})
                return self.reply(422, {"error": "items: strings only"})
            if len(item) > MAX_CHARS:
                return self.reply(422, {"error": f"items: over {MAX_CHARS} characters"})
        self.reply(200, [predict(t) for t in items])

if __name__ == "__main__":
    pidfile = os.environ.get("APP_PIDFILE")
    if MODE == "exit":
        print("tiny: boom: config file missing", flush=True)
        sys.exit(3)
    pids = [os.getpid()]
    if MODE == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
        child = subprocess.Popen([sys.executable, "-c", code])
        pids.append(child.pid)
    if pidfile:
        with open(pidfile, "w") as f:
            f.write(" ".join(map(str, pids)))
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print(f"tiny: listening on {sys.argv[1]} in mode {MODE}", flush=True)
    server.serve_forever()
"""


def expected_proba(texts: list[str]) -> list[list[float]]:
    """What the tiny server's model predicts, computed in-process (the parity reference).

    Example:
        >>> expected_proba(["good"])
        [[0.09999999999999998, 0.9]]
    """
    return [[1 - p, p] for p in (0.9 if "good" in t else 0.2 for t in texts)]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id still runs (a zombie counts as gone).

    Example:
        >>> pid_alive(1)
        True
    """
    import os

    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state != "Z"
