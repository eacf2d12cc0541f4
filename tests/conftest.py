"""Shared set-up for the project's own tests.

pytester's in-process runs restore ``sys.modules`` when they end, dropping
every module first imported inside the inner run. Extension-heavy libraries do
not survive being imported twice in one process: torch re-registers its C++
operator libraries ("Only a single TORCH_LIBRARY can be used..."), numpy
refuses to load its core again. So the snapshot keeps every module that does
not come from the inner run's own temporary directory (libraries, mltest,
reference_pipeline), and drops only the inner run's test and conftest modules,
which is what the snapshot is for. The heavy libraries are also loaded once up
front. Only the tests pay this, never the plugin.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable

import _pytest.pytester as _pytester_module
import pytest

# Where pytester puts inner runs: under this session's base temporary folder
# (set by the fixture below before any test runs). Not simply the system temp
# folder: the checkout itself may live there (CI clones into /tmp).
_inner_root: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _remember_inner_run_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    _inner_root[:] = [str(tmp_path_factory.getbasetemp())]


def _from_inner_run(name: str) -> bool:
    path = getattr(sys.modules.get(name), "__file__", None) or ""
    return bool(_inner_root) and path.startswith(_inner_root[0])


class _KeepLibrariesSnapshot(_pytester_module.SysModulesSnapshot):
    def __init__(self, preserve: Callable[[str], bool] | None = None) -> None:
        def keep(name: str) -> bool:
            return not _from_inner_run(name) or bool(preserve and preserve(name))

        super().__init__(preserve=keep)


_pytester_module.SysModulesSnapshot = _KeepLibrariesSnapshot  # type: ignore[misc]

for _name in ("numpy", "torch", "pandas"):
    if importlib.util.find_spec(_name) is not None:
        __import__(_name)
