"""Loading the plugin costs nothing heavy and has no side effects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "numpy", "pandas", "great_expectations", "sklearn", "bentoml", "scipy", "yaml")


def _modules_after(code: str, cwd: Path) -> dict[str, bool]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=cwd
    )
    loaded: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    loaded = _modules_after("import mltest.plugin, mltest.data, mltest.behavioral", tmp_path)
    assert not any(loaded.values()), {m for m, v in loaded.items() if v}


def test_a_plain_pytest_run_imports_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("def test_a(): pass\n")
    code = (
        "import pytest\n"
        "rc = pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:hydra_pytest', "
        "'-p', 'no:hypothesispytest', '-p', 'no:memray', '-p', 'no:anyio', '-p', 'no:xdist', "
        "'--ml', 'test_a.py'])\n"
        "assert rc == 0, rc"
    )
    loaded = _modules_after(code, tmp_path)
    assert not any(loaded.values()), {m for m, v in loaded.items() if v}


def test_loading_the_plugin_has_no_side_effects(tmp_path: Path) -> None:
    """No files written, no seeding, no environment changes at import time."""
    code = (
        "import os, random\n"
        "random.seed(1); expected = random.random(); random.seed(1)\n"
        "env = dict(os.environ)\n"
        "import mltest.plugin\n"
        "assert random.random() == expected, 'import touched the global RNG'\n"
        "assert dict(os.environ) == env, 'import changed the environment'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
    assert list(tmp_path.iterdir()) == []
