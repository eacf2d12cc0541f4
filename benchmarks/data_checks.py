"""Data checks: mltest's GX wrapper vs GX called directly, and drift on 1M rows.

Run: python benchmarks/data_checks.py [--rows 1000000] [--repeats 5]

1. A 1,000,000-row, 5-column frame and a 10-expectation suite (two of them
   fail, so mltest also builds its failure message). Timed, interleaved, in
   the same process: GX directly (ephemeral context, pandas data source,
   whole-dataframe batch, ``batch.validate(suite, result_format=SUMMARY)``)
   and ``mltest.data.validate`` on the same expectations. Both after a warm-up
   run. Timed in CPU seconds of this process (``time.process_time``): both
   sides are single-threaded pandas work, and on a shared machine wall time
   mostly measures the neighbours. Ratio of medians; the wall-clock ratio is
   printed too. Target <= 1.10.
2. ``drift_report`` between two 1M-row windows (3 numeric, 2 categorical
   columns). Median of the repeats; target < 2 s on 2 cores.
3. Statistics from constructed data: the drift false-alarm rate on identical
   windows over 200 seeds, and confident-learning precision/recall on synthetic
   data with 10% known flipped labels over 20 seeds.

The last line is one JSON object: {"gx_overhead_ratio", "drift_seconds_1m"}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")

import numpy as np
import pandas as pd

TAGS = ["business", "entertainment", "politics", "sport", "tech"]

SUITE: list[dict[str, dict[str, Any]]] = [
    {"expect_column_values_to_not_be_null": {"column": "price"}},
    {"expect_column_values_to_be_between": {"column": "price", "min_value": 0, "max_value": 1e6}},
    {"expect_column_mean_to_be_between": {"column": "price", "min_value": 90, "max_value": 110}},
    {"expect_column_values_to_be_between": {"column": "score", "min_value": 0, "max_value": 1}},
    {"expect_column_values_to_be_in_set": {"column": "tag", "value_set": TAGS[:4]}},  # fails
    {"expect_column_values_to_not_be_null": {"column": "tag"}},
    {"expect_column_values_to_be_unique": {"column": "id"}},
    {
        "expect_column_value_lengths_to_be_between": {
            "column": "title",
            "min_value": 1,
            "max_value": 30,
        }
    },
    {"expect_column_values_to_match_regex": {"column": "title", "regex": "^[a-z ]+$"}},  # fails
    {"expect_table_row_count_to_be_between": {"min_value": 1, "max_value": 2_000_000}},
]


def make_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["stocks fall", "cup final", "new phone", "vote today", "film star"])
    titles = words[rng.integers(0, len(words), rows)].astype(object)
    titles[:: max(rows // 1000, 1)] = "Odd Title 1"
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "price": rng.normal(100, 15, rows).clip(0),
            "score": rng.uniform(0, 1, rows),
            "tag": rng.choice(TAGS, rows),
            "title": titles,
        }
    )


def gx_direct(frame: pd.DataFrame, max_examples: int) -> Any:
    """The reference: GX 1.x used as its documentation shows, progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    if not hasattr(gx_direct, "batch_definition"):
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = context.data_sources.add_pandas("direct").add_dataframe_asset("frame")
        gx_direct.batch_definition = asset.add_batch_definition_whole_dataframe("whole")  # type: ignore[attr-defined]
    suite = gx.ExpectationSuite(name="direct")
    for entry in SUITE:
        ((name, kwargs),) = entry.items()
        suite.add_expectation(ExpectationConfiguration(type=name, kwargs=kwargs).to_domain_obj())
    batch = gx_direct.batch_definition.get_batch(batch_parameters={"dataframe": frame})  # type: ignore[attr-defined]
    return batch.validate(
        suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_examples}
    )


def mltest_validate(frame: pd.DataFrame, max_examples: int) -> str:
    from mltest.data import validate
    from mltest.errors import MLCheckFailure

    try:
        validate(frame, SUITE, name="bench", max_examples=max_examples)
    except MLCheckFailure as exc:
        return str(exc)
    raise AssertionError("the benchmark suite has failing expectations; mltest missed them")


def drift_windows(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    def window(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "price": rng.normal(100, 15, rows),
                "latency": rng.exponential(1.0, rows),
                "clicks": rng.poisson(3, rows),
                "tag": rng.choice(TAGS, rows),
                "source": pd.Categorical(rng.choice(["web", "app", "api"], rows)),
            }
        )

    return window(1), window(2)


