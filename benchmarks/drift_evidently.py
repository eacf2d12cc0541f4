"""Drift detection side by side: our ``monitor`` against evidently 0.7, on the same windows.

    nox -s evidently                      # both phases, evidently in its own venv
    python benchmarks/drift_evidently.py prepare --out windows.json    # project venv
    python benchmarks/drift_evidently.py evidently --windows windows.json  # evidently venv

Phase ``prepare`` (the project's venv: torch, the trained model) builds the
windows and runs our monitor on each; phase ``evidently`` (a venv with only
evidently 0.7 and pandas, never a dependency of ours) runs evidently's
``DataDriftPreset`` on the very same windows and prints the comparison.

Windows (``--seeds`` of each, 30 by default; ``--window`` rows each):

* ``unshifted``: rows of the test split drawn without replacement: not drift;
  an alarm here is a false alarm;
* ``one_class``: rows of one class only (the class cycles with the seed; drawn
  with replacement, a class has ~60 test rows): label drift;
* ``titles_only``: test rows with the title as the whole text (a client that
  sends the wrong field): input drift.

Every window holds the texts and the model's predicted tag and confidence.
The reference is the training split (texts, labels) and the model's
confidences on the validation split. A tool *detects* a window when it
reports any drifted column. For evidently: columns ``text`` (text,
domain-classifier drift), ``text_length`` (numeric), ``tag`` (categorical)
against the training split, and ``confidence`` (numeric) against the
validation confidences, each with evidently's default test and threshold.

The last line is one JSON object with each tool's false-alarm rate and its
detection rate per shift.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KINDS = ("unshifted", "one_class", "titles_only")


# ---------------------------------------------------------------------------
# Phase 1: windows and our monitor (project venv)
# ---------------------------------------------------------------------------


def prepare(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from reference_pipeline.data import read_split
    from reference_pipeline.evaluate import model_texts
    from reference_pipeline.monitor import compare_windows, load_reference
    from reference_pipeline.predict import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.load(args.model_dir)
    reference = load_reference(args.data_dir / "train.csv")
    val = read_split(args.data_dir / "val.csv")
    ref_conf = [float(c) for c in predictor.predict_proba(model_texts(val)).max(axis=1)]
    test = read_split(args.data_dir / "test.csv")
    test_texts = model_texts(test)
    classes = sorted(set(test["tag"]))
    windows: list[dict[str, Any]] = []
    ours_seconds = 0.0
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        for kind in KINDS:
            if kind == "unshifted":
                rows = rng.choice(len(test), args.window, replace=False)
                texts = [test_texts[i] for i in rows]
            elif kind == "one_class":
                cls = classes[seed % len(classes)]
                pool = np.flatnonzero(test["tag"].to_numpy() == cls)
                texts = [test_texts[i] for i in rng.choice(pool, args.window, replace=True)]
            else:
                rows = rng.choice(len(test), args.window, replace=False)
                texts = [str(test["title"].iloc[i]) for i in rows]
            proba = predictor.predict_proba(texts)
            tags = [predictor.labels[int(k)] for k in proba.argmax(axis=1)]
            conf = [float(c) for c in proba.max(axis=1)]
            current = pd.DataFrame(
                {
                    "text": texts,
                    "text_chars": [len(t) for t in texts],
                    "tag": tags,
                    "confidence": conf,
                    "time": 0.0,
                }
            )
            t0 = time.perf_counter()
            result = compare_windows(reference, current, reference_confidence=ref_conf)
            ours_seconds += time.perf_counter() - t0
            windows.append(
                {
                    "kind": kind,
                    "seed": seed,
                    "text": texts,
                    "tag": tags,
                    "confidence": conf,
                    "ours": {"drift": bool(result.drifted), "drifted": result.drifted},
                }
            )
        print(f"seed {seed}: windows built and monitored", file=sys.stderr)
    payload = {
        "window": args.window,
        "seeds": args.seeds,
        "reference": {"text": list(reference["text"]), "tag": list(reference["tag"])},
        "reference_confidence": ref_conf,
        "ours_seconds": ours_seconds,
        "windows": windows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload), encoding="utf-8")
    print(f"{len(windows)} windows -> {args.out}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------
# Phase 2: evidently on the same windows (evidently venv), then the comparison
# ---------------------------------------------------------------------------


def _evidently_drifted(snapshot: Any) -> list[str]:
    """Columns evidently marks as drifted, read from the snapshot's metric results."""
    drifted: list[str] = []
    data = snapshot.dict()
    for metric in data.get("metrics", []):
        name = str(metric.get("metric_name", metric.get("metric_id", "")))
        config = metric.get("config", {}) or {}
        column = config.get("column")
        if not name.startswith("ValueDrift") or column is None:
            continue
        value = metric.get("value")
        threshold = config.get("threshold")
        method = str(config.get("method", ""))
        if value is None or threshold is None:
            continue
        # p-value tests drift below the threshold, distances above it.
        is_pvalue = "p_value" in method or "test" in method.lower()
        if (value < threshold) if is_pvalue else (value >= threshold):
            drifted.append(str(column))
    return drifted


