"""``check_model``: every applicable model check in one call, one failure listing all.

Also the one-check functions (``check_gradient_flow`` and friends), which run
a single check and raise :class:`ModelCheckFailure` with its diagnosis, and
:class:`ModelChecker`, what the ``model_checker`` fixture hands a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mltest.errors import MLUsageError
from mltest.model import checks as _checks
from mltest.model._core import (
    Batch,
    CheckResult,
    LossFn,
    ModelCheckFailure,
    OptimizerFactory,
    Predict,
    Session,
    TrainStep,
)

__all__ = [
    "CHECKS",
    "ModelChecker",
    "ModelReport",
    "check_batch_independence",
    "check_device_parity",
    "check_eval_determinism",
    "check_finite",
    "check_gradient_flow",
    "check_loss_decreases",
    "check_loss_inputs",
    "check_model",
    "check_output_spec",
    "check_overfit_batch",
    "check_parameters_update",
    "check_training_determinism",
    "check_weight_symmetry",
    "check_zero_grad",
]

#: Every check ``check_model`` knows, in the order it runs them.
CHECKS: tuple[str, ...] = (
    "output_spec",
    "loss_inputs",
    "finite",
    "gradient_flow",
    "parameters_update",
    "zero_grad",
    "loss_decreases",
    "overfit_batch",
    "weight_symmetry",
    "batch_independence",
    "eval_determinism",
    "training_determinism",
    "device_parity",
)

#: Steps of each of the two training-determinism runs.
_DETERMINISM_STEPS = 3

#: Checks that train; they are not run when values are already non-finite.
_TRAINING = ("loss_decreases", "overfit_batch", "weight_symmetry", "training_determinism")


@dataclass
class ModelReport:
    """What :func:`check_model` found when every check passed.

    Attributes:
        results: One :class:`CheckResult` per check that ran.
        not_applicable: Names of checks that did not apply (say, device parity with one device).

    Example:
        >>> report = check_model(model, batch, loss_fn, make_opt)  # doctest: +SKIP
        >>> [r.name for r in report.results][:3]  # doctest: +SKIP
        ['loss_inputs', 'finite', 'gradient_flow']
    """

    results: list[CheckResult] = field(default_factory=list)
    not_applicable: list[str] = field(default_factory=list)

    @property
    def passed(self) -> list[str]:
        """Names of the checks that passed."""
        return [r.name for r in self.results if r.passed]

    def summary(self) -> str:
        """One line per check: its verdict and headline."""
        lines = [f"{'ok  ' if r.passed else 'FAIL'} {r.name}: {r.headline}" for r in self.results]
        lines += [f"n/a  {name}" for name in self.not_applicable]
        return "\n".join(lines)


def _failure_message(failures: list[CheckResult], report: ModelReport, skipped: list[str]) -> str:
    ran = len(report.results)
    lines = [f"check_model: {len(failures)} of {ran} model checks failed"]
    for r in failures:
        lines.append("")
        lines.append(r.message())
    lines.append("")
    if report.passed:
        lines.append("passed: " + ", ".join(report.passed))
    if skipped:
        lines.append("not run: " + ", ".join(skipped))
    if report.not_applicable:
        lines.append("not applicable: " + ", ".join(report.not_applicable))
    return "\n".join(lines)


def _user_error(name: str, exc: Exception) -> CheckResult:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return CheckResult(
        name,
        False,
        f"raised {type(exc).__name__}: {text}",
        [f"run mltest.model.check_{name}(...) alone to see the traceback"],
    )


def check_model(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    *,
    train_step: TrainStep | None = None,
    batches: Any = None,
    predict: Predict | None = None,
    output_shape: Sequence[int | None] | None = None,
    output_dtype: torch.dtype | None = None,
    output_range: tuple[float, float] | None = None,
    probabilities: bool = False,
    frozen: Sequence[str] = (),
    ignore: Sequence[str] = (),
    devices: Sequence[str] = (),
    seed: int = 0,
    target_key: str = "labels",
    steps: int = 5,
    overfit_steps: int = 200,
    overfit_fraction: float = 0.1,
    rtol: float = 1e-3,
    atol: float = 1e-5,
    skip: Sequence[str] = (),
) -> ModelReport:
    """Run every applicable model check and report all failures at once.

    The model, its gradients, train/eval modes and the random generators are
    put back as they were found; optimizers come from ``optimizer_factory``
    (one per check), so the caller's own optimizer is never stepped.

    Args:
        model: The ``nn.Module`` under check, on any device.
        batch: A small training batch: a tensor, ``(inputs, targets)`` (inputs
            may be a tuple of positional arguments), or a dict of tensors whose
            ``target_key`` entry holds the targets (Hugging Face style).
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``.
        optimizer_factory: ``optimizer_factory(model) -> optimizer``.
        train_step: The project's own step, ``train_step(model, optimizer,
            batch, loss_fn) -> loss``; bugs inside it (a missing zero_grad,
            no ``optimizer.step()``) show up. Default: zero_grad, forward,
            backward, step.
        batches: Training batches (an iterable or ``get_batch(step)``); when
            given, the overfit check trains on them, so a broken data pipeline
            shows up.
        predict: The project's inference path, ``predict(model, inputs)``;
            when given, the determinism check calls it on a model left in
            training mode, so a forgotten ``model.eval()`` shows up.
        output_shape: Expected output shape, ``None`` for any size (``(None, 5)``).
        output_dtype: Expected output dtype.
        output_range: Expected ``(low, high)`` of every output value.
        probabilities: Whether outputs are probabilities (in [0, 1], rows sum to 1).
        frozen: Parameter names or globs that must not change (``"encoder"``,
            ``"*.bias"``); every other parameter must train.
        ignore: Parameter names or globs left out of the gradient checks.
        devices: Devices to compare with the model's own (``["cpu", "cuda"]``);
            unavailable ones are left out.
        seed: Seed for every random number the checks draw.
        target_key: Key of the targets in dict batches.
        steps: Optimizer steps for the loss-decrease check.
        overfit_steps: Step budget for the overfit check.
        overfit_fraction: The overfit check passes when the loss falls to this
            fraction of its starting value.
        rtol: Relative tolerance for device parity.
        atol: Absolute tolerance for device parity.
        skip: Names of checks not to run (see :data:`CHECKS`).

    Returns:
        A :class:`ModelReport` of every check that ran.

    Raises:
        ModelCheckFailure: When any check fails; its message lists each failed
            check with its diagnosis.
        MLUsageError: On bad input: no trainable parameters, an empty batch, a
            batch on another device, a loss that is not a scalar.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),
        ...                             torch.nn.Linear(8, 3))
        >>> batch = (torch.randn(8, 4), torch.arange(8) % 3)
        >>> report = check_model(model, batch, torch.nn.CrossEntropyLoss(),
        ...                      lambda m: torch.optim.Adam(m.parameters(), lr=1e-2))
        >>> "overfit_batch" in report.passed
        True
    """
    __tracebackhide__ = True
    unknown = sorted(set(skip) - set(CHECKS))
    if unknown:
        raise MLUsageError(f"skip: unknown check {unknown[0]!r}; known: {', '.join(CHECKS)}")
    session = Session(
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        batches=batches,
        predict=predict,
        seed=seed,
        target_key=target_key,
        frozen=frozen,
        ignore=ignore,
    )
    # One training run on the fixed batch serves the loss-decrease, overfit and
    # (first half of the) training-determinism checks: they start from the same
    # weights, seed and optimizer, so a run each would repeat the same steps.
    shared = {
        "max_steps": overfit_steps,
        "fraction": overfit_fraction,
        "record": steps,
        "snapshot": _DETERMINISM_STEPS,
    }
    report = ModelReport()
    failures: list[CheckResult] = []
    skipped: list[str] = []
    runs: dict[str, Callable[[], CheckResult | None]] = {
        "output_spec": lambda: _checks.run_output_spec(
            session,
            shape=output_shape,
            dtype=output_dtype,
            value_range=output_range,
            probabilities=probabilities,
        ),
        "loss_inputs": lambda: _checks.run_loss_inputs(session),
        "finite": lambda: _checks.run_finite(session),
        "gradient_flow": lambda: _checks.run_gradient_flow(session),
        "parameters_update": lambda: _checks.run_parameters_update(session),
        "zero_grad": lambda: _checks.run_zero_grad(session),
        "loss_decreases": lambda: _checks.run_loss_decreases(session, steps=steps, shared=shared),
        "overfit_batch": lambda: _checks.run_overfit_batch(
            session, max_steps=overfit_steps, fraction=overfit_fraction, shared=shared
        ),
        "weight_symmetry": lambda: _checks.run_weight_symmetry(session),
        "batch_independence": lambda: _checks.run_batch_independence(session),
        "eval_determinism": lambda: _checks.run_eval_determinism(session),
        "training_determinism": lambda: _checks.run_training_determinism(
            session, steps=_DETERMINISM_STEPS, shared=shared
        ),
        "device_parity": lambda: _checks.run_device_parity(
            session, devices=devices, rtol=rtol, atol=atol
        ),
    }
    try:
        loss_error = _preflight(session)
        if loss_error is not None:
            # Without a loss only the checks that need none can say why.
            for name in ("output_spec", "loss_inputs"):
                result = _safe(name, runs[name])
                if result is not None:
                    report.results.append(result)
                    if not result.passed:
                        failures.append(result)
            report.results.append(loss_error)
            failures.append(loss_error)
            skipped = [c for c in CHECKS if c not in ("output_spec", "loss_inputs")]
        else:
            for name in CHECKS:
                if name in skip:
                    continue
                if name in _TRAINING and any(f.name == "finite" for f in failures):
                    skipped.append(name)
                    continue
                result = _safe(name, runs[name])
                if result is None:
                    report.not_applicable.append(name)
                    continue
                report.results.append(result)
                if not result.passed:
                    failures.append(result)
    finally:
        session.close()
    for result in report.results:
        result.record()
    if failures:
        raise ModelCheckFailure(
            _failure_message(failures, report, skipped), failures, report.results
        )
    return report


def _safe(name: str, run: Callable[[], CheckResult | None]) -> CheckResult | None:
    try:
        return run()
    except MLUsageError:
        raise
    except Exception as exc:  # the user's model, loss or step raised: report it
        return _user_error(name, exc)


def _preflight(s: Session) -> CheckResult | None:
    """Forward and loss once: usage errors surface here; a raising loss becomes a failure."""
    s.reset()
    with torch.no_grad(), s.fixed_rng():
        out = s.run()
        try:
            loss = s.compute_loss(out, s.targets)
        except Exception as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return CheckResult(
                "loss",
                False,
                f"loss_fn(outputs, targets) raised {type(exc).__name__}: {text}",
                ["the other checks need a loss; fix the problems above first"],
            )
    s.validate_loss(loss)
    return None


# ---------------------------------------------------------------------------
# One check at a time
# ---------------------------------------------------------------------------


def _one(session: Session, run: Callable[[], CheckResult | None], name: str) -> CheckResult | None:
    __tracebackhide__ = True
    try:
        result = run()
    finally:
        session.close()
    if result is None:
        return None
    result.record()
    if not result.passed:
        raise ModelCheckFailure(result.message(), [result], [result])
    return result


def check_output_spec(
    model: nn.Module,
    batch: Batch,
    *,
    shape: Sequence[int | None] | None = None,
    dtype: torch.dtype | None = None,
    value_range: tuple[float, float] | None = None,
    probabilities: bool = False,
    dim: int = -1,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check the output's shape (None = any size), dtype, range, and probability rows.

    Raises:
        ModelCheckFailure: With a table of expected vs got.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(-1))
        >>> check_output_spec(m, torch.randn(2, 4), shape=(None, 3), probabilities=True).passed
        True
    """
    __tracebackhide__ = True
    s = Session(model, batch, target_key=target_key)
    return _one(
        s,
        lambda: _checks.run_output_spec(
            s,
            shape=shape,
            dtype=dtype,
            value_range=value_range,
            probabilities=probabilities,
            dim=dim,
        ),
        "output_spec",
    )


