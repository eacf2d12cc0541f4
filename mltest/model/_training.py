"""Training progress: the loss decreases, one batch can be overfit, no weight symmetry."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from mltest.model._common import (
    _looks_like_probabilities,
)
from mltest.model._core import (
    CheckResult,
    Session,
    batch_stream,
    fmt,
    is_finite,
    shape_str,
    table,
)

# ---------------------------------------------------------------------------
# Training progress
# ---------------------------------------------------------------------------


def _curve(points: list[tuple[int, float]], keep: int = 6) -> str:
    if len(points) > keep:
        idx = sorted({round(i * (len(points) - 1) / (keep - 1)) for i in range(keep)})
        points = [points[i] for i in idx]
    return ", ".join(f"step {i}: {fmt(v)}" for i, v in points)


def run_loss_decreases(
    s: Session, *, steps: int = 5, shared: dict[str, Any] | None = None
) -> CheckResult:
    """The loss on the batch goes down after ``steps`` optimizer steps.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_loss_decreases(s).passed  # doctest: +SKIP
        True
    """
    if shared is not None:
        run = shared_run(s, **shared)
        before = run.start
        curve: list[tuple[int, float]] = [(0, before)]
        curve += [(i, run.losses[i]) for i in range(1, steps + 1) if i in run.losses]
    else:
        s.reset()
        opt = s.new_optimizer()
        before = s.measure(s.batch)
        curve = [(0, before)]
        for i in range(steps):
            s.step(opt, s.batch)
            curve.append((i + 1, s.measure(s.batch)))
    after = curve[-1][1]
    metrics = {"loss_before": before, "loss_after": after, "steps": steps}
    from mltest.report import record_figure

    record_figure(
        "loss_decreases.loss",
        "line",
        {"series": {"loss": [v for _, v in curve]}, "x": [i for i, _ in curve], "x_label": "step"},
        title=f"loss over {steps} steps",
        check="loss_decreases",
    )
    if is_finite(after) and is_finite(before) and after < before:
        return CheckResult(
            "loss_decreases",
            True,
            f"loss fell from {fmt(before)} to {fmt(after)} in {steps} steps",
            metrics=metrics,
        )
    details = [f"loss curve: {_curve(curve)}"]
    if not is_finite(after):
        details.append("the loss went non-finite: see the finite check; lower the learning rate")
    elif after == before:
        details.append(
            "the loss did not move at all: nothing was updated (learning rate 0, "
            "optimizer.step() not called, gradients cut): see parameters_update"
        )
    else:
        details.append(
            "the loss went up: learning rate too high, or the loss has the wrong sign "
            "(maximising), or gradients accumulate (missing zero_grad)"
        )
    return CheckResult(
        "loss_decreases",
        False,
        f"loss did not decrease after {steps} steps: {fmt(before)} -> {fmt(after)}",
        details,
        metrics=metrics,
        examples=[{"step": i, "loss": v} for i, v in curve],
    )


@dataclass
class _Run:
    """One training run from the starting point, with what the checks need of it."""

    ok: bool
    curve: list[tuple[int, float]]
    start: float
    final: float
    steps: int
    losses: dict[int, float] = field(default_factory=dict)
    params: dict[str, torch.Tensor] | None = None
    #: The loss each step reported (or None), for the figure.
    history: list[float | None] = field(default_factory=list)
    #: Steps added beyond the budget while the loss was still falling.
    extended: int = 0
    lr: float | None = None


#: Steps between two loss measurements of the overfit run.
_EVERY = 25


def _falling(curve: list[tuple[int, float]]) -> bool:
    """Whether the loss fell clearly (5% or more) over the last two measurements (50 steps)."""
    marks = [v for i, v in curve if i % _EVERY == 0]
    return len(marks) >= 3 and is_finite(marks[-1]) and marks[-1] < 0.95 * marks[-3]


def _overfit(
    s: Session,
    get_batch: Callable[[int], Any],
    max_steps: int,
    fraction: float,
    *,
    record: int = 0,
    snapshot: int = 0,
    extend: float = 4.0,
) -> _Run:
    """Train toward ``fraction`` of the starting loss.

    Stops at the goal, on a plateau, or at ``max_steps``; while the loss is
    still clearly falling it goes on, up to ``extend * max_steps`` steps.
    Also measures the loss after each of the first ``record`` steps and copies
    the parameters after step ``snapshot``.
    """
    s.reset()
    opt = s.new_optimizer()
    first = get_batch(0)
    start = s.measure(first)
    goal = max(fraction * start, 1e-4) if is_finite(start) else 0.0
    run = _Run(False, [(0, start)], start, start, 0)
    lrs = {float(g["lr"]) for g in opt.param_groups if isinstance(g.get("lr"), int | float)}
    run.lr = lrs.pop() if len(lrs) == 1 else None
    last_batch = first
    reached = False
    cap = max(max_steps, int(max_steps * max(extend, 1.0)))
    for step in range(cap):
        b = first if step == 0 else get_batch(step)
        reported = s.step(opt, b)
        run.history.append(reported)
        run.steps = steps = step + 1
        last_batch = b
        if steps <= record:
            run.losses[steps] = s.measure(b)
        if steps == snapshot:
            run.params = {n: p.detach().clone() for n, p in s.model.named_parameters()}
        if reached:
            if steps >= max(record, snapshot):
                break
            continue
        if reported is not None and not is_finite(reported):
            run.final = reported
            run.curve.append((steps, reported))
            break
        check_now = (
            (reported is not None and reported <= goal) or steps % _EVERY == 0 or steps == max_steps
        )
        if check_now:
            run.final = run.losses.get(steps, None) or s.measure(last_batch)
            run.curve.append((steps, run.final))
            if not is_finite(run.final) or run.final <= goal:
                reached = True
            elif steps >= max_steps:
                # Out of budget: go on only while the loss is still clearly falling.
                reached = not _falling(run.curve)
                if not reached and steps % _EVERY == 0:
                    run.extended = steps + _EVERY - max_steps
            else:
                # A plateau: no 1% gain over the last two checkpoints (50 steps) or worse.
                marks = [v for i, v in run.curve if i % _EVERY == 0]
                reached = len(marks) >= 3 and marks[-1] > 0.99 * min(marks[:-2])
            if reached and steps >= max(record, snapshot):
                break
    run.extended = max(0, run.steps - max_steps)
    run.ok = is_finite(run.final) and run.final <= goal
    return run


def shared_run(
    s: Session,
    *,
    max_steps: int,
    fraction: float,
    record: int,
    snapshot: int,
    extend: float = 4.0,
) -> _Run:
    """The overfit run on the fixed batch, made once per session.

    The loss-decrease, overfit and training-determinism checks share it.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> shared_run(s, max_steps=200, fraction=0.1, record=5, snapshot=3).ok  # doctest: +SKIP
        True
    """
    key = ("fixed-batch run", max_steps, fraction, record, snapshot, extend)
    if key not in s.cache:
        s.cache[key] = _overfit(
            s,
            lambda step: s.batch,
            max_steps,
            fraction,
            record=record,
            snapshot=snapshot,
            extend=extend,
        )
    run: _Run = s.cache[key]
    return run


def _figure(name: str, run: _Run, title: str, caption: str, limit: int | None = None) -> None:
    """Record the run's loss curve for the report (per-step losses when the step reports them)."""
    from mltest.report import record_figure

    history = run.history[:limit] if limit is not None else run.history
    if history and all(v is not None and math.isfinite(v) for v in history):
        series = [run.start, *[float(v) for v in history if v is not None]]
        x = list(range(len(series)))
    else:
        points = [(i, v) for i, v in run.curve if limit is None or i <= limit]
        series, x = [v for _, v in points], [i for i, _ in points]
    if not series:
        return
    record_figure(
        f"{name}.loss",
        "line",
        {"series": {"loss": series}, "x": x, "x_label": "step", "y_label": "loss"},
        title=title,
        check=name,
        caption=caption,
    )