def _drifted_count(snapshot: Any) -> tuple[float, float]:
    """evidently's own DriftedColumnsCount: (count, share)."""
    for metric in snapshot.dict().get("metrics", []):
        if str(metric.get("metric_name", "")).startswith("DriftedColumnsCount"):
            value = metric.get("value") or {}
            return float(value.get("count", 0)), float(value.get("share", 0))
    return 0.0, 0.0


def run_evidently(args: argparse.Namespace) -> int:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    payload = json.loads(args.windows.read_text(encoding="utf-8"))
    ref = pd.DataFrame(payload["reference"])
    ref["text_length"] = ref["text"].str.len().astype(float)
    ref_conf = pd.DataFrame({"confidence": payload["reference_confidence"]})
    main_def = DataDefinition(
        text_columns=["text"], numerical_columns=["text_length"], categorical_columns=["tag"]
    )
    conf_def = DataDefinition(numerical_columns=["confidence"])
    ref_main = Dataset.from_pandas(ref, data_definition=main_def)
    ref_c = Dataset.from_pandas(ref_conf, data_definition=conf_def)
    seconds = 0.0
    methods: set[str] = set()
    for i, window in enumerate(payload["windows"]):
        cur = pd.DataFrame({"text": window["text"], "tag": window["tag"]})
        cur["text_length"] = cur["text"].str.len().astype(float)
        t0 = time.perf_counter()
        drifted: list[str] = []
        counted = 0.0
        dataset_drift = False
        for reference, current, definition in (
            (ref_main, cur, main_def),
            (ref_c, pd.DataFrame({"confidence": window["confidence"]}), conf_def),
        ):
            snapshot = Report([DataDriftPreset()]).run(
                current_data=Dataset.from_pandas(current, data_definition=definition),
                reference_data=reference,
            )
            drifted += _evidently_drifted(snapshot)
            count, share = _drifted_count(snapshot)
            counted += count
            # evidently's own dataset verdict: at least half the columns drifted
            dataset_drift = dataset_drift or (definition is main_def and share >= 0.5)
            if i == 0:
                for metric in snapshot.dict().get("metrics", []):
                    cfg = metric.get("config", {}) or {}
                    if cfg.get("column"):
                        methods.add(f"{cfg['column']}: {cfg.get('method')} "
                                    f"(threshold {cfg.get('threshold')})")  # fmt: skip
        seconds += time.perf_counter() - t0
        if bool(counted) != bool(drifted):  # our reading of the columns must match its count
            raise RuntimeError(f"window {i}: evidently counts {counted} drifted, read {drifted}")
        window["evidently"] = {"drift": bool(drifted), "drifted": drifted}
        window["evidently_dataset"] = {"drift": dataset_drift, "drifted": []}
        if i % 15 == 0:
            print(f"evidently: {i + 1}/{len(payload['windows'])} windows", file=sys.stderr)
    return _compare(payload, seconds, sorted(methods))


