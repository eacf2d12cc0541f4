"""Perturbations: hypothesis properties for every one, plus pinned examples."""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltest.behavioral.perturb import (
    CONTRACTIONS,
    PERTURBATIONS,
    AddHashtag,
    AddSentence,
    AddText,
    AddUrl,
    Case,
    Contractions,
    Edit,
    LexiconSwap,
    NumberSwap,
    Perturbation,
    Perturber,
    Punctuation,
    Synonyms,
    Typos,
    Whitespace,
    apply_edits,
    make_perturbation,
)
from mltest.errors import MLUsageError

WORDS = [
    "John", "Mary", "Smith", "Paris", "New York", "France", "South Africa", "don't", "do not",
    "It's", "it is", "CAN'T", "12", "3.5", "2024", "good", "Good", "great", "goal", "!", "?",
    ",", "...", "  ", "\t", "é", "ß", "İ", "ǅ", "東京", "x",
]  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(WORDS), max_size=12).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=12).map("".join),
)
SYNONYMS = [["good", "great", "fine"], ["goal", "score"]]

PERTURBERS: list[Perturber] = [
    Typos(n=1),
    Typos(n=3),
    Typos(n=2, kinds=("swap",)),
    Typos(n=2, kinds=("keyboard",)),
    Punctuation("add"),
    Punctuation("strip"),
    Punctuation("strip_all"),
    Case("lower"),
    Case("upper"),
    Case("capitalize"),
    Contractions("expand"),
    Contractions("contract"),
    Whitespace(n=1),
    Whitespace(n=3),
    make_perturbation("names"),
    make_perturbation("first_names"),
    make_perturbation("last_names"),
    make_perturbation("cities"),
    make_perturbation("countries"),
    LexiconSwap(["Mary", "Ann", "Bo"]),
    NumberSwap(),
    NumberSwap(n=1),
    Synonyms(SYNONYMS, n=2),
    AddSentence(),
    AddSentence("start"),
    AddUrl(),
    AddHashtag("start"),
    AddText(["Shares fell.", "A late goal."]),
]
IDS = [repr(p) for p in PERTURBERS]
FEW = settings(max_examples=40, deadline=None)


def check_edits(p: Perturbation) -> None:
    assert p.changed == bool(p.edits) == (p.text != p.original)
    assert apply_edits(p.original, p.edits) == p.text
    for a, b in zip(p.edits, p.edits[1:], strict=False):
        assert a.end <= b.start


@pytest.mark.parametrize("perturber", PERTURBERS, ids=IDS)
@FEW
@given(text=TEXTS, seed=st.integers(0, 2**32 - 1))
def test_every_perturbation_is_total_deterministic_and_explained(
    perturber: Perturber, text: str, seed: int
) -> None:
    first = perturber(text, seed)
    assert first == perturber(text, random.Random(seed))
    assert first.original == text
    check_edits(first)


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000), n=st.integers(1, 4))
def test_typos_bounds(text: str, seed: int, n: int) -> None:
    p = Typos(n=n)(text, seed)
    assert len(p.edits) <= n
    assert abs(len(p.text) - len(text)) <= n
    for e in p.edits:
        assert all(c.isalpha() for c in e.before)
    letters = sum(c.isalpha() for c in text)
    if letters >= 2:
        assert p.changed or not any(
            text[i].isalpha() and text[i + 1].isalpha() and text[i] != text[i + 1]
            for i in range(len(text) - 1)
        )


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000))
def test_punctuation_bounds(text: str, seed: int) -> None:
    added = Punctuation("add")(text, seed)
    assert len(added.text) - len(text) in (0, 1)
    for mode in ("strip", "strip_all"):
        stripped = Punctuation(mode)(text, seed)
        assert all(e.after == "" for e in stripped.edits)
        assert all(
            unicodedata.category(c).startswith("P") for e in stripped.edits for c in e.before
        )
    assert not any(
        unicodedata.category(c).startswith("P") for c in Punctuation("strip_all")(text).text
    )


@FEW
@given(text=TEXTS, mode=st.sampled_from(Case.MODES))
def test_case_bounds(text: str, mode: str) -> None:
    p = Case(mode)(text, 0)
    assert len(p.text) == len(text)
    for a, b in zip(text, p.text, strict=False):
        assert b in (a, a.upper(), a.lower())