def _classes(s: Session) -> int | None:
    """Scores per example in the output (its last dim), for the known loss floors."""
    with torch.no_grad():
        s.reset(train=False)
        out = s.pick(s.run())
    if out is None or out.dim() < 2 or not out.is_floating_point() or out.shape[-1] < 2:
        return None
    return int(out.shape[-1])


def _diagnose(s: Session, run: _Run, max_steps: int) -> tuple[str, list[str]]:
    """Why the overfit run failed: still falling, flat, or stuck at a known floor."""
    lr = f"lr={fmt(run.lr)}" if run.lr is not None else "the learning rate"
    final, start = run.final, run.start
    classes = _classes(s)
    if classes is not None and is_finite(final):
        uniform = math.log(classes)
        double = math.log(math.e + classes - 1) - 1
        if abs(final - double) <= 0.03 * double + 1e-3:
            return (
                f"stuck at {fmt(double)} = log(e + C - 1) - 1 (C = {classes}), the lowest "
                "cross-entropy of probabilities fed as logits: softmax before the loss",
                [
                    "cross_entropy applies log_softmax itself; on probabilities a perfect "
                    f"prediction still costs {fmt(double)}",
                    "fix: pass the raw logits to the loss (no softmax in forward nor in loss_fn)",
                ],
            )
        if abs(final - uniform) <= 0.02 * uniform:
            return (
                f"stuck at {fmt(uniform)} = log({classes}), the loss of a uniform prediction",
                [
                    "the model predicts the same scores whatever the input: outputs detached "
                    "from the inputs, a dead layer, or targets that carry no signal",
                    f"if the curve never moved, try a higher {lr}",
                ],
            )
    if not is_finite(final):
        return "the loss went non-finite", [f"lower {lr}; see the finite check"]
    if _falling(run.curve):
        return (
            f"still falling when the budget ran out ({run.steps} steps, "
            f"{run.extended} past overfit_steps={max_steps})",
            [
                f"raise {lr} or overfit_steps; dropout and weight decay slow memorising one "
                "batch down",
            ],
        )
    if final > 0.9 * start:
        return "flat: it barely moved from its start", [
            f"{lr} too low, or nothing trains: see gradient_flow and parameters_update",
        ]
    return "stalled above the goal", [f"{lr} too high (the curve jumps) or too low"]