def false_alarm_rate(runs: int = 200, rows: int = 400) -> float:
    from mltest.data import drift_report

    words = np.array(["market", "goal", "vote", "film", "phone", "bank", "team", "law"])

    def window(seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        lengths = rng.integers(3, 9, rows)
        picked = rng.choice(words, (rows, 8)).tolist()
        return pd.DataFrame(
            {
                "price": rng.normal(10, 2, rows),
                "clicks": rng.poisson(3, rows),
                "tag": rng.choice(["sport", "tech"], rows),
                "title": [" ".join(r[:k]) for r, k in zip(picked, lengths.tolist(), strict=True)],
            }
        )

    alarms = sum(
        bool(drift_report(window(2 * s), window(2 * s + 1), text_columns=["title"]).drifted)
        for s in range(runs)
    )
    return alarms / runs


def label_precision_recall(seeds: int = 20, n: int = 2000) -> tuple[float, float, float, float]:
    from mltest.data import find_label_issues

    k = 4
    angles = 2 * np.pi * np.arange(k) / k
    means = 3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    precision, recall, est, true_rate = [], [], [], []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        true = rng.integers(0, k, n)
        x = means[true] + rng.normal(0, 1, (n, 2))
        logits = -0.5 * ((x[:, None, :] - means[None]) ** 2).sum(-1)
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        flipped = rng.random(n) < 0.1
        given = true.copy()
        given[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
        issues = find_label_issues(given, probs)
        found = np.zeros(n, dtype=bool)
        found[issues.rows] = True
        hits = (found & flipped).sum()
        precision.append(hits / max(found.sum(), 1))
        recall.append(hits / flipped.sum())
        est.append(issues.noise_rate)
        true_rate.append(flipped.mean())
    return (
        float(np.mean(precision)),
        float(np.mean(recall)),
        float(np.mean(est)),
        float(np.mean(true_rate)),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)

    frame = make_frame(args.rows)
    message = mltest_validate(frame, 10)  # warm-up: imports, contexts, caches
    gx_direct(frame, 10)
    t_gx: list[float] = []
    t_ml: list[float] = []
    w_gx: list[float] = []
    w_ml: list[float] = []
    for _ in range(args.repeats):
        for fn, cpu, wall in ((gx_direct, t_gx, w_gx), (mltest_validate, t_ml, w_ml)):
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            fn(frame, 10)
            cpu.append(time.process_time() - start_cpu)
            wall.append(time.perf_counter() - start_wall)
    gx_s, ml_s = statistics.median(t_gx), statistics.median(t_ml)
    wall_ratio = statistics.median(w_ml) / statistics.median(w_gx)
    print(f"suite: {len(SUITE)} expectations on {args.rows:,} rows x {frame.shape[1]} columns")
    print(f"  GX direct  median {gx_s:.3f} CPU s  runs {[round(t, 3) for t in t_gx]}")
    print(f"  mltest     median {ml_s:.3f} CPU s  runs {[round(t, 3) for t in t_ml]}")
    print(f"  ratio of CPU medians {ml_s / gx_s:.3f}, of wall-clock medians {wall_ratio:.3f}")
    print(f"  mltest failure headline: {message.splitlines()[0]}")

    from mltest.data import drift_report

    reference, current = drift_windows(args.rows)
    drift_report(reference.head(1000), current.head(1000))  # warm-up: scipy import
    t_drift = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        report = drift_report(reference, current)
        t_drift.append(time.perf_counter() - start)
    drift_s = statistics.median(t_drift)
    print(
        f"drift: {args.rows:,} vs {args.rows:,} rows, 5 columns: median {drift_s:.3f} s "
        f"runs {[round(t, 3) for t in t_drift]}; {report.headline()}"
    )

    alarm = false_alarm_rate()
    print(
        f"drift false-alarm rate on identical windows (200 seeds, alpha 0.05, Holm, "
        f"4 columns incl. text = 5 tests): {alarm:.3f}"
    )
    p, r, est, true_rate = label_precision_recall()
    print(
        f"confident learning (20 seeds, n=2000, 4 classes, 10% flipped): precision {p:.3f} "
        f"recall {r:.3f}; noise rate estimated {est:.3f} vs true {true_rate:.3f}"
    )
    print(
        json.dumps(
            {"gx_overhead_ratio": round(ml_s / gx_s, 3), "drift_seconds_1m": round(drift_s, 3)}
        )
    )


if __name__ == "__main__":
    main()
