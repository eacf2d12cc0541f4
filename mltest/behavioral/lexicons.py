"""Word lists bundled with mltest, read with :mod:`importlib.resources`.

Each lexicon is a text file under ``mltest/behavioral/lexicons/``: one entry a
line, ``#`` starts a comment line. They hold a few hundred entries in all,
enough to vary names, places and filler text without any download.

Example:
    >>> "Paris" in load_lexicon("cities")
    True
    >>> load_lexicon("city") == load_lexicon("cities")
    True
"""

from __future__ import annotations

import functools
from importlib import resources

from mltest.errors import MLUsageError

__all__ = ["ALIASES", "available_lexicons", "load_lexicon"]

#: Singular names usable in templates (``{first_name}``) -> lexicon file stem.
ALIASES: dict[str, str] = {
    "first_name": "first_names",
    "name": "first_names",
    "last_name": "last_names",
    "city": "cities",
    "country": "countries",
    "neutral_sentence": "neutral_sentences",
    "hashtag": "hashtags",
    "url_domain": "url_domains",
}


@functools.lru_cache(maxsize=1)
def available_lexicons() -> tuple[str, ...]:
    """Names of the bundled lexicons (file stems), sorted.

    Example:
        >>> "countries" in available_lexicons()
        True
    """
    folder = resources.files("mltest.behavioral").joinpath("lexicons")
    return tuple(
        sorted(p.name[: -len(".txt")] for p in folder.iterdir() if p.name.endswith(".txt"))
    )


@functools.cache
def load_lexicon(name: str) -> tuple[str, ...]:
    """Return the entries of a bundled lexicon, in file order.

    Args:
        name: A file stem (``"cities"``) or a singular alias (``"city"``).

    Raises:
        MLUsageError: When no lexicon has that name.

    Example:
        >>> load_lexicon("first_names")[:2]
        ('James', 'Mary')
    """
    stem = ALIASES.get(name, name)
    if stem not in available_lexicons():
        known = ", ".join([*available_lexicons(), *ALIASES])
        raise MLUsageError(f"no bundled lexicon named {name!r}; known: {known}")
    path = resources.files("mltest.behavioral").joinpath("lexicons", f"{stem}.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