def run_overfit_batch(
    s: Session,
    *,
    max_steps: int = 200,
    fraction: float = 0.1,
    extend: float = 4.0,
    shared: dict[str, Any] | None = None,
) -> CheckResult:
    """The loss on one small batch (or the ``batches`` stream) falls near zero within budget.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_overfit_batch(s).passed  # doctest: +SKIP
        True
    """
    stream = s.batches is not None
    if stream:
        run = _overfit(s, batch_stream(s.batches), max_steps, fraction, extend=extend)
    elif shared is not None:
        run = shared_run(s, **shared)
    else:
        run = _overfit(s, lambda step: s.batch, max_steps, fraction, extend=extend)
    ok, curve, start, final, steps = run.ok, run.curve, run.start, run.final, run.steps
    metrics = {
        "loss_start": start,
        "loss_final": final,
        "steps": steps,
        "extended_steps": run.extended,
        "source": "batches" if stream else "batch",
    }
    what = "the batches from `batches`" if stream else "one batch"
    _figure(
        "overfit_batch",
        run,
        f"overfit {what}",
        f"goal: {fmt(max(fraction * start, 1e-4))}" if is_finite(start) else "",
    )
    if ok:
        more = f" ({run.extended} past the budget while still falling)" if run.extended else ""
        return CheckResult(
            "overfit_batch",
            True,
            f"overfits {what}: loss {fmt(start)} -> {fmt(final)} in {steps} steps{more}",
            metrics=metrics,
        )
    details = [f"loss curve: {_curve(curve)}", "likely causes:"]
    if stream:
        fixed = (
            shared_run(s, **shared)
            if shared is not None
            else _overfit(s, lambda step: s.batch, max_steps, fraction, extend=extend)
        )
        ok_fixed, fstart, ffinal, fsteps = fixed.ok, fixed.start, fixed.final, fixed.steps
        metrics["fixed_batch_loss_final"] = ffinal
        if ok_fixed:
            details = [
                f"loss curve on `batches`: {_curve(curve)}",
                f"the model does overfit the fixed batch: {fmt(fstart)} -> {fmt(ffinal)} in "
                f"{fsteps} steps, so the data pipeline is the suspect:",
                "- labels shuffled independently of inputs (inputs and labels indexed by "
                "different permutations)",
                "- labels taken from another split or misaligned after filtering/sorting",
                "- augmentation so strong the inputs carry no signal",
            ]
            return CheckResult(
                "overfit_batch",
                False,
                f"cannot overfit the batches from `batches` ({fmt(start)} -> {fmt(final)} after "
                f"{steps} steps) although it overfits the fixed batch: the data pipeline breaks "
                "the input-label pairing",
                details,
                metrics=metrics,
                examples=[{"step": i, "loss": v} for i, v in curve],
            )
    verdict, advice = _diagnose(s, run, max_steps)
    metrics["verdict"] = verdict
    details = [f"loss curve: {_curve(curve)}", f"the loss is {verdict}", *advice, "likely causes:"]
    out = None
    with torch.no_grad():
        s.reset(train=False)
        out = s.pick(s.run())
    if out is not None and _looks_like_probabilities(out, 1 if out.dim() >= 2 else -1):
        details.append(
            "- the outputs are already probabilities (rows sum to 1): softmax before a loss "
            "that expects logits (CrossEntropyLoss)"
        )
    details += [
        "- learning rate too low for the step budget, or too high (the curve jumps)",
        "- targets that do not match the outputs (shape broadcasting, wrong label encoding)",
        "- gradients cut or parameters not trained: see gradient_flow and parameters_update",
        "- regularisation too strong for one batch (dropout, weight decay), or the model too small",
        f"next: raise overfit_steps (now {max_steps}) only if the curve is still falling",
    ]
    return CheckResult(
        "overfit_batch",
        False,
        f"cannot overfit {what}: loss {fmt(start)} -> {fmt(final)} after {steps} steps "
        f"(goal <= {fmt(max(fraction * start, 1e-4))})",
        details,
        metrics=metrics,
        examples=[{"step": i, "loss": v} for i, v in curve],
    )


