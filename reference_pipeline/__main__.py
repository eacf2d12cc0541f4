"""``python -m reference_pipeline``: the command line (see :mod:`reference_pipeline.cli`)."""

from __future__ import annotations

from reference_pipeline.cli import main

if __name__ == "__main__":
    main()
