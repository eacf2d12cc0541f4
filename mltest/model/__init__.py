"""Model checks: catch the classic PyTorch training bugs in a one-line test.

Each check is a plain function that raises :class:`ModelCheckFailure` (an
``AssertionError``) whose message is a diagnosis: what was found, the
parameters or modules at fault, and the likely bug. :func:`check_model` runs
every applicable check and lists all failures at once; the ``model_checker``
fixture binds it to the test's seed and ``--ml-device`` devices.

Every check leaves the model (weights, buffers, gradients, ``requires_grad``,
train/eval modes) and the random generators as it found them.

Example:
    >>> import torch
    >>> from mltest.model import check_model
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> batch = (torch.randn(8, 4), torch.arange(8) % 3)
    >>> report = check_model(model, batch, torch.nn.CrossEntropyLoss(),
    ...                      lambda m: torch.optim.Adam(m.parameters(), lr=1e-2))
    >>> len(report.results) >= 8
    True
"""

from __future__ import annotations

from mltest.errors import require

require("torch", "torch", purpose="model checks")

from mltest.model._core import (  # noqa: E402
    CheckResult,
    ModelCheckFailure,
    split_batch,
)
from mltest.model.battery import (  # noqa: E402
    CHECKS,
    ModelChecker,
    ModelReport,
    check_batch_independence,
    check_causality,
    check_device_parity,
    check_eval_determinism,
    check_finite,
    check_gradient_flow,
    check_loss_decreases,
    check_loss_inputs,
    check_model,
    check_output_spec,
    check_overfit_batch,
    check_padding,
    check_parameters_update,
    check_training_determinism,
    check_weight_symmetry,
    check_zero_grad,
)

# Public names print as mltest.model.X in tracebacks, not the private module.
ModelCheckFailure.__module__ = __name__
CheckResult.__module__ = __name__

__all__ = [
    "CHECKS",
    "CheckResult",
    "ModelCheckFailure",
    "ModelChecker",
    "ModelReport",
    "check_batch_independence",
    "check_causality",
    "check_device_parity",
    "check_eval_determinism",
    "check_finite",
    "check_gradient_flow",
    "check_loss_decreases",
    "check_loss_inputs",
    "check_model",
    "check_output_spec",
    "check_overfit_batch",
    "check_padding",
    "check_parameters_update",
    "check_training_determinism",
    "check_weight_symmetry",
    "check_zero_grad",
    "split_batch",
]