def check_loss_inputs(
    model: nn.Module, batch: Batch, loss_fn: LossFn, *, target_key: str = "labels"
) -> CheckResult | None:
    """Check what the loss is fed: logits not probabilities, enough classes, equal shapes.

    Catches softmax before ``CrossEntropyLoss``, a wrong output dimension and
    target-shape broadcasting (``MSELoss`` on ``(N, 1)`` vs ``(N,)``).

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(4, 1)
        >>> check_loss_inputs(m, (torch.randn(8, 4), torch.randn(8)), torch.nn.MSELoss())
        Traceback (most recent call last):
        ...
        mltest.model.ModelCheckFailure: [loss_inputs] target-shape broadcasting bug: ...
    """
    __tracebackhide__ = True
    s = Session(model, batch, loss_fn, target_key=target_key)
    return _one(s, lambda: _checks.run_loss_inputs(s), "loss_inputs")


def check_finite(
    model: nn.Module, batch: Batch, loss_fn: LossFn | None = None, *, target_key: str = "labels"
) -> CheckResult | None:
    """Check outputs, loss and gradients for NaN/Inf; name the first module that went bad.

    Example:
        >>> import torch
        >>> check_finite(torch.nn.Linear(4, 2), torch.randn(3, 4)).passed
        True
    """
    __tracebackhide__ = True
    s = Session(model, batch, loss_fn, target_key=target_key)
    return _one(s, lambda: _checks.run_finite(s), "finite")


