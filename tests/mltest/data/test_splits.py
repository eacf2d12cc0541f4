"""Split checks: leakage (exact and normalised), stratification, coverage, unseen categories."""

from __future__ import annotations

import pytest

from mltest.errors import MLCheckFailure, MLUsageError

pd = pytest.importorskip("pandas")

from mltest.data import (  # noqa: E402
    check_label_coverage,
    check_no_leakage,
    check_splits,
    check_stratification,
    check_unseen_categories,
)
from mltest.data.splits import normalize_text  # noqa: E402


@pytest.fixture
def splits() -> dict[str, pd.DataFrame]:
    train = pd.DataFrame(
        {
            "title": ["Stocks fall", "Cats win cup", "Rain today", "Oil up", "Vote delayed"],
            "tag": ["biz", "sport", "weather", "biz", "politics"],
            "source": ["wire", "web", "wire", "wire", "web"],
        }
    )
    val = pd.DataFrame(
        {
            "title": ["Bank merger", "Cup final", "Snow soon", "Tax plan"],
            "tag": ["biz", "sport", "weather", "politics"],
            "source": ["web", "wire", "web", "wire"],
        }
    )
    test = pd.DataFrame(
        {
            "title": ["  stocks FALL!", "Cats win cup", "Heat wave", "New vote", "Gold up"],
            "tag": ["biz", "sport", "weather", "politics", "biz"],
            "source": ["wire", "blog", "wire", "web", "podcast"],
        },
        index=[100, 101, 102, 103, 104],
    )
    return {"train": train, "val": val, "test": test}


def test_leakage_shows_exact_and_normalised_duplicates(splits: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(MLCheckFailure) as info:
        check_no_leakage(splits, "title")
    assert str(info.value) == (
        "2 rows leak between splits on ['title']\n"
        "\n"
        "splits          match       leaked rows\n"
        "train/test      exact       1\n"
        "train/test      normalised  1\n"
        "\n"
        "splits          rows            match       value\n"
        "train/test      1 / 101         exact       'Cats win cup'\n"
        "train/test      0 / 100         normalised  '  stocks FALL!'  ~ 'Stocks fall'\n"
        "\n"
        "Drop the leaked rows from the later split, or deduplicate (on the normalised text) "
        "before splitting."
    )


def test_exact_only_misses_near_duplicates_and_clean_splits_pass(
    splits: dict[str, pd.DataFrame],
) -> None:
    with pytest.raises(MLCheckFailure, match=r"^1 row leaks between splits"):
        check_no_leakage(splits, ["title"], normalized=False)
    clean = {k: v for k, v in splits.items() if k != "test"}
    check_no_leakage(clean, ["title", "source"])


def test_normalize_text() -> None:
    got = normalize_text(pd.Series(["Ｓtocks\tFALL!!", "stocks fall", None, "Café—au lait"]))
    assert got.tolist()[:2] == ["stocks fall", "stocks fall"]
    assert got.isna().tolist() == [False, False, True, False]
    assert got.tolist()[3] == "café au lait"


def test_stratification_within_and_beyond_tolerance(splits: dict[str, pd.DataFrame]) -> None:
    check_stratification(splits, "tag", tolerance=0.2)
    with pytest.raises(MLCheckFailure) as info:
        check_stratification(splits, "tag", tolerance=0.05)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("label shares of ")
    assert lines[2] == "class                 overall     train       val      test"
    assert lines[3] == "'biz'                   35.7%    40.0%     25.0%*    40.0% "


def test_label_coverage(splits: dict[str, pd.DataFrame]) -> None:
    check_label_coverage(splits, "tag")
    short = dict(splits, val=splits["val"].iloc[:2])
    with pytest.raises(MLCheckFailure) as info:
        check_label_coverage(short, "tag")
    assert str(info.value) == (
        "2 labels missing from splits: 'politics' not in val, 'weather' not in val\n"
        "\n"
        "split       missing label\n"
        "val         'politics'\n"
        "val         'weather'\n"
        "\n"
        "Split with stratification, or merge/drop classes too rare to reach every split."
    )


def test_unseen_categories(splits: dict[str, pd.DataFrame]) -> None:
    check_unseen_categories(splits["train"], splits["val"], "source")
    with pytest.raises(MLCheckFailure) as info:
        check_unseen_categories(splits["train"], splits["test"], ["source", "tag"])
    assert str(info.value) == (
        "2 categories in test never seen in train (2 rows)\n"
        "\n"
        "column          value                     rows  e.g. rows\n"
        "source          'blog'                       1  101\n"
        "source          'podcast'                    1  104\n"
        "\n"
        "Add examples of these categories to train, or map them to a known one."
    )


def test_check_splits_combines_failures(splits: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(MLCheckFailure) as info:
        check_splits(
            splits, label="tag", leakage_columns="title", category_columns="source", tolerance=0.2
        )
    text = str(info.value)
    assert text.startswith("2 of 5 split checks failed\n\n2 rows leak between splits")
    assert "2 categories in test never seen in train" in text
    assert "1 categories in val never seen in train" not in text
    assert "'blog'" in text


def test_bad_split_input_is_one_line(splits: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(MLUsageError, match=r"^check_no_leakage: column 'text' is not in split"):
        check_no_leakage(splits, "text")
    with pytest.raises(MLUsageError, match="split 'val' is a list, not a DataFrame"):
        check_label_coverage({"train": splits["train"], "val": []}, "tag")
    with pytest.raises(MLUsageError, match="give label, leakage_columns or category_columns"):
        check_splits(splits)
