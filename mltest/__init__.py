"""mltest: a pytest plugin for testing machine-learning code, data and models.

Importing this package is cheap on purpose: it loads no torch, numpy, pandas or
Great Expectations. Each capability lives in its own module and is imported
where it is used::

    from mltest.model import check_model
    from mltest.report import record_metric
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