def run_weight_symmetry(s: Session, *, steps: int = 3) -> CheckResult | None:
    """Weight matrices whose units (rows) are all identical and stay identical when trained.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_weight_symmetry(s).passed  # doctest: +SKIP
        True
    """

    def symmetric() -> list[str]:
        found = []
        for n, p in s.trainable():
            if p.dim() >= 2 and p.shape[0] >= 2:
                w = p.detach().flatten(1)
                if bool((w == w[:1]).all()):
                    found.append(n)
        return found

    s.reset()
    initial = symmetric()
    if not initial:
        return CheckResult("weight_symmetry", True, "no weight matrix starts with identical units")
    opt = s.new_optimizer()
    for _ in range(steps):
        s.step(opt, s.batch)
    still = [n for n in symmetric() if n in initial]
    if not still:
        return CheckResult(
            "weight_symmetry",
            True,
            f"{len(initial)} weight matrices start with identical units but diverge when trained",
        )
    params = dict(s.model.named_parameters())
    rows = [
        (
            n,
            shape_str(params[n].shape),
            params[n].shape[0],
            fmt(float(params[n].detach().flatten()[0])),
        )
        for n in still
    ]
    return CheckResult(
        "weight_symmetry",
        False,
        f"zero-init symmetry: all units of {len(still)} weight matrices are identical and stay "
        f"identical after {steps} steps",
        [
            *table(["parameter", "shape", "units", "value [0]"], rows),
            "identical units get identical gradients, so they never learn different features",
            "likely cause: zero or constant initialisation (nn.init.zeros_/constant_); use "
            "the default init or nn.init.kaiming_uniform_/xavier_uniform_",
        ],
        metrics={"symmetric": len(still)},
        examples=[{"parameter": r[0], "shape": r[1]} for r in rows],
    )
