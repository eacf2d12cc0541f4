"""The served smoke at the end of ``make run``: package, serve, send the test split, monitor, stop.

``python -m reference_pipeline.smoke --run-dir artifacts`` uses the outputs of
``python -m reference_pipeline run --out artifacts``:

1. packages ``<run-dir>/model`` into a BentoML store (``BENTOML_HOME``, default
   ``<run-dir>/bentoml``, so the user's own store is left alone);
2. serves it with ``bentoml serve`` on a free 127.0.0.1 port (``mltest.serving``);
3. sends every article of ``<run-dir>/data/test.csv`` as ``{title, description}``
   items, 32 per request;
4. runs ``monitor`` on the prediction log against ``train.csv`` (no drift expected);
5. stops the server (SIGTERM; the log is flushed) and prints each figure.

Exit status 0, or 1 when a request failed or the monitor found drift.

Example:
    $ python -m reference_pipeline.smoke --run-dir artifacts
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "smoke"]

BATCH = 32


def smoke(run_dir: Path, *, batch: int = BATCH, timeout: float = 120.0) -> dict[str, Any]:
    """Run the five steps; return the figures.

    Example:
        >>> smoke(Path("artifacts"))["errors"]  # doctest: +SKIP
        0
    """
    os.environ.setdefault("BENTOML_HOME", str((run_dir / "bentoml").resolve()))
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"
    from mltest.serving import latency_summary, serve
    from reference_pipeline import monitor
    from reference_pipeline.data import read_split
    from reference_pipeline.predlog import read_log
    from reference_pipeline.service import package_model

    model_dir, data_dir = run_dir / "model", run_dir / "data"
    t0 = time.perf_counter()
    tag = package_model(model_dir, data_dir=data_dir, eval_dir=run_dir / "eval")
    package_s = time.perf_counter() - t0

    log_dir = run_dir / "predictions-smoke"
    shutil.rmtree(log_dir, ignore_errors=True)
    env = {
        "BENTOML_HOME": os.environ["BENTOML_HOME"],
        "RP_MODEL_TAG": tag,
        "RP_PREDICTION_LOG": str(log_dir),
        "OMP_NUM_THREADS": "1",
        # One worker: the smoke sends its requests one at a time, and a second
        # model load would only add start-up time to `make run`.
        "RP_WORKERS": "1",
    }
    command = [
        sys.executable, "-m", "bentoml", "serve", "reference_pipeline.service:Classifier",
        "--host", "{host}", "--port", "{port}",
    ]  # fmt: skip
    test = read_split(data_dir / "test.csv")
    items = [
        {"title": t, "description": d}
        for t, d in zip(test["title"], test["description"], strict=True)
    ]
    errors = 0
    latencies: list[float] = []
    t0 = time.perf_counter()
    with serve(command, env=env, timeout=timeout, grace=15) as server:
        ready_s = time.perf_counter() - t0
        port = server.port
        t1 = time.perf_counter()
        for start in range(0, len(items), batch):
            t = time.perf_counter()
            response = server.client.post("/classify", json={"items": items[start : start + batch]})
            latencies.append((time.perf_counter() - t) * 1000)
            if response.status_code != 200:
                errors += 1
        send_s = time.perf_counter() - t1
    # stopped: SIGTERM flushed the log
    rows = read_log(log_dir)
    status, table = monitor.run(
        reference=data_dir / "train.csv",
        log=log_dir,
        out=run_dir / "monitor.json",
    )
    lat = latency_summary(latencies, send_s)
    return {
        "model": tag,
        "port": port,
        "package_s": round(package_s, 2),
        "ready_s": round(ready_s, 2),
        "items": len(items),
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(lat["p50_ms"], 1),
        "p99_ms": round(lat["p99_ms"], 1),
        "items_per_s": round(len(items) / send_s, 1) if send_s else None,
        "log_rows": len(rows),
        "drift": status == 1,
        "monitor_table": table,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Example:
        >>> main(["--run-dir", "artifacts"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(prog="python -m reference_pipeline.smoke")
    parser.add_argument("--run-dir", type=Path, default=Path("artifacts"))
    args = parser.parse_args(argv)
    for need in ("model/model.pt", "data/test.csv", "data/train.csv"):
        if not (args.run_dir / need).is_file():
            print(
                f"error: {args.run_dir / need}: not found; run `python -m reference_pipeline run "
                f"--out {args.run_dir}` first",
                file=sys.stderr,
            )
            return 2
    figures = smoke(args.run_dir)
    table = figures.pop("monitor_table")
    print("served smoke:")
    print(f"  packaged       {figures['model']} in {figures['package_s']} s")
    print(f"  served         127.0.0.1:{figures['port']}, ready in {figures['ready_s']} s")
    print(
        f"  sent           {figures['items']} test articles in {figures['requests']} requests: "
        f"{figures['errors']} errors, p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"{figures['items_per_s']} items/s"
    )
    print(f"  prediction log {figures['log_rows']} rows (server stopped with SIGTERM)")
    print("  monitor:")
    for line in table.splitlines():
        print("    " + line)
    print(json.dumps(figures))
    ok = figures["errors"] == 0 and not figures["drift"] and figures["log_rows"] == figures["items"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
