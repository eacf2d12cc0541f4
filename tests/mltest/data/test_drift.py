"""Drift on constructed windows where the right answer is known."""

from __future__ import annotations

import pytest

from mltest.errors import MLCheckFailure, MLUsageError

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("scipy")

from mltest.data import check_drift, drift_report  # noqa: E402
from mltest.data.drift import adjust_pvalues  # noqa: E402

WORDS = np.array(["market", "goal", "vote", "film", "phone", "bank", "team", "law", "star", "app"])


def window(seed: int, n: int = 400, shift: float = 0.0, tag_p: float = 0.5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 9, n)
    words = rng.choice(WORDS, (n, 8))
    titles = [" ".join(row[:k]) for row, k in zip(words.tolist(), lengths.tolist(), strict=True)]
    return pd.DataFrame(
        {
            "price": rng.normal(10.0 + shift, 2.0, n),
            "clicks": rng.poisson(3, n),
            "tag": rng.choice(["sport", "tech"], n, p=[tag_p, 1 - tag_p]),
            "title": titles,
        }
    )


def test_identical_distributions_rarely_alarm() -> None:
    """Family-wise false-alarm rate over 200 seeds at alpha 0.05 (Holm): expected <= 5%."""
    runs = 200
    alarms = sum(
        bool(drift_report(window(2 * s), window(2 * s + 1), text_columns=["title"]).drifted)
        for s in range(runs)
    )
    assert alarms / runs <= 0.10  # 5% nominal; the tolerance absorbs sampling noise


def test_shifted_numeric_column_is_detected_and_reported() -> None:
    with pytest.raises(MLCheckFailure) as info:
        check_drift(window(1), window(2, shift=1.0), columns=["price", "clicks", "tag"])
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "drift in 1 of 3 column tests (alpha 0.05, Holm-corrected): "
        "reference (400 rows) vs current (400 rows)"
    )
    assert lines[2].split() == [
        "column", "test", "statistic", "p-value", "adj.", "p", "effect", "most", "shifted"
    ]  # fmt: skip
    assert lines[3].startswith("*price      ks")
    assert "q50 10.08 -> 11.02" in lines[3]
    assert lines[4].startswith(" clicks     ks")
    assert lines[5].startswith(" tag        chi2")


def test_power_against_a_small_shift() -> None:
    detected = sum(
        bool(drift_report(window(s), window(s + 1000, shift=0.8), columns=["price"]).drifted)
        for s in range(30)
    )
    assert detected >= 27  # a 0.4-SD shift at n=400 per window: KS power is about 0.99


def test_categorical_and_text_shifts() -> None:
    ref = window(3)
    cur = window(4, tag_p=0.2)
    cur["title"] = [t + " crypto crypto" for t in cur["title"]]
    report = drift_report(ref, cur, columns=["tag"], text_columns=["title"])
    got = {c.column: c for c in report.columns}
    assert set(got) == {"tag", "title (length)", "title (tokens)"}
    assert all(c.drifted for c in report.columns)
    assert got["tag"].shifted[0]["value"] in {"sport", "tech"}
    assert got["tag"].shifted[0]["current"] == pytest.approx(
        (cur["tag"] == got["tag"].shifted[0]["value"]).mean()
    )
    assert got["title (tokens)"].shifted[0]["value"] == "crypto"
    assert got["title (tokens)"].shifted[0]["reference"] == 0.0
    chars = drift_report(ref, cur, columns=[], text_columns=["title"], ngram="char3")
    assert [c.column for c in chars.drifted] == ["title (length)", "title (char3s)"]


def test_min_effect_ignores_significant_but_tiny_shifts() -> None:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, 1, 200_000)})
    assert drift_report(ref, cur).drifted
    assert not drift_report(ref, cur, min_effect=0.05).drifted


def test_corrections() -> None:
    ps = [0.01, 0.04, 0.03, 0.5]
    assert adjust_pvalues(ps, "holm") == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert adjust_pvalues(ps, "bh") == pytest.approx([0.04, 0.05333333, 0.05333333, 0.5])
    assert adjust_pvalues(ps, "none") == ps
    rep = drift_report(window(1), window(2, shift=0.4), correction="bh")
    assert rep.correction == "bh"
    assert "Benjamini-Hochberg" in rep.headline()


def test_bad_drift_input_is_one_line() -> None:
    ref = window(1)
    with pytest.raises(MLUsageError, match=r"^drift: column 'cost' is not in the reference window"):
        drift_report(ref, ref.rename(columns={"price": "cost"}), columns=["cost"])
    with pytest.raises(MLUsageError, match=r"^drift: column 'price' is not in the current window"):
        drift_report(ref, ref.rename(columns={"price": "cost"}), columns=["price"])
    with pytest.raises(MLUsageError, match=r"alpha 1.5 is not in \(0, 1\)"):
        drift_report(ref, ref, alpha=1.5)
    with pytest.raises(MLUsageError, match="ngram 'word' is not 'token' or 'charN'"):
        drift_report(ref, ref, ngram="word")
    with pytest.raises(MLUsageError, match="correction 'fdr' is not one of"):
        drift_report(ref, ref, correction="fdr")  # type: ignore[arg-type]
    empty = ref.assign(price=np.nan)
    with pytest.raises(MLUsageError, match="column 'price' has no non-missing values"):
        drift_report(ref, empty, columns=["price"])
