"""reference_pipeline: a PyTorch text classifier whose tests are written with mltest.

Importing the package is cheap: no torch, numpy or pandas until a submodule is
imported. Stages are pure functions of their params (``config``), wired to
files by ``main()`` functions and the CLI.

Example:
    >>> from reference_pipeline.config import load_params  # doctest: +SKIP
    >>> params = load_params("params.yaml", {"train.epochs": 5})  # doctest: +SKIP
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
