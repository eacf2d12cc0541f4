"""Perturbations of text: pure Python, seeded, no downloads.

A perturber is a callable object: ``Typos(n=1)(text, rng)`` returns a
:class:`Perturbation` holding the original, the new text and the list of
:class:`Edit` objects that turn one into the other, so a failing test can
show the diff. When nothing applies (no name to swap, no letter to mistype)
the result has no edits and ``changed`` is False: tests report such a case as
"not perturbed", never as a pass.

Guarantees every perturber keeps (checked by hypothesis properties):

- it never raises on any ``str`` input;
- the same text and seed give the same result;
- ``apply_edits(original, edits) == text``, edits are sorted and do not
  overlap, and ``changed`` is True exactly when the text differs;
- plus the bound each class documents (length change, what may change).

Example:
    >>> p = Typos(n=1, kinds=("swap",))("football", rng=3)
    >>> p.changed, len(p.text) == len("football"), len(p.edits)
    (True, True, 1)
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from mltest.behavioral.lexicons import load_lexicon
from mltest.errors import MLUsageError

__all__ = [
    "CONTRACTIONS",
    "PERTURBATIONS",
    "AddHashtag",
    "AddSentence",
    "AddText",
    "AddUrl",
    "Case",
    "Contractions",
    "Edit",
    "LexiconSwap",
    "NumberSwap",
    "Perturbation",
    "Perturber",
    "Punctuation",
    "Synonyms",
    "Typos",
    "Whitespace",
    "apply_edits",
    "make_perturbation",
]


class Edit(NamedTuple):
    """One change: ``before`` at offset ``start`` of the original became ``after``.

    A named tuple: immutable, hashable and cheap to build (perturbations run
    once per case, so their cost counts).

    Example:
        >>> Edit(0, "teh", "the", "swap").end
        3
    """

    start: int
    before: str
    after: str
    kind: str = ""

    @property
    def end(self) -> int:
        """Offset just past ``before`` in the original text."""
        return self.start + len(self.before)

    def describe(self) -> str:
        """A short human form, e.g. ``'ab'->'ba'``.

        Example:
            >>> Edit(3, "ab", "ba").describe()
            "'ab'->'ba'"
        """
        return f"{self.before!r}->{self.after!r}"


@dataclass(slots=True)
class Perturbation:
    """What a perturber did to one text (treat it as read-only).

    Attributes:
        original: The input text.
        text: The perturbed text (equal to ``original`` when nothing applied).
        edits: The changes, sorted by offset, non-overlapping; empty when
            nothing applied.
        name: The perturber that made it (``"typos"``).

    Example:
        >>> p = Perturbation.from_pair("I like it", "I love it")
        >>> p.changed, p.edits[0].describe()
        (True, "'ik'->'ov'")
    """

    original: str
    text: str
    edits: tuple[Edit, ...] = ()
    name: str = ""

    @property
    def changed(self) -> bool:
        """Whether the perturbation applied (there is at least one edit)."""
        return bool(self.edits)

    def describe(self, limit: int = 60) -> str:
        """The edits as one short line, ``"not perturbed"`` when there are none.

        Example:
            >>> Perturbation("abc", "abc").describe()
            'not perturbed'
        """
        if not self.edits:
            return "not perturbed"
        text = "; ".join(e.describe() for e in self.edits)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    @classmethod
    def from_pair(cls, original: str, perturbed: str, name: str = "given") -> Perturbation:
        """Describe a ready-made pair by its one differing span (common prefix/suffix cut).

        Example:
            >>> Perturbation.from_pair("a b", "a b").changed
            False
        """
        if original == perturbed:
            return cls(original, perturbed, (), name)
        n = min(len(original), len(perturbed))
        i = 0
        while i < n and original[i] == perturbed[i]:
            i += 1
        j = 0
        while j < n - i and original[-1 - j] == perturbed[-1 - j]:
            j += 1
        edit = Edit(i, original[i : len(original) - j], perturbed[i : len(perturbed) - j], "pair")
        return cls(original, perturbed, (edit,), name)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """Apply sorted, non-overlapping edits to ``text``.

    Raises:
        MLUsageError: When an edit does not match the text or edits overlap.

    Example:
        >>> apply_edits("teh cat", [Edit(0, "teh", "the")])
        'the cat'
    """
    out: list[str] = []
    pos = 0
    for e in edits:
        if e.start < pos or text[e.start : e.end] != e.before:
            raise MLUsageError(f"edit {e} does not apply to {text!r} at offset {pos}")
        out.append(text[pos : e.start])
        out.append(e.after)
        pos = e.end
    out.append(text[pos:])
    return "".join(out)


def _result(text: str, edits: list[Edit], name: str) -> Perturbation:
    """Build a result from edits given in any order (sorted here)."""
    if not edits:
        return Perturbation(text, text, (), name)
    edits.sort(key=lambda e: (e.start, len(e.before)))
    new = apply_edits(text, edits)
    if new == text:  # e.g. edits that cancel out: report honestly
        return Perturbation(text, text, (), name)
    return Perturbation(text, new, tuple(edits), name)


def _rng(rng: random.Random | int | None) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    return random.Random(0 if rng is None else rng)


class Perturber:
    """Base class: a named, configured perturbation.

    Subclasses implement :meth:`apply`; calling the object seeds a
    ``random.Random`` from an int (or takes one) and delegates.

    Example:
        >>> Case("upper")("ok", rng=0).text
        'OK'
    """

    name: str = "perturbation"

    def __call__(self, text: str, rng: random.Random | int | None = None) -> Perturbation:
        """Perturb ``text``; ``rng`` is a seed or a ``random.Random`` (default seed 0)."""
        return self.apply(text, _rng(rng))

    def apply(self, text: str, rng: random.Random) -> Perturbation:
        """Perturb ``text`` drawing randomness from ``rng``."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """The constructor arguments, for display."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({args})"