def check_gradient_flow(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    *,
    ignore: Sequence[str] = (),
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that every trainable parameter gets a non-zero, finite gradient.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(4, 2)
        >>> check_gradient_flow(m, (torch.randn(3, 4), torch.tensor([0, 1, 1])),
        ...                     torch.nn.CrossEntropyLoss()).passed
        True
    """
    __tracebackhide__ = True
    s = Session(model, batch, loss_fn, ignore=ignore, target_key=target_key)
    return _one(s, lambda: _checks.run_gradient_flow(s), "gradient_flow")


def check_parameters_update(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    *,
    frozen: Sequence[str] = (),
    ignore: Sequence[str] = (),
    train_step: TrainStep | None = None,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that one step changes every trainable parameter and no frozen one.

    Failures name each parameter with its likely cause: not in the optimizer,
    ``requires_grad`` off, no gradient, ``lr=0``, ``optimizer.step()`` never called.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(4, 2)
        >>> check_parameters_update(m, (torch.randn(3, 4), torch.tensor([0, 1, 1])),
        ...     torch.nn.CrossEntropyLoss(), lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
        ... ).passed
        True
    """
    __tracebackhide__ = True
    s = Session(
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        frozen=frozen,
        ignore=ignore,
        target_key=target_key,
    )
    return _one(s, lambda: _checks.run_parameters_update(s), "parameters_update")


def check_zero_grad(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    train_step: TrainStep,
    *,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that ``train_step`` clears the previous step's gradients.

    Example:
        >>> def step(model, opt, batch, loss_fn):  # doctest: +SKIP
        ...     x, y = batch
        ...     loss = loss_fn(model(x), y); loss.backward(); opt.step()  # no zero_grad
        ...     return loss
        >>> check_zero_grad(model, batch, loss_fn, make_opt, step)  # doctest: +SKIP
        Traceback (most recent call last):
        ModelCheckFailure: [zero_grad] forgotten zero_grad: gradients accumulate ...
    """
    __tracebackhide__ = True
    s = Session(
        model, batch, loss_fn, optimizer_factory, train_step=train_step, target_key=target_key
    )
    return _one(s, lambda: _checks.run_zero_grad(s), "zero_grad")


def check_loss_decreases(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    *,
    steps: int = 5,
    train_step: TrainStep | None = None,
    seed: int = 0,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that the loss on the batch goes down after ``steps`` optimizer steps.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> m = torch.nn.Linear(4, 2)
        >>> check_loss_decreases(m, (torch.randn(8, 4), torch.arange(8) % 2),
        ...     torch.nn.CrossEntropyLoss(), lambda m: torch.optim.Adam(m.parameters(), lr=1e-2)
        ... ).passed
        True
    """
    __tracebackhide__ = True
    s = Session(
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        seed=seed,
        target_key=target_key,
    )
    return _one(s, lambda: _checks.run_loss_decreases(s, steps=steps), "loss_decreases")


def check_overfit_batch(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    *,
    max_steps: int = 200,
    fraction: float = 0.1,
    batches: Any = None,
    train_step: TrainStep | None = None,
    seed: int = 0,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that the loss on one small batch falls to ``fraction`` of its start.

    With ``batches``, train on those instead (a small, fixed dataset served by
    the project's pipeline); when that fails but the fixed batch overfits, the
    failure blames the data pipeline. On failure the message shows a few points
    of the loss curve and the likely causes.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> m = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        >>> check_overfit_batch(m, (torch.randn(8, 4), torch.arange(8) % 2),
        ...     torch.nn.CrossEntropyLoss(), lambda m: torch.optim.Adam(m.parameters(), lr=1e-2)
        ... ).passed
        True
    """
    __tracebackhide__ = True
    s = Session(
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        batches=batches,
        seed=seed,
        target_key=target_key,
    )
    return _one(
        s,
        lambda: _checks.run_overfit_batch(s, max_steps=max_steps, fraction=fraction),
        "overfit_batch",
    )


def check_weight_symmetry(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    *,
    steps: int = 3,
    train_step: TrainStep | None = None,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that no weight matrix has all-identical units that stay identical (zero/constant init).

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(4, 2)
        >>> check_weight_symmetry(m, (torch.randn(3, 4), torch.tensor([0, 1, 1])),
        ...     torch.nn.CrossEntropyLoss(), lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
        ... ).passed
        True
    """
    __tracebackhide__ = True
    s = Session(
        model, batch, loss_fn, optimizer_factory, train_step=train_step, target_key=target_key
    )
    return _one(s, lambda: _checks.run_weight_symmetry(s, steps=steps), "weight_symmetry")


def check_batch_independence(
    model: nn.Module, batch: Batch, *, seed: int = 0, target_key: str = "labels"
) -> CheckResult | None:
    """Check that output i does not depend on input j != i, with gradients.

    Float inputs are probed directly; integer inputs (token ids) at the
    output of the model's ``nn.Embedding``/``nn.EmbeddingBag`` layers.
    BatchNorm in train mode mixes examples on purpose: such models are
    re-checked in eval mode and pass with a note. Returns None (not
    applicable) for a batch of one or a model with nothing to probe.

    Example:
        >>> import torch
        >>> check_batch_independence(torch.nn.Linear(4, 2), torch.randn(3, 4)).passed
        True
    """
    __tracebackhide__ = True
    s = Session(model, batch, seed=seed, target_key=target_key)
    return _one(s, lambda: _checks.run_batch_independence(s), "batch_independence")


def check_eval_determinism(
    model: nn.Module,
    batch: Batch,
    *,
    predict: Predict | None = None,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that inference is deterministic: two eval-mode passes (or ``predict`` calls) agree.

    With ``predict``, the model is left in training mode first (as after a
    training loop), so a ``predict`` that forgets ``model.eval()`` fails.

    Example:
        >>> import torch
        >>> check_eval_determinism(torch.nn.Linear(4, 2), torch.randn(3, 4)).passed
        True
    """
    __tracebackhide__ = True
    s = Session(model, batch, predict=predict, target_key=target_key)
    return _one(s, lambda: _checks.run_eval_determinism(s), "eval_determinism")


def check_training_determinism(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    *,
    steps: int = 3,
    train_step: TrainStep | None = None,
    seed: int = 0,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that two seeded runs of ``steps`` steps give bit-identical parameters.

    On CUDA the runs use deterministic mode (:func:`mltest.repro.deterministic_mode`).

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(4, 2)
        >>> check_training_determinism(m, (torch.randn(3, 4), torch.tensor([0, 1, 1])),
        ...     torch.nn.CrossEntropyLoss(), lambda m: torch.optim.SGD(m.parameters(), lr=0.1)
        ... ).passed
        True
    """
    __tracebackhide__ = True
    s = Session(
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        seed=seed,
        target_key=target_key,
    )
    return _one(s, lambda: _checks.run_training_determinism(s, steps=steps), "training_determinism")


def check_device_parity(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None = None,
    optimizer_factory: OptimizerFactory | None = None,
    *,
    devices: Sequence[str] = ("cuda",),
    rtol: float = 1e-3,
    atol: float = 1e-5,
    train_step: TrainStep | None = None,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that the model agrees across devices: forward, and one training step.

    Compares the model's own device with each of ``devices`` (and with the CPU
    when the model is elsewhere) within ``rtol``/``atol``; unavailable devices
    are left out, and None (not applicable) is returned when none is left.

    Example:
        >>> import torch
        >>> check_device_parity(torch.nn.Linear(4, 2), torch.randn(3, 4))  # no CUDA here
    """
    __tracebackhide__ = True
    s = Session(
        model, batch, loss_fn, optimizer_factory, train_step=train_step, target_key=target_key
    )
    return _one(
        s,
        lambda: _checks.run_device_parity(s, devices=devices, rtol=rtol, atol=atol),
        "device_parity",
    )


class ModelChecker:
    """:func:`check_model` bound to a test's seed and selected devices.

    What the ``model_checker`` fixture returns; keyword arguments given at
    call time win over the bound ones.

    Example:
        >>> def test_classifier(model_checker):  # doctest: +SKIP
        ...     model_checker(Net(), batch, nn.CrossEntropyLoss(),
        ...                   lambda m: torch.optim.Adam(m.parameters(), lr=1e-2))
    """

    def __init__(self, *, seed: int = 0, devices: Sequence[str] = ()) -> None:
        self.seed = seed
        self.devices = list(devices)

    def __call__(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: LossFn,
        optimizer_factory: OptimizerFactory,
        **options: Any,
    ) -> ModelReport:
        """Run :func:`check_model` with this test's seed and devices."""
        __tracebackhide__ = True
        options.setdefault("seed", self.seed)
        options.setdefault("devices", self.devices)
        return check_model(model, batch, loss_fn, optimizer_factory, **options)
