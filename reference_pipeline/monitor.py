r"""Drift monitoring: compare a window of served traffic with the training data.

``python -m reference_pipeline monitor --log artifacts/predictions --reference train.csv``
reads the served window (the prediction log, or ``--current`` a CSV) and runs
four two-sample tests through :func:`mltest.data.drift_report`:

* ``text (length)``: KS on the characters per text;
* ``text (tokens)``: chi-squared on word frequencies (the vocabulary);
* ``tag``: the predicted-label distribution against the training labels;
* ``confidence``: KS on the model's confidence against its confidences on the
  validation split (stored with the model by ``package``; ``--reference-confidence``).

The p-values are Holm-corrected together; a test counts as drift when its
adjusted p-value is under ``alpha`` *and* its effect (KS statistic, or total
variation distance) reaches the test's minimum effect. The minimum effects
were chosen with ``benchmarks/drift_evidently.py`` so that windows of test
traffic rarely alarm (see docs/serving.md for the measured rates): with
hundreds of texts, word counts differ significantly between any two samples
of news, so significance alone would alarm on every window.

Exit status: 1 drift, 0 none, 2 bad input (a missing file, an empty window).

Example:
    $ python -m reference_pipeline monitor --log artifacts/predictions \\
        --reference artifacts/data/train.csv --last 500
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MIN_EFFECT",
    "MonitorError",
    "MonitorResult",
    "compare_windows",
    "load_current",
    "load_reference",
    "parse_duration",
]

#: Smallest effect that counts as drift, per test (KS statistic or total
#: variation distance). Measured on 30+ seeds of test-split windows of 200
#: texts against the training split (benchmarks/drift_evidently.py).
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "text (length)": 0.15,
    "text (tokens)": 0.03,
    "tag": 0.15,
    "confidence": 0.15,
}
DEFAULT_ALPHA = 0.01

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


class MonitorError(ValueError):
    """Bad monitor input; the message is the one line the user reads (exit 2).

    Example:
        >>> raise MonitorError("--log 'x': no such file or folder")
        Traceback (most recent call last):
        ...
        reference_pipeline.monitor.MonitorError: --log 'x': no such file or folder
    """


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"30s"``, ``"15m"``, ``"2h"`` or ``"1d"``.

    Example:
        >>> parse_duration("15m")
        900.0
    """
    match = _DURATION.match(text)
    if not match:
        raise MonitorError(f"--since {text!r}: expected a duration like 30s, 15m, 2h or 1d")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def load_reference(path: str | Path) -> Any:
    """The training window: a CSV with ``text`` or ``title``/``description``, and ``tag``.

    Example:
        >>> load_reference("artifacts/data/train.csv").columns.tolist()  # doctest: +SKIP
        ['text', 'tag']
    """
    import pandas as pd

    from reference_pipeline.evaluate import model_texts

    file = Path(path)
    if not file.is_file():
        raise MonitorError(f"--reference {str(file)!r}: file not found")
    try:
        df = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MonitorError(f"--reference {str(file)!r}: not a readable CSV ({exc})") from None
    if "tag" not in df.columns or not ({"text"} <= set(df.columns) or {"title"} <= set(df.columns)):
        raise MonitorError(
            f"--reference {str(file)!r}: needs a tag column and text or title/description"
        )
    if df.empty:
        raise MonitorError(f"--reference {str(file)!r}: no rows")
    return pd.DataFrame({"text": model_texts(df), "tag": df["tag"].astype(str)})


def load_current(
    *,
    log: str | Path | None = None,
    current: str | Path | None = None,
    last: int | None = None,
    since: float | None = None,
    now: float | None = None,
) -> Any:
    """The served window: the prediction log (or a CSV), cut to the last rows or seconds.

    A CSV needs ``text`` or ``title``/``description``; ``tag`` and
    ``confidence`` columns (the predictions) are optional, and the tests
    that need them are skipped without them.

    Example:
        >>> load_current(log="artifacts/predictions", last=500)  # doctest: +SKIP
    """
    import pandas as pd

    if (log is None) == (current is None):
        raise MonitorError("give exactly one of --log PATH or --current CSV")
    if last is not None and last < 1:
        raise MonitorError(f"--last {last}: must be at least 1")
    if log is not None:
        from reference_pipeline.predlog import read_log

        try:
            rows = read_log(log)
        except FileNotFoundError:
            raise MonitorError(f"--log {str(log)!r}: no such file or folder") from None
        df = pd.DataFrame(rows)
        if df.empty:
            raise MonitorError(f"--log {str(log)!r}: the prediction log has no rows")
        for column in ("time", "text", "text_chars", "tag", "confidence"):
            if column not in df.columns:
                df[column] = None
        df = df.sort_values("time", kind="stable")
    else:
        from reference_pipeline.evaluate import model_texts

        file = Path(str(current))
        if not file.is_file():
            raise MonitorError(f"--current {str(file)!r}: file not found")
        try:
            raw = pd.read_csv(file, dtype=str, keep_default_na=False)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MonitorError(f"--current {str(file)!r}: not a readable CSV ({exc})") from None
        if not ({"text"} <= set(raw.columns) or {"title"} <= set(raw.columns)):
            raise MonitorError(f"--current {str(file)!r}: needs a text or title column")
        texts = model_texts(raw) if len(raw) else []
        df = pd.DataFrame(
            {
                "time": pd.to_numeric(raw["time"], errors="coerce") if "time" in raw else None,
                "text": texts,
                "text_chars": [len(t) for t in texts],
                "tag": raw.get("tag", None),
                "confidence": (
                    pd.to_numeric(raw["confidence"], errors="coerce")
                    if "confidence" in raw
                    else None
                ),
            }
        )
    if since is not None:
        if since <= 0:
            raise MonitorError(f"--since: must be positive, got {since:g} s")
        cutoff = (time.time() if now is None else now) - since
        times = pd.to_numeric(df["time"], errors="coerce")
        df = df[times >= cutoff]
    if last is not None:
        df = df.tail(last)
    if df.empty:
        raise MonitorError("the current window is empty (check --last / --since)")
    return df.reset_index(drop=True)


