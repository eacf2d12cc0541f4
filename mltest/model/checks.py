"""The model checks, each a function of a :class:`~mltest.model._core.Session`.

Each ``run_*`` function starts from the session's starting point
(``session.reset()``), does its work, and returns a :class:`CheckResult`, or
None when the check does not apply (say, batch independence for a batch of one).
They never restore the caller's state themselves: the session does that once,
on close. The public one-line checks (``check_*``) and :func:`check_model`
wrap them.

The checks live by family, each module readable on its own:

* ``_spec``: output spec and loss inputs;
* ``_gradients``: finite values, gradient flow, parameter updates, zero_grad;
* ``_training``: loss decrease, overfitting one batch, weight symmetry;
* ``_sequence``: batch independence, causality, padding;
* ``_determinism``: eval/training determinism and device parity.

This module gathers them under one name (``mltest.model.checks``).
"""

from __future__ import annotations

from mltest.model._determinism import (
    compare_models,
    run_device_parity,
    run_eval_determinism,
    run_training_determinism,
)
from mltest.model._gradients import (
    run_finite,
    run_gradient_flow,
    run_parameters_update,
    run_zero_grad,
)
from mltest.model._sequence import run_batch_independence, run_causality, run_padding
from mltest.model._spec import run_loss_inputs, run_output_spec
from mltest.model._training import (
    run_loss_decreases,
    run_overfit_batch,
    run_weight_symmetry,
    shared_run,
)

__all__ = [
    "compare_models",
    "run_batch_independence",
    "run_causality",
    "run_device_parity",
    "run_eval_determinism",
    "run_finite",
    "run_gradient_flow",
    "run_loss_decreases",
    "run_loss_inputs",
    "run_output_spec",
    "run_overfit_batch",
    "run_padding",
    "run_parameters_update",
    "run_training_determinism",
    "run_weight_symmetry",
    "run_zero_grad",
    "shared_run",
]
