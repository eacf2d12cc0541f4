"""Unit tests of loading, cleaning, splitting and encoding (reference_pipeline.data)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mltest.data import check_no_leakage, check_stratification
from reference_pipeline.config import Params
from reference_pipeline.data import (
    BBC_SOURCE,
    DataError,
    LabelEncoder,
    clean,
    clean_text,
    data_hash,
    load_dataset,
    prepare,
    read_split,
    split,
    subsample,
)


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["title", "description", "tag"])


def write_csv(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


# --- loading -----------------------------------------------------------------


def test_bbc_news_loads_all_articles_with_sorted_folders(bbc_raw):
    assert len(bbc_raw) == 2225
    assert list(bbc_raw.columns) == ["title", "description", "tag"]
    counts = bbc_raw["tag"].value_counts().to_dict()
    assert counts == {
        "sports": 511,
        "business": 510,
        "politics": 417,
        "tech": 401,
        "entertainment": 386,
    }
    # Folders sorted, files sorted: the first row is business/001.txt.
    assert bbc_raw.iloc[0]["title"] == "Ad sales boost Time Warner profit"
    assert bbc_raw.iloc[0]["description"].startswith("Quarterly profits at US media giant")
    assert bbc_raw["tag"].is_monotonic_increasing
    assert bbc_raw.attrs["source"] == BBC_SOURCE


def test_bbc_article_in_windows_1252_is_decoded(bbc_raw):
    # sports/199.txt holds a bare 0xa3 byte: the pound sign in cp1252.
    assert bbc_raw["description"].str.contains("£15.8m signing").any()


def test_csv_with_extra_columns_loads_the_three_columns(tmp_path):
    path = write_csv(tmp_path / "d.csv", "id,title,description,tag\n1,A,b,x\n2,C,,y\n")
    df = load_dataset(path)
    assert df.to_dict("records") == [
        {"title": "A", "description": "b", "tag": "x"},
        {"title": "C", "description": "", "tag": "y"},
    ]
    assert df.attrs["source"] == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("title,description\nA,b\n", "{path}: missing column 'tag' (found: title, description)"),
        ("", "{path}: file is empty; expected a header row title,description,tag"),
        ("  \n", "{path}: file is empty; expected a header row title,description,tag"),
        ("title,description,tag\n", "{path}: file has a header but no rows"),
        (
            b"title,description,tag\nA,\xa3 5,x\n",
            "{path}: not UTF-8 text (byte 0xa3 on line 2); re-save the file as UTF-8",
        ),
    ],
    ids=["missing-column", "empty", "blank", "header-only", "not-utf8"],
)
def test_bad_csv_gets_one_line_error_naming_the_file(tmp_path, content, message):
    path = write_csv(tmp_path / "bad.csv", content)
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert str(info.value) == message.format(path=path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: data file not found$"):
        load_dataset(tmp_path / "nope.csv")


# --- cleaning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "lowercase", "expected"),
    [
        ("Read https://bbc.co.uk/news now", True, "read now"),
        ("see www.example.com/a?b=1.", True, "see"),
        ("<p>Hello <b>World</b></p>", False, "Hello World"),
        ("Tom &amp; Jerry &lt;3", False, "Tom & Jerry <3"),
        ("  many \n\t spaces  ", True, "many spaces"),
        ("MiXeD Case", True, "mixed case"),
        ("MiXeD Case", False, "MiXeD Case"),
        ("", True, ""),
    ],
)
def test_clean_text(raw, lowercase, expected):
    assert clean_text(raw, lowercase=lowercase) == expected


def test_clean_adds_text_and_drops_exact_duplicates():
    df = frame([("A", "one", "x"), ("a", "ONE", "x"), ("A", "one", "y"), ("B", "two", "x")])
    out = clean(df, lowercase=True)
    assert out[["text", "tag"]].to_dict("records") == [
        {"text": "a one", "tag": "x"},
        {"text": "a one", "tag": "y"},
        {"text": "b two", "tag": "x"},
    ]
    # The first of the duplicates is kept, with its original index.
    assert list(out.index) == [0, 2, 3]


def test_clean_keeps_case_when_asked():
    out = clean(frame([("Apple", "Shares", "x")]), lowercase=False)
    assert out["text"].tolist() == ["Apple Shares"]


def test_empty_text_names_the_row_and_line(tmp_path):
    path = write_csv(tmp_path / "d.csv", "title,description,tag\nA,b,x\n<br>, ,y\n")
    with pytest.raises(DataError) as info:
        clean(load_dataset(path))
    assert str(info.value) == (
        f"{path}: row 1 (line 3) has empty text: title and description are blank after "
        "cleaning (1 such rows)"
    )


def test_empty_tag_names_the_row(tmp_path):
    path = write_csv(tmp_path / "d.csv", "title,description,tag\nA,b,x\nC,d,\n")
    with pytest.raises(DataError, match=r"d\.csv: row 1 \(line 3\) has an empty tag$"):
        clean(load_dataset(path))


def test_repeated_titles_are_dropped_on_request():
    df = frame([("Same", "first text", "x"), ("same", "edited text", "x"), ("Other", "t", "y")])
    assert len(clean(df)) == 3
    out = clean(df, dedupe_titles=True)
    assert out[["title", "description"]].to_dict("records") == [
        {"title": "same", "description": "first text"},
        {"title": "other", "description": "t"},
    ]


def test_bbc_without_repeated_titles_has_no_title_leakage(bbc_raw):
    df = clean(bbc_raw, dedupe_titles=True)
    assert len(df) == 2095  # 29 re-published stories fewer than exact de-duplication
    s = split(df, val_size=0.15, test_size=0.15, seed=42)
    check_no_leakage({"train": s.train, "val": s.val, "test": s.test}, ["title"])


def test_bbc_duplicates_are_dropped(bbc_raw):
    out = clean(bbc_raw)
    assert len(out) == 2124  # the corpus repeats 101 articles verbatim
    assert not out.duplicated(subset=["text", "tag"]).any()


# --- splitting ---------------------------------------------------------------


def labelled(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{tag} {i}", "", tag) for tag, n in counts.items() for i in range(n)]
    return clean(frame(rows))


def test_split_sizes_and_partition():
    df = labelled({"a": 100, "b": 60, "c": 20})
    s = split(df, val_size=0.2, test_size=0.1, seed=1)
    indices = [set(part.index) for part in (s.train, s.val, s.test)]
    assert set().union(*indices) == set(df.index)
    assert sum(len(i) for i in indices) == len(df)
    assert (len(s.train), len(s.val), len(s.test)) == (126, 36, 18)


def test_split_is_stratified(bbc_raw):
    s = split(clean(bbc_raw), val_size=0.15, test_size=0.15, seed=42)
    check_stratification({"train": s.train, "val": s.val, "test": s.test}, "tag", tolerance=0.01)


def test_split_is_stable_for_a_seed_and_changes_with_it():
    df = labelled({"a": 50, "b": 50})
    first = split(df, val_size=0.2, test_size=0.2, seed=7)
    again = split(df, val_size=0.2, test_size=0.2, seed=7)
    other = split(df, val_size=0.2, test_size=0.2, seed=8)
    assert list(first.test.index) == list(again.test.index)
    assert list(first.val.index) == list(again.val.index)
    assert list(first.test.index) != list(other.test.index)


def test_split_keeps_every_label_in_every_split():
    s = split(labelled({"a": 3, "b": 40}), val_size=0.1, test_size=0.1, seed=0)
    for part in (s.train, s.val, s.test):
        assert set(part["tag"]) == {"a", "b"}


def test_label_with_too_few_rows_is_named():
    with pytest.raises(DataError) as info:
        split(labelled({"a": 30, "rare": 2}), val_size=0.1, test_size=0.1, seed=0)
    assert str(info.value) == (
        "data: label 'rare' has 2 rows, too few to split (need at least 3); "
        "add rows or drop the label"
    )


def test_min_rows_per_label_is_enforced():
    with pytest.raises(
        DataError, match="label 'b' has 5 rows, too few to split \\(need at least 6"
    ):
        split(labelled({"a": 10, "b": 5}), min_rows_per_label=6)


@pytest.mark.parametrize(("val", "test"), [(0.6, 0.5), (-0.1, 0.2), (1.0, 0.0)])
def test_bad_split_sizes_are_rejected(val, test):
    with pytest.raises(DataError, match="each must be in \\[0, 1\\) and their sum below 1"):
        split(labelled({"a": 10}), val_size=val, test_size=test)


def test_subsample_caps_rows_per_label():
    out = subsample(labelled({"a": 10, "b": 3}), 4, seed=0)
    assert out["tag"].value_counts().to_dict() == {"a": 4, "b": 3}
    assert out.index.is_monotonic_increasing


# --- labels --------------------------------------------------------------------


def test_label_encoder_round_trip(tmp_path):
    enc = LabelEncoder().fit(["tech", "sports", "business", "tech"])
    assert enc.classes == ["business", "sports", "tech"]
    ids = enc.encode(["tech", "business"])
    assert ids.tolist() == [2, 0]
    assert enc.decode(ids) == ["tech", "business"]
    assert LabelEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))).classes == enc.classes
    enc.save(tmp_path / "enc.json")
    assert LabelEncoder.load(tmp_path / "enc.json").classes == enc.classes


def test_label_encoder_rejects_unknown_tags_and_ids():
    enc = LabelEncoder(["a", "b"])
    with pytest.raises(DataError, match=r"^label encoder: unknown tag 'c' \(known: a, b\)$"):
        enc.encode(["c"])
    with pytest.raises(DataError, match=r"^label encoder: class id 2 out of range 0\.\.1$"):
        enc.decode([2])
    with pytest.raises(DataError, match="expected"):
        LabelEncoder.from_dict({"classes": "ab"})


# --- files ---------------------------------------------------------------------


def test_data_hash_follows_content_not_index():
    df = pd.DataFrame({"text": ["a", "b"], "tag": ["x", "y"]})
    assert data_hash(df) == data_hash(df.set_axis([5, 6]))
    assert data_hash(df) != data_hash(df.assign(tag=["x", "x"]))
    assert len(data_hash(df)) == 64


def test_prepare_writes_the_three_splits(tmp_path):
    params = Params.from_dict(
        {"data": {"max_rows_per_label": 20, "val_size": 0.2, "test_size": 0.2}}
    )
    summary = prepare(params, tmp_path / "prepared")
    assert summary["rows"] == {"train": 60, "val": 20, "test": 20}
    assert summary["source"] == BBC_SOURCE
    for name in ("train", "val", "test"):
        part = read_split(tmp_path / "prepared" / f"{name}.csv")
        assert list(part.columns) == ["title", "description", "tag", "text"]
        assert len(part) == summary["rows"][name]
        assert data_hash(part) == summary["hashes"][name]
    assert not list((tmp_path / "prepared").glob(".*.tmp"))


def test_read_split_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"train\.csv: split file not found; run the prepare stage"):
        read_split(tmp_path / "train.csv")


def test_malformed_csv_is_named(tmp_path):
    path = write_csv(tmp_path / "d.csv", 'title,description,tag\nA,"unclosed,x\n')
    with pytest.raises(DataError, match=r"d\.csv: not a valid CSV: "):
        load_dataset(path)