@dataclass
class MonitorResult:
    """The tests run on one window.

    Attributes:
        report: The :class:`mltest.data.DriftReport` (Holm over every test).
        min_effect: The minimum effect each test needed.
        skipped: Tests not run, with the reason.
        window: Rows and time span of the current window.

    Example:
        >>> result = compare_windows(ref, cur)  # doctest: +SKIP
        >>> result.drifted  # doctest: +SKIP
        ['tag']
    """

    report: Any
    min_effect: dict[str, float]
    skipped: dict[str, str] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)

    @property
    def drifted(self) -> list[str]:
        """The names of the tests that found drift.

        Example:
            >>> compare_windows(ref, cur).drifted  # doctest: +SKIP
            []
        """
        return [c.column for c in self.report.columns if c.drifted]

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data (what ``--out`` writes).

        Example:
            >>> compare_windows(ref, cur).to_json()["drift"]  # doctest: +SKIP
            False
        """
        return {
            "drift": bool(self.drifted),
            "drifted": self.drifted,
            "headline": self.report.headline(),
            "alpha": self.report.alpha,
            "window": self.window,
            "skipped": self.skipped,
            "tests": [
                {
                    "test": c.column,
                    "kind": c.test,
                    "statistic": c.statistic,
                    "p_value": c.p_value,
                    "p_adjusted": c.p_adjusted,
                    "effect": c.effect,
                    "min_effect": self.min_effect.get(c.column, 0.0),
                    "drifted": c.drifted,
                    "shifted": c.shifted[:5],
                }
                for c in self.report.columns
            ],
        }


def compare_windows(
    reference: Any,
    current: Any,
    *,
    reference_confidence: Sequence[float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_effect: Mapping[str, float] | None = None,
) -> MonitorResult:
    """Run the four drift tests of the current window against the reference.

    Args:
        reference: ``load_reference`` frame (``text``, ``tag``).
        current: ``load_current`` frame (``text``, ``text_chars``, ``tag``, ``confidence``).
        reference_confidence: The model's confidences on held-out data.
        alpha: Significance level after Holm's correction over all tests.
        min_effect: Per-test minimum effects (default :data:`DEFAULT_MIN_EFFECT`).

    Example:
        >>> compare_windows(load_reference("train.csv"),
        ...                 load_current(log="artifacts/predictions")).drifted  # doctest: +SKIP
        []
    """
    import pandas as pd

    from mltest.data import drift_report
    from mltest.data.drift import DriftReport, adjust_pvalues

    effects = {**DEFAULT_MIN_EFFECT, **(min_effect or {})}
    tests = []
    skipped: dict[str, str] = {}
    texts = current["text"]
    has_text = texts.notna() & texts.map(lambda t: isinstance(t, str))
    if has_text.all():
        report = drift_report(
            reference[["text"]],
            current[["text"]].astype({"text": str}),
            text_columns=["text"],
            correction="none",
        )
        tests.extend(report.columns)
    else:
        lengths = pd.to_numeric(current["text_chars"], errors="coerce").dropna()
        if lengths.empty:
            raise MonitorError("the current window has neither texts nor text lengths")
        report = drift_report(
            pd.DataFrame({"text (length)": reference["text"].str.len()}),
            pd.DataFrame({"text (length)": lengths.astype(float)}),
            correction="none",
        )
        tests.extend(report.columns)
        skipped["text (tokens)"] = "the log holds hashes only (RP_LOG_TEXT=0): no vocabulary"
    tags = current["tag"].dropna()
    if len(tags):
        report = drift_report(
            reference[["tag"]], pd.DataFrame({"tag": tags.astype(str)}), correction="none"
        )
        tests.extend(report.columns)
    else:
        skipped["tag"] = "the current window has no predicted tags"
    confidence = pd.to_numeric(current["confidence"], errors="coerce").dropna()
    if reference_confidence is None or not len(reference_confidence):
        skipped["confidence"] = "no reference confidences (package the model with --data-dir)"
    elif confidence.empty:
        skipped["confidence"] = "the current window has no confidences"
    else:
        report = drift_report(
            pd.DataFrame({"confidence": [float(c) for c in reference_confidence]}),
            pd.DataFrame({"confidence": confidence.astype(float)}),
            correction="none",
        )
        tests.extend(report.columns)
    for test, adjusted in zip(
        tests, adjust_pvalues([t.p_value for t in tests], "holm"), strict=True
    ):
        test.p_adjusted = adjusted
        test.drifted = adjusted < alpha and test.effect >= effects.get(test.column, 0.0)
    times = pd.to_numeric(current["time"], errors="coerce").dropna()
    window = {
        "rows": len(current),
        "reference_rows": len(reference),
        "start": float(times.min()) if len(times) else None,
        "end": float(times.max()) if len(times) else None,
    }
    combined = DriftReport(tests, alpha, "holm", len(reference), len(current))
    return MonitorResult(combined, effects, skipped, window)


def format_result(result: MonitorResult) -> str:
    """The table the CLI prints: every test, drifted ones starred, then skipped tests.

    Example:
        >>> print(format_result(compare_windows(ref, cur)))  # doctest: +SKIP
    """
    lines = [result.report.headline(), "", result.report.table()]
    lines.append("")
    lines.append(
        "min effect: "
        + ", ".join(
            f"{c.column} {result.min_effect.get(c.column, 0.0):g}" for c in result.report.columns
        )
    )
    for name, why in result.skipped.items():
        lines.append(f"skipped {name}: {why}")
    verdict = "DRIFT: " + ", ".join(result.drifted) if result.drifted else "no drift"
    lines.append(verdict)
    return "\n".join(lines)


def read_reference_confidence(path: str | Path) -> list[float]:
    """Confidences from a JSON list (``reference_confidence.json`` of a packaged model).

    Example:
        >>> read_reference_confidence("reference_confidence.json")[:2]  # doctest: +SKIP
        [0.93, 0.88]
    """
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError:
        raise MonitorError(f"--reference-confidence {str(file)!r}: file not found") from None
    except ValueError as exc:
        raise MonitorError(f"--reference-confidence {str(file)!r}: not JSON ({exc})") from None
    if not isinstance(data, list) or not all(isinstance(x, int | float) for x in data):
        raise MonitorError(f"--reference-confidence {str(file)!r}: expected a JSON list of numbers")
    return [float(x) for x in data]


def stored_reference_confidence(model_version: str) -> list[float] | None:
    """The confidences stored with a packaged model in the BentoML store, if it is there.

    Example:
        >>> stored_reference_confidence("reference-classifier:latest")  # doctest: +SKIP
    """
    try:
        import bentoml

        stored = bentoml.models.get(model_version)
    except Exception:
        return None
    from reference_pipeline.service import REFERENCE_CONFIDENCE

    file = Path(stored.path) / REFERENCE_CONFIDENCE
    return read_reference_confidence(file) if file.is_file() else None


def run(
    *,
    reference: str | Path,
    log: str | Path | None = None,
    current: str | Path | None = None,
    last: int | None = None,
    since: str | None = None,
    reference_confidence: str | Path | None = None,
    alpha: float = DEFAULT_ALPHA,
    out: str | Path | None = None,
) -> tuple[int, str]:
    """The ``monitor`` command: returns the exit status and the text to print.

    Raises:
        MonitorError: Bad input (the CLI prints it and exits 2).

    Example:
        >>> status, text = run(reference="train.csv", log="artifacts/predictions")  # doctest: +SKIP
    """
    if not 0 < alpha < 1:
        raise MonitorError(f"--alpha {alpha}: must be in (0, 1)")
    ref = load_reference(reference)
    cur = load_current(
        log=log,
        current=current,
        last=last,
        since=None if since is None else parse_duration(since),
    )
    confidences: list[float] | None = None
    if reference_confidence is not None:
        confidences = read_reference_confidence(reference_confidence)
    elif log is not None and "model_version" in cur.columns:
        versions = cur["model_version"].dropna().unique().tolist()
        if len(versions) == 1:
            confidences = stored_reference_confidence(str(versions[0]))
    result = compare_windows(ref, cur, reference_confidence=confidences, alpha=alpha)
    text = format_result(result)
    if out is not None:
        from reference_pipeline.evaluate import write_json_atomic

        write_json_atomic(result.to_json(), out)
        text += f"\nreport: {out}"
    return (1 if result.drifted else 0), text
