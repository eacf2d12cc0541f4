"""Shared set-up for the project's own tests.

pytester's in-process runs restore ``sys.modules`` when they end, so a heavy
extension module first imported inside an inner run is dropped afterwards and
imported again by the next test, which torch and numpy do not survive
("bad call flags", segfaults). Loading them once here, before any inner run,
keeps them in the snapshot. Only the tests pay this, never the plugin.
"""

from __future__ import annotations

import importlib.util

for _name in ("numpy", "torch", "pandas"):
    if importlib.util.find_spec(_name) is not None:
        __import__(_name)
