"""``check_model``: every applicable model check in one call, one failure listing all.

Also the one-check functions (``check_gradient_flow`` and friends), which run
a single check and raise :class:`ModelCheckFailure` with its diagnosis, and
:class:`ModelChecker`, what the ``model_checker`` fixture hands a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    OutputKey,
    Predict,
    Session,
    TrainStep,
)

__all__ = [
    "CHECKS",
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
    "causality",
    "padding",
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
    #: Wall-clock seconds each check took (a check that reuses the shared training
    #: run is charged only for what it adds; the first to need the run pays for it).
    seconds: dict[str, float] = field(default_factory=dict)

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


@contextmanager
def threads(num_threads: int | None) -> Iterator[None]:
    """Run a block with ``num_threads`` torch intra-op threads, then restore the caller's.

    The checks' batches are tiny: on a shared CPU one thread beats several
    spinning against each other (see ``benchmarks/model_checks.py``).

    Example:
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> with threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    if num_threads is not None and num_threads != before:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def check_model(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None,
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
    output_key: OutputKey = None,
    loss_key: str | int = "loss",
    attention_mask_key: str = "attention_mask",
    pad_id: int | None = None,
    causal: bool = False,
    sequence_dim: int | None = None,
    accumulation_steps: int = 1,
    overfit_extend: float = 4.0,
    num_threads: int | None = 1,
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
        loss_fn: ``loss_fn(outputs, targets) -> scalar tensor``, or None when
            the model computes its own loss from the labels in the batch: every
            forward then gets the whole batch (labels included) and the loss
            is read from the output at ``loss_key``.
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
        output_key: Which output the checks inspect: a dict key or attribute
            (``"logits"``), a tuple index, or ``output_key(outputs) -> tensor``.
            Default: the output itself, ``.logits``, or a tuple's first tensor.
        loss_key: Where the model's own loss is (``loss_fn=None``): a key or
            attribute, or a tuple index (nanoGPT's ``(logits, loss)``: 1).
        attention_mask_key: Key of the attention mask in dict batches; when
            the batch has it, the padding check runs.
        pad_id: The padding token id; turns on the padding check.
        causal: The model is causal: the causality check runs.
        sequence_dim: The sequence dimension (default 1); giving it turns on
            the causality check too.
        accumulation_steps: ``train_step`` accumulates this many micro-batches
            on purpose and steps on the last; a step of the checks is then k
            calls, and zero_grad checks that nothing survives a cycle.
        overfit_extend: While the loss is still clearly falling at the end of
            ``overfit_steps``, the overfit check goes on, up to this many times
            the budget.
        num_threads: Torch intra-op threads while the checks run (their
            batches are tiny; one is fastest on a shared CPU); the caller's
            setting is restored. None leaves it alone.

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
    with threads(num_threads):
        return _check_model(
            model,
            batch,
            loss_fn,
            optimizer_factory,
            train_step=train_step,
            batches=batches,
            predict=predict,
            output_shape=output_shape,
            output_dtype=output_dtype,
            output_range=output_range,
            probabilities=probabilities,
            frozen=frozen,
            ignore=ignore,
            devices=devices,
            seed=seed,
            target_key=target_key,
            steps=steps,
            overfit_steps=overfit_steps,
            overfit_fraction=overfit_fraction,
            rtol=rtol,
            atol=atol,
            skip=skip,
            overfit_extend=overfit_extend,
            session_options={
                "model_loss": loss_fn is None,
                "output_key": output_key,
                "loss_key": loss_key,
                "attention_mask_key": attention_mask_key,
                "pad_id": pad_id,
                "causal": causal,
                "sequence_dim": sequence_dim,
                "accumulation_steps": accumulation_steps,
            },
        )


def _check_model(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None,
    optimizer_factory: OptimizerFactory,
    *,
    train_step: TrainStep | None,
    batches: Any,
    predict: Predict | None,
    output_shape: Sequence[int | None] | None,
    output_dtype: torch.dtype | None,
    output_range: tuple[float, float] | None,
    probabilities: bool,
    frozen: Sequence[str],
    ignore: Sequence[str],
    devices: Sequence[str],
    seed: int,
    target_key: str,
    steps: int,
    overfit_steps: int,
    overfit_fraction: float,
    rtol: float,
    atol: float,
    skip: Sequence[str],
    overfit_extend: float,
    session_options: dict[str, Any],
) -> ModelReport:
    __tracebackhide__ = True
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
        **session_options,
    )
    # One training run on the fixed batch serves the loss-decrease, overfit and
    # (first half of the) training-determinism checks: they start from the same
    # weights, seed and optimizer, so a run each would repeat the same steps.
    shared = {
        "max_steps": overfit_steps,
        "fraction": overfit_fraction,
        "record": steps,
        "snapshot": _DETERMINISM_STEPS,
        "extend": overfit_extend,
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
            session,
            max_steps=overfit_steps,
            fraction=overfit_fraction,
            extend=overfit_extend,
            shared=shared,
        ),
        "weight_symmetry": lambda: _checks.run_weight_symmetry(session),
        "batch_independence": lambda: _checks.run_batch_independence(session),
        "causality": lambda: _checks.run_causality(session),
        "padding": lambda: _checks.run_padding(session),
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
                started = time.perf_counter()
                result = _safe(name, runs[name])
                report.seconds[name] = time.perf_counter() - started
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
    model: nn.Module, batch: Batch, loss_fn: LossFn | None, *, target_key: str = "labels"
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
    s = Session(model, batch, loss_fn, target_key=target_key, model_loss=loss_fn is None)
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
    loss_fn: LossFn | None,
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
    s = Session(
        model, batch, loss_fn, ignore=ignore, target_key=target_key, model_loss=loss_fn is None
    )
    return _one(s, lambda: _checks.run_gradient_flow(s), "gradient_flow")


def check_parameters_update(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None,
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
        model_loss=loss_fn is None,
    )
    return _one(s, lambda: _checks.run_parameters_update(s), "parameters_update")


def check_zero_grad(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn,
    optimizer_factory: OptimizerFactory,
    train_step: TrainStep,
    *,
    accumulation_steps: int = 1,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that ``train_step`` clears the previous step's gradients.

    Holds under gradient clipping (``clip_grad_norm_``, ``clip_grad_value_``)
    and a ``GradScaler``: the step is replayed with the previous gradients
    left in ``.grad`` and must see the same gradients at ``optimizer.step()``.
    With ``accumulation_steps=k`` the step accumulates k micro-batches on
    purpose: one step is k calls, and no gradient may survive a cycle.

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
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        target_key=target_key,
        model_loss=loss_fn is None,
        accumulation_steps=accumulation_steps,
    )
    return _one(s, lambda: _checks.run_zero_grad(s), "zero_grad")


def check_loss_decreases(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None,
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
        model_loss=loss_fn is None,
    )
    return _one(s, lambda: _checks.run_loss_decreases(s, steps=steps), "loss_decreases")


def check_overfit_batch(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None,
    optimizer_factory: OptimizerFactory,
    *,
    max_steps: int = 200,
    fraction: float = 0.1,
    extend: float = 4.0,
    batches: Any = None,
    train_step: TrainStep | None = None,
    seed: int = 0,
    target_key: str = "labels",
) -> CheckResult | None:
    """Check that the loss on one small batch falls to ``fraction`` of its start.

    With ``batches``, train on those instead (a small, fixed dataset served by
    the project's pipeline); when that fails but the fixed batch overfits, the
    failure blames the data pipeline. While the loss is still clearly falling
    at ``max_steps`` (5% over the last 50 steps) training goes on, up to
    ``extend * max_steps``. On failure the message shows a few points of the
    loss curve and says whether the loss was still falling, flat, or stuck at
    a known floor (``log(C)``: a uniform prediction; ``log(e + C - 1) - 1``:
    probabilities fed as logits), with the learning rate.

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
        model_loss=loss_fn is None,
    )
    return _one(
        s,
        lambda: _checks.run_overfit_batch(s, max_steps=max_steps, fraction=fraction, extend=extend),
        "overfit_batch",
    )


def check_weight_symmetry(
    model: nn.Module,
    batch: Batch,
    loss_fn: LossFn | None,
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
        model,
        batch,
        loss_fn,
        optimizer_factory,
        train_step=train_step,
        target_key=target_key,
        model_loss=loss_fn is None,
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
    loss_fn: LossFn | None,
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
        model_loss=loss_fn is None,
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


def check_causality(
    model: nn.Module,
    batch: Batch,
    *,
    sequence_dim: int = 1,
    seed: int = 0,
    target_key: str = "labels",
    **options: Any,
) -> CheckResult | None:
    """Check that the output at position t depends on no input after t (a causal model).

    Gradients are taken at float inputs and at the outputs of the embedding
    layers that read the batch's token ids; without such a layer, one token at
    a time is changed and earlier positions watched. The failure names the
    leaking positions ("position 3 reads position 4: causal mask off by one?").

    Args:
        model: The model, called as the batch says (see :func:`check_model`).
        batch: Token ids ``(batch, time)`` or embeddings ``(batch, time, dim)``, with targets.
        sequence_dim: The time dimension of inputs and outputs.
        seed: Seed for the random weights of the probe.
        target_key: Key of the targets in dict batches.
        **options: ``output_key=``, ``loss_fn=None``-style ``model_loss=True``,
            ``attention_mask_key=`` (see :class:`~mltest.model._core.Session`).

    Example:
        >>> import torch
        >>> rnn = torch.nn.GRU(4, 8, batch_first=True)  # causal by construction
        >>> class Last(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.rnn = rnn
        ...     def forward(self, x):
        ...         return self.rnn(x)[0]
        >>> check_causality(Last(), torch.randn(2, 6, 4)).passed
        True
    """
    __tracebackhide__ = True
    s = Session(
        model,
        batch,
        seed=seed,
        target_key=target_key,
        causal=True,
        sequence_dim=sequence_dim,
        **options,
    )
    return _one(s, lambda: _checks.run_causality(s), "causality")


def check_padding(
    model: nn.Module,
    batch: Batch,
    *,
    pad_id: int | None = None,
    attention_mask_key: str = "attention_mask",
    target_key: str = "labels",
    **options: Any,
) -> CheckResult | None:
    """Check that padding moves no output of a real position nor a pooled output.

    Appends padding (``pad_id``, mask 0) with two different contents and
    changes the content of the batch's padded positions; outputs of real
    positions (or per-example outputs, for a classifier) must stay put. Runs
    in eval mode. Returns None when the batch has no attention mask and no
    ``pad_id`` is given.

    Args:
        model: The model, called as the batch says (see :func:`check_model`).
        batch: A dict batch with ``input_ids`` and the attention mask, or token ids.
        pad_id: The padding token id (needed when there is no mask).
        attention_mask_key: Key of the attention mask (1 real, 0 padding).
        target_key: Key of the targets in dict batches.
        **options: ``output_key=``, ``model_loss=True``, ``sequence_dim=``.

    Example:
        >>> batch = {"input_ids": ids, "attention_mask": mask, "labels": y}  # doctest: +SKIP
        >>> check_padding(classifier, batch).passed  # doctest: +SKIP
        True
    """
    __tracebackhide__ = True
    s = Session(
        model,
        batch,
        target_key=target_key,
        pad_id=pad_id,
        attention_mask_key=attention_mask_key,
        **options,
    )
    return _one(s, lambda: _checks.run_padding(s), "padding")


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
        loss_fn: LossFn | None,
        optimizer_factory: OptimizerFactory,
        **options: Any,
    ) -> ModelReport:
        """Run :func:`check_model` with this test's seed and devices."""
        __tracebackhide__ = True
        options.setdefault("seed", self.seed)
        options.setdefault("devices", self.devices)
        return check_model(model, batch, loss_fn, optimizer_factory, **options)
