"""How much loading mltest costs a test suite that does not use it, and one that does.

A generated suite of 2,000 trivial tests is collected (``--collect-only``) and
run, with mltest loaded and with ``-p no:mltest``, in the same interpreter,
interleaving the variants over several repetitions and taking medians. The
other auto-loaded plugins are switched off in every variant so they do not
add noise. With ``--ml`` the suite's tests carry the ``ml`` marker, so mltest
does its per-test work (seeding, records, report gathering).

Times are CPU seconds (user + system) of the pytest process, which other
load on a shared machine disturbs far less than wall time; wall-time ratios
are printed beside them.

Targets: at most 1.03 without ``--ml``, at most 1.05 with it.

Usage: ``python benchmarks/plugin_overhead.py [--tests 2000] [--reps 7]``.
The last line printed is one JSON object:
``{"collect_ratio", "run_ratio", "collect_ratio_ml", "run_ratio_ml", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUIET = [
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hydra_pytest",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:memray",
    "-p",
    "no:anyio",
    "-p",
    "no:xdist",
    "-q",
]


# As on a user's machine: bytecode caches on. With PYTHONDONTWRITEBYTECODE set
# (as on some CI images), mltest's modules would be compiled from source on
# every run, while pytest's own come precompiled from site-packages.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONHASHSEED"] = "0"


def make_suite(root: Path, n_tests: int, *, marked: bool) -> None:
    per_file = 100
    mark = "@pytest.mark.ml\n" if marked else ""
    for f in range(n_tests // per_file):
        body = ["import pytest\n"]
        body += [f"{mark}def test_{i}():\n    assert {i} >= 0\n" for i in range(per_file)]
        (root / f"test_gen_{f:03d}.py").write_text("\n".join(body))
    (root / "pytest.ini").write_text("[pytest]\n")


def timed(args: list[str], cwd: Path) -> tuple[float, float]:
    """Run pytest once; return (CPU seconds of the child, wall seconds).

    CPU time (user + system) is the primary figure: it does not grow when
    other processes compete for the machine's cores, wall time does.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=ENV,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if run.returncode not in (0, 5):
        raise SystemExit(
            f"pytest failed ({run.returncode}): {run.stdout[-2000:]}{run.stderr[-2000:]}"
        )
    return cpu, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as plain_dir, tempfile.TemporaryDirectory() as ml_dir:
        plain, ml = Path(plain_dir), Path(ml_dir)
        make_suite(plain, args.tests, marked=False)
        make_suite(ml, args.tests, marked=True)
        variants = {
            "collect_off": (["--collect-only", "-p", "no:mltest"], plain),
            "collect_on": (["--collect-only"], plain),
            "run_off": (["-p", "no:mltest"], plain),
            "run_on": ([], plain),
            # Without mltest the ml marker is unknown: register it so both runs do the same work.
            "collect_ml_off": (["--collect-only", "-p", "no:mltest", "-o", "markers=ml"], ml),
            "collect_ml_on": (["--collect-only", "--ml"], ml),
            "run_ml_off": (["-p", "no:mltest", "-o", "markers=ml"], ml),
            "run_ml_on": (["--ml"], ml),
        }
        for cmd, cwd in variants.values():  # warm the file cache and .pyc files
            timed(cmd, cwd)
        times: dict[str, list[float]] = {name: [] for name in variants}
        walls: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.reps):
            for name, (cmd, cwd) in variants.items():
                cpu, wall = timed(cmd, cwd)
                times[name].append(cpu)
                walls[name].append(wall)

    med = {name: statistics.median(values) for name, values in times.items()}
    wall_med = {name: statistics.median(values) for name, values in walls.items()}
    result = {
        "collect_ratio": round(med["collect_on"] / med["collect_off"], 4),
        "run_ratio": round(med["run_on"] / med["run_off"], 4),
        "collect_ratio_ml": round(med["collect_ml_on"] / med["collect_ml_off"], 4),
        "run_ratio_ml": round(med["run_ml_on"] / med["run_ml_off"], 4),
        "tests": args.tests,
        "reps": args.reps,
        "wall_run_ratio": round(wall_med["run_on"] / wall_med["run_off"], 4),
        "wall_run_ratio_ml": round(wall_med["run_ml_on"] / wall_med["run_ml_off"], 4),
        "median_cpu_seconds": {k: round(v, 3) for k, v in med.items()},
    }
    for name, value in med.items():
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:16s} median CPU {value:.3f} s, wall {wall_med[name]:.3f} s  (CPU: {runs})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