# ---------------------------------------------------------------------------
# Typos
# ---------------------------------------------------------------------------

_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_KEYBOARD_ROWS) for i, c in enumerate(row)}
    out: dict[str, str] = {}
    for c, (r, i) in pos.items():
        near = [d for d, (r2, i2) in pos.items() if d != c and abs(r2 - r) <= 1 >= abs(i2 - i)]
        out[c] = "".join(sorted(near))
    return out


#: Letter -> the letters next to it on a QWERTY keyboard.
KEYBOARD: dict[str, str] = _keyboard_neighbours()

_TYPO_KINDS = ("swap", "drop", "insert", "keyboard")


class Typos(Perturber):
    """Introduce ``n`` typos at letters: swap, drop, insert or keyboard-adjacent.

    Bounds: at most ``n`` edits; the length changes by at most ``n``
    (drop -1, insert +1, swap and keyboard 0). Only letters
    (``str.isalpha``) are touched. Not perturbed when the text has no letter
    any chosen kind can use.

    Args:
        n: Number of typos per text.
        kinds: Which typo kinds to draw from.

    Example:
        >>> Typos(n=1, kinds=("drop",))("goal", rng=1).text in {"oal", "gal", "gol", "goa"}
        True
    """

    name = "typos"

    def __init__(self, n: int = 1, kinds: Sequence[str] = _TYPO_KINDS) -> None:
        if not isinstance(n, int) or n < 1:
            raise MLUsageError(f"typos: n must be a positive integer, got {n!r}")
        bad = [k for k in kinds if k not in _TYPO_KINDS]
        if bad or not kinds:
            raise MLUsageError(
                f"typos: unknown kinds {bad or list(kinds)!r}; choose from {list(_TYPO_KINDS)}"
            )
        self.n = n
        self.kinds = tuple(kinds)

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"n": self.n, "kinds": list(self.kinds)}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        # Hot path (one call per case): no closures, random() over randrange().
        rnd = rng.random
        kinds = self.kinds
        nk = len(kinds)
        if self.n == 1:
            fast = _one_typo_fast(text, kinds, rnd, self.name)
            if fast is not None:
                return fast
        used: set[int] = set()
        edits: list[Edit] = []
        for _ in range(self.n):
            first = int(rnd() * nk)
            for k in range(nk):
                edit = _typo(text, kinds[(first + k) % nk], used, rnd)
                if edit is not None:
                    edits.append(edit)
                    if self.n > 1:
                        used.update(range(edit.start, edit.start + len(edit.before)))
                    break
        if len(edits) == 1:
            e = edits[0]
            new = text[: e.start] + e.after + text[e.start + len(e.before) :]
            return Perturbation(text, new, (e,), self.name)
        return _result(text, edits, self.name)


