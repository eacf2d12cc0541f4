"""Templates filled from lexicons: ``"{first_name} scored twice for {team}"``.

A placeholder names a lexicon: one given with the template, or a bundled one
(``first_name``, ``last_name``, ``city``, ``country`` and the file stems of
:mod:`mltest.behavioral.lexicons`). A placeholder used twice gets the same
value both times. When the full product of choices is larger than
``max_cases``, a seeded sample of distinct fillings is drawn; otherwise every
filling is returned in order.

Example:
    >>> t = Template("{who} scored for {team}", who=["Ann", "Bo"], team=["Arsenal"])
    >>> t.expand()
    ['Ann scored for Arsenal', 'Bo scored for Arsenal']
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Mapping, Sequence

from mltest.behavioral.lexicons import ALIASES, available_lexicons, load_lexicon
from mltest.errors import MLUsageError

__all__ = ["DEFAULT_MAX_CASES", "Template", "expand_template"]

#: Cases a template yields at most unless told otherwise.
DEFAULT_MAX_CASES = 100


class Template:
    """A text template with lexicons, a cap and a seed.

    Args:
        text: The template; ``{name}`` placeholders, ``{{``/``}}`` for braces.
        lexicons: Lexicons by placeholder name (they win over bundled ones);
            can also be given as keyword arguments.
        max_cases: Most fillings to return (seeded sample when there are more).
        seed: Seed of the sample.

    Example:
        >>> len(Template("{first_name} won", max_cases=5).expand())
        5
    """

    def __init__(
        self,
        text: str,
        lexicons: Mapping[str, Sequence[str]] | None = None,
        *,
        max_cases: int = DEFAULT_MAX_CASES,
        seed: int = 0,
        **more: Sequence[str],
    ) -> None:
        if not isinstance(max_cases, int) or max_cases < 1:
            raise MLUsageError(f"template {text!r}: max_cases must be >= 1, got {max_cases!r}")
        self.text = text
        self.lexicons = {**(lexicons or {}), **more}
        self.max_cases = max_cases
        self.seed = seed

    def fields(self) -> list[str]:
        """Placeholder names in order of first appearance.

        Raises:
            MLUsageError: For a malformed template or positional/attribute fields.

        Example:
            >>> Template("{a} and {b} and {a}").fields()
            ['a', 'b']
        """
        try:
            parsed = list(string.Formatter().parse(self.text))
        except ValueError as exc:
            raise MLUsageError(f"template {self.text!r} is malformed: {exc}") from None
        names: list[str] = []
        for _, field, spec, conv in parsed:
            if field is None:
                continue
            if not field.isidentifier() or spec or conv:
                raise MLUsageError(
                    f"template {self.text!r}: placeholder {{{field}}} must be a plain "
                    "name like {first_name}"
                )
            if field not in names:
                names.append(field)
        return names

    def _values(self, name: str) -> tuple[str, ...]:
        if name in self.lexicons:
            given = self.lexicons[name]
            if isinstance(given, str):
                return (given,)
            return tuple(str(v) for v in given)
        if name in ALIASES or name in available_lexicons():
            return load_lexicon(name)
        known = sorted({*self.lexicons, *ALIASES, *available_lexicons()})
        raise MLUsageError(
            f"template {self.text!r}: no lexicon for {{{name}}}; give one under lexicons "
            f"or use a bundled one ({', '.join(known)})"
        )

    def expand(self, seed: int | None = None) -> list[str]:
        """Return the filled texts (at most ``max_cases``), deterministic for a seed.

        Raises:
            MLUsageError: When a lexicon is missing or empty (no text at all).

        Example:
            >>> Template("{x}!", x=["a", "b", "c"], max_cases=2, seed=1).expand()
            ['a!', 'c!']
        """
        names = self.fields()
        values = [self._values(n) for n in names]
        empty = [n for n, v in zip(names, values, strict=False) if not v]
        if empty:
            raise MLUsageError(
                f"template {self.text!r} expands to no text: lexicon {empty[0]!r} is empty"
            )
        total = math.prod(len(v) for v in values)
        if total <= self.max_cases:
            indices: Sequence[int] = range(total)
        else:
            rng = random.Random(self.seed if seed is None else seed)
            indices = sorted(rng.sample(range(total), self.max_cases))
        out = []
        for index in indices:
            fill = {}
            for name, vals in zip(reversed(names), reversed(values), strict=False):
                index, k = divmod(index, len(vals))
                fill[name] = vals[k]
            out.append(self.text.format(**fill))
        return out

    def __repr__(self) -> str:
        return f"Template({self.text!r}, max_cases={self.max_cases})"


def expand_template(
    text: str,
    lexicons: Mapping[str, Sequence[str]] | None = None,
    *,
    max_cases: int = DEFAULT_MAX_CASES,
    seed: int = 0,
) -> list[str]:
    """Shortcut for ``Template(text, lexicons, max_cases=..., seed=...).expand()``.

    Example:
        >>> expand_template("{c} is big", {"c": ["Lima"]})
        ['Lima is big']
    """
    return Template(text, lexicons, max_cases=max_cases, seed=seed).expand()
