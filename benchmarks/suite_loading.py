"""Large expectation suites: YAML loading with libyaml (C) vs PyYAML's pure-Python loader.

Run: python benchmarks/suite_loading.py [--mb 5] [--collect]

Generates a data suite of about ``--mb`` megabytes (``expect_column_values_to_be_in_set``
entries with 40-value sets, the shape that makes suites large) and a
behavioural suite of the same size, then, each in a fresh subprocess so that
peak memory is its own:

1. ``mltest.data.suites.load_suite`` three ways: as before this change
   (pure-Python ``SafeLoader``, garbage collector running), with the
   pure-Python loader and the collector paused (mltest's fallback without
   libyaml), and as now (libyaml's ``CSafeLoader``, collector paused);
2. the same for ``mltest.behavioral.suites.load_suite``;
3. with ``--collect``: ``pytest --collect-only`` of the data suite (one test
   item per expectation), C loader.

Times are wall seconds on whatever else the machine runs: compare the two
loaders of one run, not runs. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = [f"value_{i:04d}" for i in range(400)]


def write_data_suite(path: Path, megabytes: float) -> int:
    """Write a data suite of about ``megabytes`` MB; return its expectation count."""
    target = int(megabytes * 1_000_000)
    lines = ["data: train.csv", "expectations:"]
    size, count = 0, 0
    while size < target:
        values = ", ".join(WORDS[(count + k) % len(WORDS)] for k in range(40))
        line = (
            f"  - expect_column_values_to_be_in_set: {{column: col_{count % 50}, "
            f"value_set: [{values}]}}\n    id: set-{count}"
        )
        lines.append(line)
        size += len(line) + 1
        count += 1
    path.write_text("\n".join(lines) + "\n")
    return count


def write_json_suite(path: Path, yaml_suite: Path) -> None:
    """The same data suite in GX's JSON form (read with the json module, not YAML)."""
    import yaml

    raw = yaml.load(yaml_suite.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    expectations = []
    for entry in raw["expectations"]:
        ((kind, kwargs),) = ((k, v) for k, v in entry.items() if k != "id")
        expectations.append({"type": kind, "kwargs": kwargs, "meta": {"id": entry["id"]}})
    suite = {"name": "big", "expectations": expectations, "meta": {"mltest": {"data": "train.csv"}}}
    path.write_text(json.dumps(suite))


def write_behavioral_suite(path: Path, megabytes: float) -> int:
    """Write a behavioural suite of about ``megabytes`` MB; return its test count."""
    target = int(megabytes * 1_000_000)
    lines = ["labels: [sport, tech]", "tests:"]
    size, count = 0, 0
    while size < target:
        examples = ", ".join(f'"{WORDS[(count + k) % len(WORDS)]} won"' for k in range(30))
        block = (
            f"  - name: t{count}\n    type: MFT\n    capability: Vocabulary\n"
            f"    examples: [{examples}]\n    expect: {{label: sport}}"
        )
        lines.append(block)
        size += len(block) + 1
        count += 1
    path.write_text("\n".join(lines) + "\n")
    return count


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    ``VmHWM`` on Linux: ``ru_maxrss`` survives ``exec`` and would count the
    parent's peak (the parent holds the generated suites).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, path: str, loader: str) -> None:
    """Load one suite and print {"seconds", "max_rss_mb", "items"} (run in a subprocess)."""
    import yaml

    if loader in ("python", "before") and hasattr(yaml, "CSafeLoader"):
        del yaml.CSafeLoader  # mltest falls back to the pure-Python SafeLoader
    if loader == "before":  # as mltest loaded suites before: pure Python, collector running
        import contextlib

        import mltest.data.suites

        mltest.data.suites.paused_gc = contextlib.nullcontext  # type: ignore[assignment]
    start = time.perf_counter()
    if kind == "data":
        from mltest.data.suites import load_suite as load_data

        items = len(load_data(Path(path)).specs)
    else:
        from mltest.behavioral.suites import load_suite as load_behavioral

        items = len(load_behavioral(Path(path)).tests)
    seconds = time.perf_counter() - start
    rss = _peak_rss_mb()
    print(json.dumps({"seconds": seconds, "max_rss_mb": rss, "items": items}))


def measure(kind: str, path: Path, loader: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), loader],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def collect_seconds(folder: Path) -> float:
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "mltest.plugin",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=folder,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0, help="suite size in MB (default 5)")
    parser.add_argument("--collect", action="store_true", help="also time pytest --collect-only")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    figures: dict[str, float] = {"suite_mb": args.mb}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "big.expectations.yaml"
        behavioral = folder / "big.behavioral.yaml"
        n_data = write_data_suite(data, args.mb)
        n_beh = write_behavioral_suite(behavioral, args.mb)
        print(
            f"data suite {data.stat().st_size / 1e6:.1f} MB, {n_data:,} expectations; "
            f"behavioural suite {behavioral.stat().st_size / 1e6:.1f} MB, {n_beh:,} tests"
        )
        as_json = folder / "big_json.expectations.json"
        write_json_suite(as_json, data)
        j = measure("data", as_json, "c")
        print(
            f"data (GX JSON form, {as_json.stat().st_size / 1e6:.1f} MB): "
            f"{j['seconds']:.2f} s {j['max_rss_mb']:.0f} MB"
        )
        figures["data_json_seconds"] = round(j["seconds"], 3)
        figures["data_json_max_rss_mb"] = round(j["max_rss_mb"])
        as_json.unlink()
        for kind, path in (("data", data), ("behavioral", behavioral)):
            runs = {mode: measure(kind, path, mode) for mode in ("before", "python", "c")}
            before = runs["before"]["seconds"]
            for mode, label in (
                ("before", "before (pure-Python loader, GC on)"),
                ("python", "pure-Python loader, GC paused"),
                ("c", "C loader, GC paused (now)"),
            ):
                run = runs[mode]
                print(
                    f"{kind:10}  {label:36} {run['seconds']:7.2f} s "
                    f"{run['max_rss_mb']:6.0f} MB peak  {before / run['seconds']:4.1f}x"
                )
                figures[f"{kind}_{mode}_seconds"] = round(run["seconds"], 3)
                figures[f"{kind}_{mode}_max_rss_mb"] = round(run["max_rss_mb"])
            figures[f"{kind}_speedup"] = round(before / runs["c"]["seconds"], 2)
        if args.collect:
            behavioral.unlink()
            seconds = collect_seconds(folder)
            print(f"pytest --collect-only of the data suite: {seconds:.1f} s ({n_data:,} items)")
            figures["data_collect_seconds"] = round(seconds, 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