def _one_typo_fast(
    text: str, kinds: tuple[str, ...], rnd: Callable[[], float], name: str
) -> Perturbation | None:
    """One typo at a randomly probed letter; None sends the caller to the general path."""
    n = len(text)
    if n == 0:
        return None
    for _ in range(8):
        i = int(rnd() * n)
        c = text[i]
        if not c.isalpha():
            continue
        nk = len(kinds)
        first = int(rnd() * nk)
        for k in range(nk):
            kind = kinds[(first + k) % nk]
            if kind == "drop":
                return Perturbation(text, text[:i] + text[i + 1 :], (Edit(i, c, "", kind),), name)
            if kind == "swap":
                if i + 1 < n and text[i + 1] != c and text[i + 1].isalpha():
                    d = text[i + 1]
                    return Perturbation(
                        text, text[:i] + d + c + text[i + 2 :], (Edit(i, c + d, d + c, kind),), name
                    )
                continue
            near = KEYBOARD.get(c.lower())
            if kind == "keyboard":
                if not near:
                    continue
                new = near[int(rnd() * len(near))]
                new = new.upper() if c.isupper() else new
            else:  # insert
                pool = near or "etaoinshrdlu"
                new = pool[int(rnd() * len(pool))]
                new = c + (new.upper() if c.isupper() else new)
            return Perturbation(
                text, text[:i] + new + text[i + 1 :], (Edit(i, c, new, kind),), name
            )
        return None
    return None


def _ok_letter(text: str, i: int, used: set[int]) -> bool:
    return text[i].isalpha() and i not in used


def _ok_pair(text: str, i: int, used: set[int]) -> bool:
    a, b = text[i], text[i + 1]
    return a != b and a.isalpha() and b.isalpha() and i not in used and i + 1 not in used


def _ok_key(text: str, i: int, used: set[int]) -> bool:
    return text[i].lower() in KEYBOARD and i not in used


def _pick(
    text: str,
    span: int,
    ok: Callable[[str, int, set[int]], bool],
    used: set[int],
    rnd: Callable[[], float],
) -> int | None:
    """A random index i with ok(i): a few random probes, then a full scan."""
    limit = len(text) - span + 1
    if limit <= 0:
        return None
    for _ in range(8):
        i = int(rnd() * limit)
        if ok(text, i, used):
            return i
    candidates = [i for i in range(limit) if ok(text, i, used)]
    return candidates[int(rnd() * len(candidates))] if candidates else None


def _typo(text: str, kind: str, used: set[int], rnd: Callable[[], float]) -> Edit | None:
    if kind == "swap":
        i = _pick(text, 2, _ok_pair, used, rnd)
        return None if i is None else Edit(i, text[i : i + 2], text[i + 1] + text[i], kind)
    if kind == "keyboard":
        i = _pick(text, 1, _ok_key, used, rnd)
        if i is None:
            return None
        c = text[i]
        near = KEYBOARD[c.lower()]
        new = near[int(rnd() * len(near))]
        return Edit(i, c, new.upper() if c.isupper() else new, kind)
    i = _pick(text, 1, _ok_letter, used, rnd)
    if i is None:
        return None
    c = text[i]
    if kind == "drop":
        return Edit(i, c, "", kind)
    pool = KEYBOARD.get(c.lower()) or "etaoinshrdlu"  # insert
    new = pool[int(rnd() * len(pool))]
    return Edit(i, c, c + (new.upper() if c.isupper() else new), kind)


