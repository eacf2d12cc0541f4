"""Importing mltest.data (and the suite collector) loads no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("great_expectations", "pandas", "scipy", "numpy", "torch", "sklearn")


def test_importing_the_data_package_is_cheap() -> None:
    code = (
        "import sys, json\n"
        "import mltest.data, mltest.data.suites\n"
        "from mltest.data import expect, check_drift, check_label_issues\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