def _rate(windows: list[dict[str, Any]], tool: str, kind: str) -> float:
    chosen = [w for w in windows if w["kind"] == kind]
    return sum(w[tool]["drift"] for w in chosen) / len(chosen)


def _compare(payload: dict[str, Any], evidently_seconds: float, methods: list[str]) -> int:
    windows = payload["windows"]
    print(f"windows of {payload['window']} rows, {payload['seeds']} seeds per kind; "
          "detected = any column drifted")  # fmt: skip
    print("evidently's tests: " + "; ".join(methods))
    print(f"{'window':<14}{'ours':>10}{'evidently':>12}{'evidently dataset':>20}")
    figures: dict[str, Any] = {}
    for kind in KINDS:
        ours, theirs = _rate(windows, "ours", kind), _rate(windows, "evidently", kind)
        dataset = _rate(windows, "evidently_dataset", kind)
        label = "false alarms" if kind == "unshifted" else "detected"
        print(f"{kind:<14}{ours:>10.1%}{theirs:>12.1%}{dataset:>20.1%}  ({label})")
        figures[kind] = {"ours": ours, "evidently": theirs, "evidently_dataset": dataset}
    print("(evidently: any column drifted, the rule used for ours; evidently dataset: its own "
          "dataset verdict, half the text/length/tag columns drifted)")  # fmt: skip
    for tool in ("ours", "evidently"):
        for shifted in (False, True):
            named: dict[str, int] = {}
            for w in windows:
                if (w["kind"] != "unshifted") == shifted:
                    for column in w[tool]["drifted"]:
                        named[column] = named.get(column, 0) + 1
            where = "shifted" if shifted else "unshifted"
            print(f"{tool}: columns named on {where} windows: {named}")
    n = len(windows)
    print(f"time per window: ours {payload['ours_seconds'] / n * 1000:.0f} ms, "
          f"evidently {evidently_seconds / n * 1000:.0f} ms")  # fmt: skip
    print(
        json.dumps(
            {
                "seeds": payload["seeds"],
                "window": payload["window"],
                "false_alarm": figures["unshifted"],
                "detected_one_class": figures["one_class"],
                "detected_titles_only": figures["titles_only"],
                "ms_per_window": {
                    "ours": round(payload["ours_seconds"] / n * 1000, 1),
                    "evidently": round(evidently_seconds / n * 1000, 1),
                },
            }
        )
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="build the windows and run our monitor (project venv)")
    p.add_argument("--model-dir", type=Path, default=REPO / "artifacts" / "model")
    p.add_argument("--data-dir", type=Path, default=REPO / "artifacts" / "data")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--window", type=int, default=100)
    p.add_argument("--out", type=Path, default=REPO / ".nox" / "drift-windows.json")
    e = sub.add_parser("evidently", help="run evidently on the windows and compare")
    e.add_argument("--windows", type=Path, default=REPO / ".nox" / "drift-windows.json")
    args = parser.parse_args()
    if args.phase == "prepare":
        for need in (args.model_dir / "model.pt", args.data_dir / "test.csv"):
            if not need.is_file():
                print(f"error: {need}: not found; run `python -m reference_pipeline run` first",
                      file=sys.stderr)  # fmt: skip
                return 2
        if args.seeds < 1 or args.window < 10:
            print("error: --seeds must be >= 1 and --window >= 10", file=sys.stderr)
            return 2
        return prepare(args)
    if not args.windows.is_file():
        print(f"error: {args.windows}: not found; run the prepare phase first", file=sys.stderr)
        return 2
    return run_evidently(args)


if __name__ == "__main__":
    sys.exit(main())