# ---------------------------------------------------------------------------
# Punctuation, case, whitespace, contractions
# ---------------------------------------------------------------------------


def _is_punct(c: str) -> bool:
    return unicodedata.category(c).startswith("P")


class Punctuation(Perturber):
    """Add or strip punctuation.

    Modes: ``add`` appends one of ``. ! ?`` after the last non-space
    character when the text does not already end with punctuation;
    ``strip`` removes the trailing run of punctuation; ``strip_all`` removes
    every punctuation character (Unicode category P*). Bounds: ``add``
    inserts one character; the strip modes only delete punctuation.

    Example:
        >>> Punctuation("strip")("Great match!!", rng=0).text
        'Great match'
    """

    name = "punctuation"
    MODES: ClassVar[tuple[str, ...]] = ("add", "strip", "strip_all")

    def __init__(self, mode: str = "strip") -> None:
        if mode not in self.MODES:
            raise MLUsageError(f"punctuation: unknown mode {mode!r}; choose from {self.MODES}")
        self.mode = mode

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"mode": self.mode}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        end = len(text.rstrip())
        if self.mode == "add":
            if end == 0 or _is_punct(text[end - 1]):
                return _result(text, [], self.name)
            return _result(text, [Edit(end, "", rng.choice(".!?"), "add")], self.name)
        if self.mode == "strip":
            start = end
            while start > 0 and _is_punct(text[start - 1]):
                start -= 1
            edits = [Edit(start, text[start:end], "", "strip")] if start < end else []
            return _result(text, edits, self.name)
        edits = []
        i, n = 0, len(text)
        while i < n:  # one edit per run of punctuation characters
            if not _is_punct(text[i]):
                i += 1
                continue
            j = i
            while j < n and _is_punct(text[j]):
                j += 1
            edits.append(Edit(i, text[i:j], "", "strip"))
            i = j
        return _result(text, edits, self.name)


class Case(Perturber):
    """Change letter case: ``lower``, ``upper`` or ``capitalize`` (first letter of each word).

    Bounds: the length never changes; each character either stays or becomes
    its own one-character upper or lower form (characters whose case mapping
    is longer, like ``ß``, are left alone).

    Example:
        >>> Case("capitalize")("the cup final", rng=0).text
        'The Cup Final'
    """

    name = "case"
    MODES: ClassVar[tuple[str, ...]] = ("lower", "upper", "capitalize")

    def __init__(self, mode: str = "lower") -> None:
        if mode not in self.MODES:
            raise MLUsageError(f"case: unknown mode {mode!r}; choose from {self.MODES}")
        self.mode = mode

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"mode": self.mode}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        chars = list(text)
        if self.mode == "capitalize":
            targets: Iterable[int] = (m.start() for m in re.finditer(r"(?<!\S)\S", text))
            convert: Callable[[str], str] = str.upper
        else:
            targets = range(len(text))
            convert = str.lower if self.mode == "lower" else str.upper
        changed = False
        for i in targets:
            new = convert(chars[i])
            if len(new) == 1 and new != chars[i]:
                chars[i] = new
                changed = True
        if not changed:
            return _result(text, [], self.name)
        edits: list[Edit] = []
        i = 0
        n = len(text)
        while i < n:  # one edit per run of changed characters
            if chars[i] == text[i]:
                i += 1
                continue
            j = i
            while j < n and chars[j] != text[j]:
                j += 1
            edits.append(Edit(i, text[i:j], "".join(chars[i:j]), self.mode))
            i = j
        return _result(text, edits, self.name)