@FEW
@given(text=TEXTS, mode=st.sampled_from(Contractions.MODES))
def test_contraction_edits_come_from_the_table(text: str, mode: str) -> None:
    pairs = {(k.lower(), v) for k, v in CONTRACTIONS.items()}
    for e in Contractions(mode)(text, 0).edits:
        short, long = (e.before, e.after) if mode == "expand" else (e.after, e.before)
        assert (short.lower().replace("’", "'"), long.lower()) in pairs


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000), n=st.integers(1, 4))
def test_whitespace_keeps_words(text: str, seed: int, n: int) -> None:
    p = Whitespace(n=n)(text, seed)
    assert p.text.split() == text.split()
    assert 1 <= len(p.text) - len(text) <= n


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000))
def test_lexicon_swaps_stay_in_their_pool(text: str, seed: int) -> None:
    swap = make_perturbation("names")
    assert isinstance(swap, LexiconSwap)
    for e in swap(text, seed).edits:
        assert e.before != e.after
        assert swap.pool_of[e.before] is swap.pool_of[e.after]


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000))
def test_number_swaps_change_digits_only(text: str, seed: int) -> None:
    for e in NumberSwap()(text, seed).edits:
        assert e.before.isascii()
        assert e.before.isdigit()
        assert e.after.isdigit()
        assert e.after != e.before


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000))
def test_synonyms_come_from_the_lexicon(text: str, seed: int) -> None:
    syn = Synonyms(SYNONYMS, n=2)
    p = syn(text, seed)
    assert len(p.edits) <= 2
    for e in p.edits:
        assert e.after.lower() in syn.table[e.before.lower()]


@FEW
@given(text=TEXTS, seed=st.integers(0, 1000))
def test_additions_keep_the_original(text: str, seed: int) -> None:
    longest = max(len(s) for s in AddSentence().sentences)
    for add in (AddSentence(), AddSentence("start"), AddUrl(), AddHashtag()):
        p = add(text, seed)
        assert text in p.text
        assert p.changed
        assert len(p.text) - len(text) <= max(longest, 60) + 1


# ---------------------------------------------------------------------------
# Pinned examples and errors
# ---------------------------------------------------------------------------


def test_pinned_examples() -> None:
    assert Punctuation("add")("Great match", 0).text in {
        "Great match.",
        "Great match!",
        "Great match?",
    }
    assert Punctuation("strip")("Great match!! ", 0).text == "Great match "
    assert Punctuation("strip_all")("Hi, you... ok?", 0).text == "Hi you ok"
    assert Case("capitalize")("the cup final", 0).text == "The Cup Final"
    assert Contractions("expand")("It's late, don't go", 0).text == "It is late, do not go"
    assert Contractions("contract")("It is late, do not go", 0).text == "It's late, don't go"
    p = make_perturbation("cities")("From New York to Paris, New York", 0)
    assert p.edits[0].before == "New York"
    assert p.edits[0].after == p.edits[2].after  # one entry, one replacement
    assert Synonyms({"good": ["great"]})("Good game", 0).text == "Great game"
    assert AddText("Shares fell.", position="start")("Profits rose", 0).text == (
        "Shares fell. Profits rose"
    )


def test_not_perturbed_is_reported() -> None:
    p = make_perturbation("names")("shares fell", 0)
    assert (p.changed, p.text, p.describe()) == (False, "shares fell", "not perturbed")
    assert not Typos()("123 !!", 0).changed
    assert not Contractions()("nothing here", 0).changed


def test_edit_and_pair_descriptions() -> None:
    p = Perturbation.from_pair("I like it", "I love it")
    assert p.edits == (Edit(3, "ik", "ov", "pair"),)
    assert p.describe() == "'ik'->'ov'"
    assert Perturbation.from_pair("abc", "abcd").edits == (Edit(3, "", "d", "pair"),)
    long = Perturbation("x" * 100, "y" * 100, (Edit(0, "x" * 100, "y" * 100),))
    assert len(long.describe(limit=20)) == 20
    with pytest.raises(MLUsageError):
        apply_edits("abc", [Edit(1, "x", "y")])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("typoz", "unknown perturbation 'typoz'; known: add_hashtag, add_sentence, *"),
        ({"n": 1}, "perturbation {'n': 1} has no name: write {name: typos, n: 1}"),
        ({"name": "typos", "m": 1}, "perturbation 'typos': bad parameters {'m': 1} *"),
        ({"name": "typos", "n": 0}, "typos: n must be a positive integer, got 0"),
        ({"name": "typos", "kinds": ["slip"]}, "typos: unknown kinds ['slip']; *"),
        ({"name": "case", "mode": "shout"}, "case: unknown mode 'shout'; *"),
        ({"name": "synonyms", "lexicon": [["solo"]]}, "synonyms: the lexicon has no word *"),
        (
            {"name": "lexicon_swap", "lexicon": ["one"]},
            "lexicon swap: lexicon ['one'] needs at least 2 entries",
        ),
        ({"name": "add_text", "text": ""}, "add_text: give a non-empty text *"),
        ({"name": "add_url", "position": "middle"}, "add_url: unknown position 'middle'; *"),
        (3, "perturbation must be a name or a mapping, got 3"),
    ],
)
def test_bad_perturbation_specs(spec: object, message: str) -> None:
    with pytest.raises(MLUsageError) as info:
        make_perturbation(spec)  # type: ignore[arg-type]
    got = str(info.value)
    if message.endswith("*"):  # the rest lists known values
        assert got.startswith(message[:-1]), got
    else:
        assert got == message


def test_registry_covers_every_name() -> None:
    assert sorted(PERTURBATIONS) == [
        "add_hashtag", "add_sentence", "add_text", "add_url", "case", "cities", "contractions",
        "countries", "first_names", "last_names", "lexicon_swap", "names", "numbers",
        "punctuation", "synonyms", "typos", "whitespace",
    ]  # fmt: skip
