"""Exceptions shared by every mltest capability.

Every error mltest raises on bad input derives from :class:`MLTestError` and
carries a one-line message that names the thing at fault and what to do.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MLCheckFailure", "MLTestError", "MLUsageError", "MissingExtraError", "require"]


class MLTestError(Exception):
    """Base class of mltest's own errors (bad input, missing extras)."""


class MLUsageError(MLTestError, ValueError):
    """A check or option was given arguments it cannot work with.

    Example:
        >>> raise MLUsageError("batch is empty: give at least one example")
        Traceback (most recent call last):
        ...
        mltest.errors.MLUsageError: batch is empty: give at least one example
    """


class MissingExtraError(MLTestError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class MLCheckFailure(AssertionError):
    """An ML check found a problem. The message is the diagnosis.

    Subclasses of ``AssertionError`` so pytest reports it as a test failure,
    not an error.
    """


def require(module: str, extra: str, *, purpose: str = "") -> ModuleType:
    """Import an optional dependency or fail with the extra that provides it.

    Args:
        module: Importable module name, e.g. ``"torch"``.
        extra: The ``pytest-mltest`` extra that installs it, e.g. ``"torch"``.
        purpose: What needs it, for the message ("model checks").

    Returns:
        The imported module.

    Raises:
        MissingExtraError: When the module is not importable.

    Example:
        >>> torch = require("torch", "torch", purpose="model checks")  # doctest: +SKIP
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        raise MissingExtraError(
            f"mltest needs {module!r}{what}: install it with `pip install 'pytest-mltest[{extra}]'`"
        ) from exc