class Whitespace(Perturber):
    """Add ``n`` bits of whitespace noise: double an existing space, or pad the ends.

    Bounds: the length grows by at most ``n`` and ``text.split()`` is
    unchanged (no word is split or joined). Always applies.

    Example:
        >>> Whitespace(n=2)("a b", rng=0).text.split()
        ['a', 'b']
    """

    name = "whitespace"

    def __init__(self, n: int = 1) -> None:
        if not isinstance(n, int) or n < 1:
            raise MLUsageError(f"whitespace: n must be a positive integer, got {n!r}")
        self.n = n

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"n": self.n}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        spaces = [i for i, c in enumerate(text) if c in " \t"]
        slots = ["start", "end", *spaces]  # where noise may go, each used once
        edits: list[Edit] = []
        for slot in rng.sample(slots, min(self.n, len(slots))):
            if slot == "start":
                edits.append(Edit(0, "", " ", "pad"))
            elif slot == "end":
                edits.append(Edit(len(text), "", " ", "pad"))
            else:
                assert isinstance(slot, int)
                edits.append(Edit(slot, text[slot], text[slot] * 2, "double"))
        return _result(text, edits, self.name)


#: Contraction -> expansion (one-to-one, so contracting inverts expanding).
CONTRACTIONS: dict[str, str] = {
    "aren't": "are not",
    "can't": "cannot",
    "couldn't": "could not",
    "didn't": "did not",
    "doesn't": "does not",
    "don't": "do not",
    "hadn't": "had not",
    "hasn't": "has not",
    "haven't": "have not",
    "he's": "he is",
    "i'm": "i am",
    "i've": "i have",
    "isn't": "is not",
    "it's": "it is",
    "let's": "let us",
    "she's": "she is",
    "shouldn't": "should not",
    "that's": "that is",
    "there's": "there is",
    "they're": "they are",
    "they've": "they have",
    "wasn't": "was not",
    "we're": "we are",
    "we've": "we have",
    "weren't": "were not",
    "what's": "what is",
    "who's": "who is",
    "won't": "will not",
    "wouldn't": "would not",
    "you're": "you are",
    "you've": "you have",
}


def _word_regex(words: tuple[str, ...], flags: int = 0) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", flags)


