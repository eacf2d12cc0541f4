"""Importing the package and its config is cheap: no torch, numpy or pandas."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["reference_pipeline", "reference_pipeline.config"])
def test_import_loads_no_heavy_library(module):
    code = (
        f"import json, sys; import {module}; "
        "print(json.dumps(sorted(m for m in ('torch', 'numpy', 'pandas', 'sklearn') "
        "if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
