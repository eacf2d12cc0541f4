"""Load on the served model: 10,000 single-text requests at concurrency 32 against `bentoml serve`.

    python benchmarks/serving.py --model-dir artifacts/model --data-dir artifacts/data

What it does, in one run:

1. packages the model into a temporary BentoML store and starts
   ``bentoml serve reference_pipeline.service:Classifier`` on a free
   127.0.0.1 port (through ``mltest.serving``), prediction log on, as in
   production;
2. measures the server's RSS (the whole process group), sends 200 sequential
   requests, then ``--warmup`` requests at ``--concurrency`` from the second
   process, measures RSS again (the baseline);
3. from a **second process**, sends ``--requests`` single-text requests
   (``{"items": [text]}``) with ``--concurrency`` in flight, in a bounded loop,
   cycling over the test split's texts; records each latency and error;
4. measures RSS after the load; stops the server;
5. measures the ceiling: the in-process batched ``Predictor`` on the same
   texts (batches of ``--max-batch-size``, one thread per process), in as many
   processes as the server has workers (``ceiling_rps``: what the server's
   workers could do without HTTP), and in one process (``ceiling_rps_one``).

The default load tool (``--tool raw``) is a bare asyncio client: one
keep-alive HTTP/1.1 connection per user, requests written by hand, status,
headers and body (``Content-Length`` or chunked) read back, anything but a
complete 200 counted as an error. On 2 cores the load generator shares the CPU
with the server, so its own cost is measured as server slowness: the httpx
async client (``--tool httpx``, the first tool used here) costs ~4.4 ms of CPU
per request, more than the server, and capped the run at ~200 requests/s;
the bare client costs ~0.12 ms. The script prints both sides' CPU per
request. ``--tool locust`` runs the same load with locust headless
(``--iterations`` per user; gevent users plus its stats cost more still), and
a bounded number of requests (not a duration) is natural here.

RSS: after 200 sequential requests, ``--warmup`` (2,000) requests at the
load's concurrency fill the allocator's pools with batches of the sizes the
load makes; the RSS after that is the baseline. RSS is sampled every 0.25 s
through the load: a leak keeps rising, a pool levels off (the script says
which, from the second half against the first half's peak).

Targets on 2 cores: 0 errors, p99 <= 100 ms, rps >= 30% of the ceiling, RSS
growth <= 10%. The last line is one JSON object:
``{"requests", "errors", "rps", "p50_ms", "p99_ms", "ceiling_rps", "rss_growth",
"rss_growth_second_half", "ceiling_rps_one", "server_cpu_ms_per_request", "tool",
"load_average"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# The load generator (runs in its own process)
# ---------------------------------------------------------------------------


async def _load(url: str, texts: list[str], n: int, concurrency: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:

        async def user() -> None:
            for i in counter:
                body = {"items": [texts[i % len(texts)]]}
                t0 = time.perf_counter()
                try:
                    response = await client.post("/classify", json=body)
                    ok = response.status_code == 200
                    kind = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                latencies.append((time.perf_counter() - t0) * 1000.0)
                if not ok:
                    errors[kind] = errors.get(kind, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"latencies_ms": latencies, "errors": errors, "seconds": seconds}


async def _raw_load(url: str, texts: list[str], n: int, concurrency: int) -> dict[str, Any]:
    """The same load over bare asyncio streams: one keep-alive HTTP/1.1 connection per user.

    It writes each request by hand and reads the status line, the headers and
    the body (``Content-Length`` or chunked), and counts anything but a
    complete 200 as an error. It costs the client a fraction of httpx's CPU
    per request, which matters when client and server share 2 cores.
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(n))
    bodies = [json.dumps({"items": [t]}).encode("utf-8") for t in texts]
    head = (
        f"POST /classify HTTP/1.1\r\nhost: {host}:{port}\r\n"
        "content-type: application/json\r\naccept: */*\r\ncontent-length: "
    ).encode("ascii")

    async def read_response(reader: asyncio.StreamReader) -> int:
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await reader.readexactly(length)
        return status

    async def user() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for i in counter:
                body = bodies[i % len(bodies)]
                t0 = time.perf_counter()
                try:
                    writer.write(head + str(len(body)).encode("ascii") + b"\r\n\r\n" + body)
                    status = await read_response(reader)
                    ok, kind = status == 200, f"HTTP {status}"
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                    ok, kind = False, type(exc).__name__
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                latencies.append((time.perf_counter() - t0) * 1000.0)
                if not ok:
                    errors[kind] = errors.get(kind, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    return {"latencies_ms": latencies, "errors": errors, "seconds": seconds}


def _client_main(args: argparse.Namespace) -> int:
    texts = json.loads(Path(args.texts).read_text(encoding="utf-8"))
    import resource

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    load = _raw_load if args.tool == "raw" else _load
    result = asyncio.run(load(args.url, texts, args.requests, args.concurrency))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0


LOCUSTFILE = """
import json, os, time
from locust import FastHttpUser, task, constant
TEXTS = json.load(open(os.environ["BENCH_TEXTS"]))

class Client(FastHttpUser):
    wait_time = constant(0)
    i = 0

    @task
    def classify(self):
        Client.i += 1
        self.client.post("/classify", json={"items": [TEXTS[Client.i % len(TEXTS)]]})
"""


def _run_locust(url: str, texts_file: Path, n: int, concurrency: int, work: Path) -> dict[str, Any]:
    locustfile = work / "locustfile.py"
    locustfile.write_text(LOCUSTFILE, encoding="utf-8")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u",
         str(concurrency), "-r", str(concurrency), "--host", url, "--iterations",
         str(n // concurrency), "--csv", str(work / "locust"), "--only-summary"],
        env={**os.environ, "BENCH_TEXTS": str(texts_file)},
        check=True, capture_output=True, timeout=1800,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    import csv

    with open(work / "locust_stats.csv", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "/classify")
    return {
        "requests": int(row["Request Count"]),
        "errors": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "seconds": seconds,
    }


# ---------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------


def _group_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def _group_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by the process and its children."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _ceiling_worker(model_dir: str, texts: list[str], batch_size: int, barrier: Any) -> float:
    import torch

    from reference_pipeline.predict import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.load(Path(model_dir), batch_size=batch_size)
    predictor.predict_proba(texts[:batch_size])  # warm-up
    barrier.wait()  # every process starts timing together
    start = time.perf_counter()
    predictor.predict_proba(texts)
    return time.perf_counter() - start


def _ceiling(model_dir: Path, texts: list[str], batch_size: int, processes: int) -> float:
    """Texts/s of ``processes`` in-process Predictors side by side, one thread each.

    The server's N workers are N processes with a model each; the fair ceiling
    is as many Predictors on the same cores, with no HTTP, each predicting all
    the texts in batches of the server's max batch size. Throughput is all the
    texts over the slowest process's time.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            seconds = pool.starmap(
                _ceiling_worker,
                [(str(model_dir), texts, batch_size, barrier) for _ in range(processes)],
            )
    return processes * len(texts) / max(seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=REPO / "artifacts" / "model")
    parser.add_argument("--data-dir", type=Path, default=REPO / "artifacts" / "data")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="requests at --concurrency before the RSS baseline")  # fmt: skip
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-latency-ms", type=int, default=1000)
    parser.add_argument("--tool", choices=["raw", "httpx", "locust"], default="raw")
    parser.add_argument("--no-access-log", action="store_true", help="RP_ACCESS_LOG=0")
    # internal: the load-generator process
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workers is None:
        from reference_pipeline.config import available_cores

        args.workers = available_cores()
    if args.client:
        return _client_main(args)

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    for need in (args.model_dir / "model.pt", args.data_dir / "test.csv"):
        if not need.is_file():
            print(f"error: {need}: not found; run `python -m reference_pipeline run` first",
                  file=sys.stderr)  # fmt: skip
            return 2
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    home = work / "bentoml"
    os.environ["BENTOML_HOME"] = str(home)
    from mltest.serving import latency_summary, start_server
    from reference_pipeline.data import read_split
    from reference_pipeline.service import item_text, package_model

    tag = package_model(args.model_dir)
    test = read_split(args.data_dir / "test.csv")
    texts = [item_text({"title": t, "description": d})
             for t, d in zip(test["title"], test["description"], strict=True)]  # fmt: skip
    texts_file = work / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    env = {
        "BENTOML_HOME": str(home),
        "RP_MODEL_TAG": tag,
        "RP_PREDICTION_LOG": str(work / "predictions"),
        "RP_WORKERS": str(args.workers),
        "RP_MAX_BATCH_SIZE": str(args.max_batch_size),
        "RP_MAX_LATENCY_MS": str(args.max_latency_ms),
        "RP_ACCESS_LOG": "0" if args.no_access_log else "1",
        "OMP_NUM_THREADS": "1",
    }
    command = [sys.executable, "-m", "bentoml", "serve", "reference_pipeline.service:Classifier",
               "--host", "{host}", "--port", "{port}"]  # fmt: skip
    load_before = os.getloadavg()
    server = start_server(command, env=env, timeout=180, grace=15)
    try:
        rss_cold = _group_rss(server.process.pid)
        for i in range(200):  # warm-up: allocator, batching optimizer, caches
            server.client.post("/classify", json={"items": [texts[i % len(texts)]]})
        rss_after_sequential = _group_rss(server.process.pid)

        def client(n: int, out: Path) -> None:
            subprocess.run(
                [sys.executable, __file__, "--client", "--url", server.base_url, "--texts",
                 str(texts_file), "--requests", str(n), "--concurrency",
                 str(args.concurrency), "--out", str(out), "--tool", args.tool],
                check=True, timeout=3600,
            )  # fmt: skip

        if args.warmup and args.tool in ("raw", "httpx"):
            # the same concurrency as the load: batches of the same sizes, so the
            # allocator's pools and the batching optimizer are where the load puts them
            client(args.warmup, work / "warmup.json")
        rss_before = _group_rss(server.process.pid)
        cpu_before = _group_cpu(server.process.pid)
        samples: list[int] = []
        sampling = threading.Event()

        def sample() -> None:  # the RSS through the load: a leak keeps rising, a pool levels off
            while not sampling.wait(0.25):
                samples.append(_group_rss(server.process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if args.tool in ("raw", "httpx"):
            out = work / "client.json"
            client(args.requests, out)
            raw = json.loads(out.read_text(encoding="utf-8"))
            lat = latency_summary(raw["latencies_ms"], raw["seconds"])
            load = {
                "requests": len(raw["latencies_ms"]),
                "errors": sum(raw["errors"].values()),
                "error_kinds": raw["errors"],
                "rps": lat["rps"],
                "p50_ms": lat["p50_ms"],
                "p95_ms": lat["p95_ms"],
                "p99_ms": lat["p99_ms"],
                "seconds": raw["seconds"],
                "client_cpu_s": raw["client_cpu_s"],
            }
        else:
            load = _run_locust(server.base_url, texts_file, args.requests, args.concurrency, work)
        sampling.set()
        sampler.join()
        rss_after = _group_rss(server.process.pid)
        server_cpu = _group_cpu(server.process.pid) - cpu_before
    finally:
        server.stop()
    load_after = os.getloadavg()
    bench_texts = [texts[i % len(texts)] for i in range(args.requests)]
    ceiling = _ceiling(args.model_dir, bench_texts, args.max_batch_size, args.workers)
    ceiling_one = (
        _ceiling(args.model_dir, bench_texts, args.max_batch_size, 1)
        if args.workers > 1
        else ceiling
    )
    growth = rss_after / rss_before - 1 if rss_before else float("nan")
    half = len(samples) // 2
    first_half = max(samples[:half], default=rss_before)
    second_half_growth = rss_after / first_half - 1 if first_half else float("nan")

    print(f"served model {tag}: {args.workers} worker(s), max batch {args.max_batch_size}, "
          f"max latency {args.max_latency_ms} ms, access log "
          f"{'off' if args.no_access_log else 'on'}; load tool {args.tool}")  # fmt: skip
    print(f"machine load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
          f"({os.cpu_count()} cores)")  # fmt: skip
    print(f"requests      {load['requests']:,} at concurrency {args.concurrency}, "
          f"{load['seconds']:.1f} s")  # fmt: skip
    print(f"errors        {load['errors']} {load.get('error_kinds', '')}")
    print(f"throughput    {load['rps']:.1f} requests/s")
    print(f"latency       p50 {load['p50_ms']:.1f} ms, p95 {load['p95_ms']:.1f} ms, "
          f"p99 {load['p99_ms']:.1f} ms")  # fmt: skip
    print(f"server RSS    cold {rss_cold / 2**20:.1f} MiB, after {200} sequential requests "
          f"{rss_after_sequential / 2**20:.1f} MiB, after {args.warmup:,} warm-up requests at "
          f"concurrency {args.concurrency} (the baseline) {rss_before / 2**20:.1f} MiB, after "
          f"load {rss_after / 2**20:.1f} MiB (growth {growth:+.1%})")  # fmt: skip
    verdict = "still rising: a leak?" if second_half_growth > 0.02 else "levels off: no leak seen"
    quarters = [samples[min(len(samples) - 1, len(samples) * q // 4)] for q in (1, 2, 3)]
    print(f"              second half of the load vs the first half's peak: "
          f"{second_half_growth:+.1%} ({verdict}); at 1/4, 1/2, 3/4 of the load: "
          + ", ".join(f"{r / 2**20:.1f}" for r in quarters) + " MiB")  # fmt: skip
    print(
        f"ceiling       {ceiling:.1f} texts/s (in-process Predictor, batches of "
        f"{args.max_batch_size}, {args.workers} process(es) of 1 thread, as the server's "
        f"workers); served = {load['rps'] / ceiling:.1%} of it; one process: "
        f"{ceiling_one:.1f} texts/s ({load['rps'] / ceiling_one:.1%})"
    )
    cpu_ms = server_cpu / max(load["requests"], 1) * 1000
    print(f"server CPU    {server_cpu:.1f} s for the load: {cpu_ms:.2f} ms per request; one "
          f"core to itself would answer about {1000 / cpu_ms:.0f} requests/s")  # fmt: skip
    if "client_cpu_s" in load:
        client_ms = load["client_cpu_s"] / max(load["requests"], 1) * 1000
        print(f"client CPU    {load['client_cpu_s']:.1f} s: {client_ms:.2f} ms per request "
              f"(the load generator's own cost; one core caps it at about "
              f"{1000 / client_ms:.0f} requests/s)")  # fmt: skip
    targets = {
        "0 errors": load["errors"] == 0,
        "p99 <= 100 ms": load["p99_ms"] <= 100,
        "rps >= 30% of ceiling": load["rps"] >= 0.3 * ceiling,
        "RSS growth <= 10%": growth <= 0.10,
    }
    print(
        "targets       " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in targets.items())
    )
    print(
        json.dumps(
            {
                "requests": load["requests"],
                "errors": load["errors"],
                "rps": round(load["rps"], 1),
                "p50_ms": round(load["p50_ms"], 2),
                "p99_ms": round(load["p99_ms"], 2),
                "ceiling_rps": round(ceiling, 1),
                "rss_growth": round(growth, 4),
                "rss_growth_second_half": round(second_half_growth, 4),
                "ceiling_rps_one": round(ceiling_one, 1),
                "server_cpu_ms_per_request": round(cpu_ms, 3),
                "tool": args.tool,
                "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