def _match_case(template: str, word: str) -> str:
    """Give ``word`` the case pattern of ``template`` (all caps, capitalised or as is)."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class Contractions(Perturber):
    """Expand (``don't`` -> ``do not``) or contract (``do not`` -> ``don't``) every match.

    Matching ignores case and keeps the first letter's case; ``’`` counts as
    an apostrophe. Bounds: each edit is a pair of :data:`CONTRACTIONS` (case
    aside). Not perturbed when no entry occurs.

    Example:
        >>> Contractions("expand")("It's late, don't go", rng=0).text
        'It is late, do not go'
    """

    name = "contractions"
    MODES: ClassVar[tuple[str, ...]] = ("expand", "contract")

    def __init__(self, mode: str = "expand") -> None:
        if mode not in self.MODES:
            raise MLUsageError(f"contractions: unknown mode {mode!r}; choose from {self.MODES}")
        self.mode = mode
        if mode == "expand":
            table = dict(CONTRACTIONS)
            table.update({k.replace("'", "’"): v for k, v in CONTRACTIONS.items()})
        else:
            table = {v: k for k, v in CONTRACTIONS.items()}
        self.table = table
        self.pattern = _word_regex(tuple(table), re.IGNORECASE)

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"mode": self.mode}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        table = self.table
        edits = []
        for m in self.pattern.finditer(text):
            found = m.group()
            replacement = table.get(found.lower())
            if replacement is None:  # pragma: no cover - the regex only matches keys
                continue
            new = _match_case(found, replacement)
            if new != found:
                edits.append(Edit(m.start(), found, new, self.mode))
        return _result(text, edits, self.name)


# ---------------------------------------------------------------------------
# Swaps from lexicons, numbers, synonyms
# ---------------------------------------------------------------------------


class LexiconSwap(Perturber):
    """Replace entries of a lexicon found in the text with other entries of it.

    Whole words only, case-sensitive; every occurrence of one entry gets the
    same replacement (so "John ... John" stays one person). Bounds: each
    edit replaces an entry with a different entry of the same pool. Not
    perturbed when no entry occurs.

    Args:
        lexicons: Bundled lexicon names (``"first_names"``, ``"cities"``) or
            lists of entries; each is a separate pool (a first name is
            replaced by a first name, a last name by a last name).
        name: The name shown in reports.

    Example:
        >>> p = LexiconSwap("cities")("Flights from Paris resumed", rng=0)
        >>> p.changed and "Paris" not in p.text
        True
    """

    name = "lexicon_swap"

    def __init__(self, *lexicons: str | Sequence[str], name: str | None = None) -> None:
        if not lexicons:
            raise MLUsageError("lexicon swap: give at least one lexicon")
        pools: list[tuple[str, ...]] = []
        for lex in lexicons:
            entries = load_lexicon(lex) if isinstance(lex, str) else tuple(str(e) for e in lex)
            entries = tuple(dict.fromkeys(e for e in entries if e))
            if len(entries) < 2:
                raise MLUsageError(f"lexicon swap: lexicon {lex!r} needs at least 2 entries")
            pools.append(entries)
        self.sources = [lex if isinstance(lex, str) else "custom" for lex in lexicons]
        self.pools = pools
        self.pool_of = {e: p for p in pools for e in p}
        self.pattern = re.compile(
            r"(?<!\w)(?:"
            + "|".join(re.escape(e) for e in sorted(self.pool_of, key=len, reverse=True))
            + r")(?!\w)"
        )
        if name is not None:
            self.name = name

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"lexicons": self.sources}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        chosen: dict[str, str] = {}
        edits = []
        for m in self.pattern.finditer(text):
            found = m.group()
            if found not in chosen:
                pool = self.pool_of[found]
                new = pool[rng.randrange(len(pool) - 1)]
                chosen[found] = new if new != found else pool[-1]
            edits.append(Edit(m.start(), found, chosen[found], "swap"))
        return _result(text, edits, self.name)


class NumberSwap(Perturber):
    """Replace whole numbers (ASCII digits) with different numbers of similar size.

    A number ``v`` becomes a different integer in ``[v // 2, 2 * v + 1]``;
    at most ``n`` numbers change (all when ``n`` is None). Bounds: every edit
    replaces digits with different digits. Not perturbed without numbers.

    Example:
        >>> NumberSwap()("Won 3-1 after 90 minutes", rng=0).text != "Won 3-1 after 90 minutes"
        True
    """

    name = "numbers"
    _pattern = re.compile(r"(?<![0-9])[0-9]+(?![0-9])")

    def __init__(self, n: int | None = None) -> None:
        if n is not None and (not isinstance(n, int) or n < 1):
            raise MLUsageError(f"numbers: n must be a positive integer or null, got {n!r}")
        self.n = n

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"n": self.n}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        matches = list(self._pattern.finditer(text))
        if self.n is not None and len(matches) > self.n:
            matches = sorted(rng.sample(matches, self.n), key=lambda m: m.start())
        edits = []
        for m in matches:
            digits = m.group()
            value = int(digits[:18])  # bounded: huge digit runs stay cheap
            new = rng.randint(value // 2, 2 * value + 1)
            if new == value:
                new = value + 1
            edits.append(Edit(m.start(), digits, str(new), "number"))
        return _result(text, edits, self.name)


class Synonyms(Perturber):
    """Swap words for synonyms from a user lexicon.

    Args:
        lexicon: Either groups of interchangeable words (``[["good",
            "great"], ...]``) or a mapping word -> alternatives.
        n: Words to replace per text (at most; fewer when fewer match).

    Whole words, case-insensitive, keeping the first letter's case. Bounds:
    at most ``n`` edits, each replacing a lexicon word with one of its
    alternatives. Not perturbed when no word of the lexicon occurs.

    Example:
        >>> Synonyms([["good", "great"]])("A good game", rng=0).text
        'A great game'
    """

    name = "synonyms"

    def __init__(
        self,
        lexicon: Mapping[str, Sequence[str]] | Sequence[Sequence[str]],
        n: int = 1,
    ) -> None:
        if not isinstance(n, int) or n < 1:
            raise MLUsageError(f"synonyms: n must be a positive integer, got {n!r}")
        table: dict[str, list[str]] = {}
        if isinstance(lexicon, Mapping):
            for word, alts in lexicon.items():
                if isinstance(alts, str):
                    alts = [alts]
                table.setdefault(str(word).lower(), []).extend(str(a) for a in alts)
        elif isinstance(lexicon, Sequence) and not isinstance(lexicon, str):
            for group in lexicon:
                if isinstance(group, str) or not isinstance(group, Sequence):
                    raise MLUsageError(
                        "synonyms: give groups of words ([[good, great], ...]) or a mapping"
                    )
                words = [str(w) for w in group]
                for w in words:
                    table.setdefault(w.lower(), []).extend(x for x in words if x != w)
        else:
            raise MLUsageError("synonyms: give groups of words ([[good, great], ...]) or a mapping")
        self.table = {
            k: list(dict.fromkeys(a for a in v if a.lower() != k)) for k, v in table.items()
        }
        self.table = {k: v for k, v in self.table.items() if v and k}
        if not self.table:
            raise MLUsageError("synonyms: the lexicon has no word with an alternative")
        self.n = n
        self.pattern = _word_regex(tuple(self.table), re.IGNORECASE)

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"words": len(self.table), "n": self.n}

    def apply(self, text: str, rng: random.Random) -> Perturbation:  # noqa: D102
        matches = [m for m in self.pattern.finditer(text) if m.group().lower() in self.table]
        if len(matches) > self.n:
            matches = sorted(rng.sample(matches, self.n), key=lambda m: m.start())
        edits = []
        for m in matches:
            found = m.group()
            new = _match_case(found, rng.choice(self.table[found.lower()]))
            if new != found:
                edits.append(Edit(m.start(), found, new, "synonym"))
        return _result(text, edits, self.name)


# ---------------------------------------------------------------------------
# Additions
# ---------------------------------------------------------------------------


def _add(text: str, addition: str, position: str, kind: str, name: str) -> Perturbation:
    if position == "start":
        sep = " " if text and not text[0].isspace() else ""
        return _result(text, [Edit(0, "", addition + sep, kind)], name)
    sep = " " if text and not text[-1].isspace() else ""
    return _result(text, [Edit(len(text), "", sep + addition, kind)], name)


class _Addition(Perturber):
    POSITIONS: ClassVar[tuple[str, ...]] = ("end", "start")

    def __init__(self, position: str = "end") -> None:
        if position not in self.POSITIONS:
            raise MLUsageError(
                f"{self.name}: unknown position {position!r}; choose from {self.POSITIONS}"
            )
        self.position = position

    def params(self) -> dict[str, Any]:
        return {"position": self.position}

    def addition(self, rng: random.Random) -> str:
        raise NotImplementedError

    def apply(self, text: str, rng: random.Random) -> Perturbation:
        return _add(text, self.addition(rng), self.position, "add", self.name)


class AddSentence(_Addition):
    """Add a neutral sentence (bundled ``neutral_sentences`` lexicon) at the end or start.

    Bounds: the original is kept intact as a substring; the text grows by
    one sentence plus at most one space. Always applies.

    Example:
        >>> AddSentence()("Shares fell.", rng=0).text.startswith("Shares fell. ")
        True
    """

    name = "add_sentence"

    def __init__(self, position: str = "end", sentences: Sequence[str] | None = None) -> None:
        super().__init__(position)
        self.sentences = tuple(sentences) if sentences else load_lexicon("neutral_sentences")

    def addition(self, rng: random.Random) -> str:  # noqa: D102
        return rng.choice(self.sentences)


class AddUrl(_Addition):
    """Add a made-up URL (``https://example.com/news42``) at the end or start.

    Bounds: the original is kept intact; the text grows by one URL plus at
    most one space. Always applies.

    Example:
        >>> AddUrl()("Shares fell", rng=0).text.split()[-1].startswith("https://")
        True
    """

    name = "add_url"

    def addition(self, rng: random.Random) -> str:  # noqa: D102
        domain = rng.choice(load_lexicon("url_domains"))
        word = rng.choice(load_lexicon("hashtags"))
        return f"https://{domain}/{word}{rng.randrange(1000)}"


class AddHashtag(_Addition):
    """Add a hashtag (``#breaking``) from the bundled ``hashtags`` lexicon.

    Bounds: the original is kept intact; the text grows by one hashtag plus
    at most one space. Always applies.

    Example:
        >>> AddHashtag()("Shares fell", rng=0).text.split()[-1][0]
        '#'
    """

    name = "add_hashtag"

    def addition(self, rng: random.Random) -> str:  # noqa: D102
        return "#" + rng.choice(load_lexicon("hashtags"))


class AddText(_Addition):
    """Add the given text (one of several, drawn at random) at the end or start.

    Meant for DIR tests: "adding 'shares fell 5%' must not lower P(business)".

    Example:
        >>> AddText("Shares fell 5%.")("Record profits", rng=0).text
        'Record profits Shares fell 5%.'
    """

    name = "add_text"

    def __init__(self, text: str | Sequence[str], position: str = "end") -> None:
        super().__init__(position)
        texts = [text] if isinstance(text, str) else [str(t) for t in text]
        if not texts or not all(texts):
            raise MLUsageError("add_text: give a non-empty text (or a list of them)")
        self.texts = tuple(texts)

    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"text": list(self.texts), "position": self.position}

    def addition(self, rng: random.Random) -> str:  # noqa: D102
        return self.texts[0] if len(self.texts) == 1 else rng.choice(self.texts)


# ---------------------------------------------------------------------------
# Registry (used by YAML suites)
# ---------------------------------------------------------------------------


def _names(**kwargs: Any) -> Perturber:
    return LexiconSwap("first_names", "last_names", name="names", **kwargs)


def _lexicon_factory(lexicon: str) -> Callable[..., Perturber]:
    def make(**kwargs: Any) -> Perturber:
        return LexiconSwap(lexicon, name=lexicon, **kwargs)

    return make


def _lexicon_swap(lexicon: str | Sequence[str], **kwargs: Any) -> Perturber:
    return LexiconSwap(lexicon, **kwargs)


#: Perturbation name (as written in YAML) -> factory taking its parameters.
PERTURBATIONS: dict[str, Callable[..., Perturber]] = {
    "typos": Typos,
    "punctuation": Punctuation,
    "case": Case,
    "contractions": Contractions,
    "whitespace": Whitespace,
    "names": _names,
    "first_names": _lexicon_factory("first_names"),
    "last_names": _lexicon_factory("last_names"),
    "cities": _lexicon_factory("cities"),
    "countries": _lexicon_factory("countries"),
    "lexicon_swap": _lexicon_swap,
    "numbers": NumberSwap,
    "synonyms": Synonyms,
    "add_sentence": AddSentence,
    "add_url": AddUrl,
    "add_hashtag": AddHashtag,
    "add_text": AddText,
}


def make_perturbation(spec: str | Mapping[str, Any] | Perturber) -> Perturber:
    """Build a perturber from a name or ``{name: ..., <param>: ...}`` mapping.

    Raises:
        MLUsageError: For an unknown name or parameter (the message lists the
            known ones).

    Example:
        >>> make_perturbation({"name": "typos", "n": 2})
        typos(n=2, kinds=['swap', 'drop', 'insert', 'keyboard'])
    """
    if isinstance(spec, Perturber):
        return spec
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise MLUsageError(
                f"perturbation {dict(spec)!r} has no name: write {{name: typos, n: 1}}"
            )
    else:
        raise MLUsageError(f"perturbation must be a name or a mapping, got {spec!r}")
    factory = PERTURBATIONS.get(name)
    if factory is None:
        raise MLUsageError(
            f"unknown perturbation {name!r}; known: {', '.join(sorted(PERTURBATIONS))}"
        )
    try:
        return factory(**params)
    except TypeError as exc:
        raise MLUsageError(f"perturbation {name!r}: bad parameters {params!r} ({exc})") from None
