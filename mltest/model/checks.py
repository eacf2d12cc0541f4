"""The model checks, each a function of a :class:`~mltest.model._core.Session`.

Each ``run_*`` function starts from the session's starting point
(``session.reset()``), does its work, and returns a :class:`CheckResult`, or
None when the check does not apply (say, batch independence for a batch of one).
They never restore the caller's state themselves: the session does that once,
on close. The public one-line checks (``check_*``) and :func:`check_model`
wrap them.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mltest.model._core import (
    CheckResult,
    Session,
    batch_stream,
    fmt,
    forward,
    is_finite,
    matches,
    output_tensor,
    shape_str,
    split_batch,
    table,
    tensors_in,
    to_device,
)

__all__ = [
    "run_batch_independence",
    "run_device_parity",
    "run_eval_determinism",
    "run_finite",
    "run_gradient_flow",
    "run_loss_decreases",
    "run_loss_inputs",
    "run_output_spec",
    "run_overfit_batch",
    "run_parameters_update",
    "run_training_determinism",
    "run_weight_symmetry",
    "run_zero_grad",
]

_DROPOUT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_REGRESSION_LOSSES = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
)


def _module_names(model: nn.Module) -> dict[int, str]:
    return {id(m): (n or f"<root> ({type(model).__name__})") for n, m in model.named_modules()}


def _label(names: dict[int, str], module: nn.Module) -> str:
    name = names.get(id(module), "?")
    return name if name.startswith("<root>") else f"{name} ({type(module).__name__})"


@contextmanager
def _hooks(model: nn.Module, hook: Callable[[nn.Module, Any, Any], None]) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _looks_like_probabilities(out: torch.Tensor, dim: int) -> bool:
    if not out.is_floating_point() or out.dim() < 2 or out.shape[dim] < 2:
        return False
    o = out.detach().float()
    if o.min() < 0 or o.max() > 1:
        return False
    return bool(torch.allclose(o.sum(dim), torch.ones_like(o.sum(dim)), atol=1e-4))


def _is_class_targets(targets: Any) -> bool:
    return (
        isinstance(targets, torch.Tensor)
        and not targets.is_floating_point()
        and not targets.is_complex()
        and targets.dtype != torch.bool
    )


# ---------------------------------------------------------------------------
# Output spec and loss inputs
# ---------------------------------------------------------------------------


def run_output_spec(
    s: Session,
    *,
    shape: Sequence[int | None] | None = None,
    dtype: torch.dtype | None = None,
    value_range: tuple[float, float] | None = None,
    probabilities: bool = False,
    dim: int = -1,
) -> CheckResult | None:
    """Shape (None for any size), dtype, value range, probability rows summing to 1.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_output_spec(s).passed  # doctest: +SKIP
        True
    """
    if shape is None and dtype is None and value_range is None and not probabilities:
        return None
    s.reset(train=False)
    with torch.no_grad():
        out = output_tensor(forward(s.model, s.inputs))
    if out is None:
        return CheckResult(
            "output_spec",
            False,
            "the model's output is not a tensor (nor has .logits): cannot check its spec",
        )
    rows: list[list[str]] = []
    if shape is not None:
        want = tuple(shape)
        ok = len(want) == out.dim() and all(
            w is None or w in (-1, g) for w, g in zip(want, out.shape, strict=False)
        )
        if not ok:
            pretty = "(" + ", ".join("*" if w in (None, -1) else str(w) for w in want) + ")"
            rows.append(["shape", pretty, shape_str(out.shape)])
    if dtype is not None and out.dtype != dtype:
        rows.append(["dtype", str(dtype), str(out.dtype)])
    o = out.detach().float()
    if value_range is not None:
        lo, hi = value_range
        bad = (o < lo) | (o > hi) | o.isnan()
        if bool(bad.any()):
            rows.append(
                [
                    "range",
                    f"[{fmt(lo)}, {fmt(hi)}]",
                    f"{int(bad.sum())} values outside, min {fmt(float(o.min()))}, "
                    f"max {fmt(float(o.max()))}",
                ]
            )
    if probabilities:
        sums = o.sum(dim)
        off = (sums - 1).abs() > 1e-4
        if bool((o < 0).any() or (o > 1).any()):
            rows.append(
                [
                    "probabilities",
                    "values in [0, 1]",
                    f"min {fmt(float(o.min()))}, max {fmt(float(o.max()))}",
                ]
            )
        if bool(off.any()):
            first = [int(i) for i in off.flatten().nonzero().flatten()[:3]]
            got = ", ".join(f"row {i}: {fmt(float(sums.flatten()[i]))}" for i in first)
            rows.append(
                [
                    "probabilities",
                    f"sum to 1 along dim {dim}",
                    f"{int(off.sum())} rows do not ({got})",
                ]
            )
    if not rows:
        return CheckResult(
            "output_spec", True, f"output {shape_str(out.shape)} {out.dtype} matches the spec"
        )
    details = table(["property", "expected", "got"], rows)
    if any(r[0] == "shape" for r in rows):
        details.append(
            "likely cause: the last layer's output size (out_features) or a missing squeeze/flatten"
        )
    if any(r[0] == "probabilities" for r in rows):
        details.append("likely cause: no softmax/sigmoid at the end, or softmax over the wrong dim")
    return CheckResult(
        "output_spec",
        False,
        f"output does not match the spec ({', '.join(dict.fromkeys(r[0] for r in rows))})",
        details,
        examples=[{"property": r[0], "expected": r[1], "got": r[2]} for r in rows],
    )


def run_loss_inputs(s: Session) -> CheckResult | None:
    """What the loss is fed: logits vs probabilities, class count, target shapes.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_loss_inputs(s).passed  # doctest: +SKIP
        True
    """
    loss_fn = s.need_loss()
    s.reset(train=False)
    with torch.no_grad():
        out_all = forward(s.model, s.inputs)
    out = output_tensor(out_all)
    targets = s.targets
    name = type(loss_fn).__name__
    problems: list[tuple[str, list[str]]] = []
    if out is not None and isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss) and out.dim() >= 2:
        classes = out.shape[1]
        if _is_class_targets(targets) and targets.numel():
            valid = targets[targets != loss_fn.ignore_index]
            top = int(valid.max()) if valid.numel() else -1
            if top >= classes:
                problems.append(
                    (
                        f"wrong output dimension: targets go up to class {top} but the model "
                        f"outputs {classes} scores per example (output {shape_str(out.shape)})",
                        [
                            f"likely cause: the last layer's out_features is {classes}; it needs "
                            f"at "
                            f"least {top + 1} (one per class)",
                        ],
                    )
                )
        if isinstance(loss_fn, nn.CrossEntropyLoss) and _looks_like_probabilities(out, 1):
            problems.append(
                (
                    "softmax before CrossEntropyLoss: the outputs are already probabilities "
                    "(each row in [0, 1] and summing to 1)",
                    [
                        "CrossEntropyLoss applies log_softmax itself and expects raw logits; on "
                        "probabilities the loss cannot go near 0 and gradients vanish",
                        "fix: return the logits from forward and apply softmax only at inference",
                    ],
                )
            )
        if isinstance(loss_fn, nn.NLLLoss) and out.is_floating_point():
            o = out.float()
            finite_rows = o.isfinite().all(dim=1)
            lse = torch.logsumexp(o, dim=1)[finite_rows]
            if bool((o[o.isfinite()] > 1e-6).any()) or (
                lse.numel() and float(lse.abs().max()) > 1e-3
            ):
                problems.append(
                    (
                        "NLLLoss expects log-probabilities, and the outputs are not (exp of a row "
                        "does not sum to 1)",
                        [
                            "fix: end forward with log_softmax, or use CrossEntropyLoss on raw "
                            "logits"
                        ],
                    )
                )
    if (
        out is not None
        and isinstance(loss_fn, _REGRESSION_LOSSES)
        and isinstance(targets, torch.Tensor)
        and out.shape != targets.shape
    ):
        try:
            joint = shape_str(torch.broadcast_shapes(out.shape, targets.shape))  # type: ignore[no-untyped-call]
        except RuntimeError:
            joint = "nothing (they do not broadcast)"
        problems.append(
            (
                f"target-shape broadcasting bug: {name} gets outputs {shape_str(out.shape)} and "
                f"targets {shape_str(targets.shape)}, which broadcast to {joint}",
                [
                    "every prediction is compared with every target, so the model learns the mean",
                    "fix: make the shapes equal (output.squeeze(-1), or targets.unsqueeze(-1))",
                ],
            )
        )
    if not problems and targets is not None:
        # Any loss, even a hand-written one: torch warns when shapes broadcast.
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            loss_fn(out_all, targets)
        for w in caught:
            text = str(w.message)
            if "target size" in text or "broadcast" in text:
                problems.append(
                    (
                        "target-shape broadcasting bug: the loss warned: " + text.split("\n")[0],
                        ["fix: make the output and target shapes equal (squeeze or unsqueeze)"],
                    )
                )
                break
    if not problems:
        return CheckResult(
            "loss_inputs", True, f"{name} gets inputs of the shape and kind it expects"
        )
    headline = (
        problems[0][0]
        if len(problems) == 1
        else f"{len(problems)} problems with what {name} is fed"
    )
    details: list[str] = []
    for i, (what, more) in enumerate(problems):
        if len(problems) > 1 or i > 0:
            details.append(what)
        details += more
    return CheckResult(
        "loss_inputs", False, headline, details, examples=[{"problem": p[0]} for p in problems]
    )


# ---------------------------------------------------------------------------
# Finite values
# ---------------------------------------------------------------------------


def _dense(grad: torch.Tensor) -> torch.Tensor:
    """A gradient as a dense tensor (sparse ones come from ``nn.Embedding(sparse=True)``)."""
    return grad.to_dense() if grad.is_sparse else grad


def _nonfinite(t: torch.Tensor) -> tuple[int, int]:
    t = _dense(t)
    if not (t.is_floating_point() or t.is_complex()):
        return 0, 0
    return int(t.isnan().sum()), int(t.isinf().sum())


def run_finite(s: Session) -> CheckResult:
    """Outputs, loss and gradients free of NaN/Inf; names the first module that went bad.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_finite(s).passed  # doctest: +SKIP
        True
    """
    s.reset()
    bad_inputs = [(n, *_nonfinite(t)) for n, t in _named(s.batch) if any(_nonfinite(t))]
    if bad_inputs:
        return CheckResult(
            "finite",
            False,
            "the batch itself contains NaN/Inf",
            [
                *table(["tensor", "nan", "inf"], bad_inputs),
                "fix: clean the data (or the collate step)",
            ],
        )
    bad_params = [(n, *_nonfinite(p)) for n, p in s.model.named_parameters() if any(_nonfinite(p))]
    if bad_params:
        return CheckResult(
            "finite",
            False,
            f"{len(bad_params)} parameters already contain NaN/Inf before any step",
            [
                *table(["parameter", "nan", "inf"], bad_params),
                "fix: the initialisation or the loaded checkpoint",
            ],
        )
    names = _module_names(s.model)
    order: list[tuple[str, int, int]] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        nan = inf = 0
        for t in tensors_in(output):
            a, b = _nonfinite(t.detach())
            nan, inf = nan + a, inf + b
        if nan or inf:
            order.append((_label(names, module), nan, inf))

    with _hooks(s.model, hook):
        out = forward(s.model, s.inputs)
    loss = s.validate_loss(s.need_loss()(out, s.targets)) if s.loss_fn is not None else None
    if order:
        first = order[0][0]
        root = first.startswith("<root>")
        details = table(["module (in call order)", "nan", "inf"], order, limit=4)
        details.append(
            f"the inputs of {first} were finite: the NaN/Inf arises in "
            + ("the model's own forward()" if root else "its forward()")
        )
        details.append(
            "likely cause: log(softmax(x)) underflowing to log(0) on large logits (use "
            "log_softmax), division by zero, sqrt/log of values <= 0, exp overflow"
        )
        return CheckResult(
            "finite",
            False,
            f"non-finite output: first produced by {first}",
            details,
            metrics={"first_module": first},
            examples=[{"module": m, "nan": a, "inf": b} for m, a, b in order[:4]],
        )
    if loss is None:
        return CheckResult("finite", True, "outputs are finite")
    lval = float(loss.detach())
    if not math.isfinite(lval):
        return CheckResult(
            "finite",
            False,
            f"the loss is {lval} although every output is finite",
            [
                "likely cause: inside the loss: log(0) in a hand-written loss, BCELoss on values "
                "outside [0, 1], a division by the number of positives when there are none",
            ],
        )
    if loss.requires_grad:
        loss.backward()  # type: ignore[no-untyped-call]
    bad_grads = [
        (n, shape_str(p.shape), *_nonfinite(p.grad))
        for n, p in s.model.named_parameters()
        if p.grad is not None and any(_nonfinite(p.grad))
    ]
    if bad_grads:
        return CheckResult(
            "finite",
            False,
            f"outputs and loss are finite but {len(bad_grads)} gradients contain NaN/Inf",
            [
                *table(["parameter", "shape", "nan", "inf"], bad_grads),
                "likely cause: an op whose derivative blows up at the values seen: sqrt(0), "
                "norm of a zero vector, log near 0, pow with a negative base",
            ],
            examples=[{"parameter": r[0], "nan": r[2], "inf": r[3]} for r in bad_grads],
        )
    return CheckResult("finite", True, "outputs, loss and gradients are finite")


def _named(batch: Any) -> list[tuple[str, torch.Tensor]]:
    from mltest.model._core import named_tensors

    return list(named_tensors(batch))


# ---------------------------------------------------------------------------
# Gradients and parameter updates
# ---------------------------------------------------------------------------


def run_gradient_flow(s: Session) -> CheckResult:
    """Every trainable parameter gets a non-zero, finite gradient; names the dead ones.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_gradient_flow(s).passed  # doctest: +SKIP
        True
    """
    s.reset()
    loss = s.loss_of(s.batch)
    if not loss.requires_grad:
        return CheckResult(
            "gradient_flow",
            False,
            "the loss does not require grad: no parameter can get a gradient",
            [
                "likely cause: the whole forward runs under torch.no_grad()/inference_mode(), or "
                "its output is detached (.detach(), .data, .item(), a numpy round trip)",
            ],
        )
    loss.backward()  # type: ignore[no-untyped-call]
    trainable = s.trainable()
    dead: list[tuple[str, str, str]] = []
    for n, p in trainable:
        if p.grad is None:
            dead.append((n, shape_str(p.shape), "None"))
        elif not bool(_dense(p.grad).isfinite().all()):
            dead.append((n, shape_str(p.shape), "non-finite"))
        elif not bool(_dense(p.grad).any()):
            dead.append((n, shape_str(p.shape), "all zero"))
    if not dead:
        return CheckResult(
            "gradient_flow",
            True,
            f"all {len(trainable)} trainable parameters get a non-zero gradient",
            metrics={"parameters": len(trainable)},
        )
    details = table(["parameter", "shape", "gradient"], dead)
    kinds = {d[2] for d in dead}
    if "None" in kinds:
        details.append(
            "no gradient (None): the path from the loss to them is cut: .detach(), "
            "torch.no_grad(), .data, .item() or a numpy round trip in forward, or the layer is "
            "never used in forward"
        )
    if "all zero" in kinds:
        details.append(
            "zero gradient: dead ReLUs, zero-initialised weights downstream (zero-init "
            "symmetry), or the branch is multiplied by 0"
        )
    details.append("if a parameter is unused on purpose, pass ignore=['name'] (or frozen=[...])")
    return CheckResult(
        "gradient_flow",
        False,
        f"{len(dead)} of {len(trainable)} trainable parameters get no usable gradient",
        details,
        metrics={"dead": len(dead), "parameters": len(trainable)},
        examples=[{"parameter": d[0], "shape": d[1], "gradient": d[2]} for d in dead],
    )


class _StepWatch:
    """Counts ``optimizer.step()`` calls and snapshots the gradients each one sees."""

    def __init__(self, optimizer: Any, model: nn.Module) -> None:
        self.calls = 0
        self.grads: dict[str, torch.Tensor | None] = {}
        self._params = list(model.named_parameters())
        register = getattr(optimizer, "register_step_pre_hook", None)
        self._handle = register(self._hook) if callable(register) else None

    def _hook(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.calls += 1
        self.grads = {
            n: None if p.grad is None else _dense(p.grad.detach()).clone() for n, p in self._params
        }

    def close(self) -> None:
        if self._handle is not None:
            self._handle.remove()


def _param_lrs(optimizer: Any) -> dict[int, float]:
    lrs: dict[int, float] = {}
    for group in optimizer.param_groups:
        lr = group.get("lr", None)
        lr_value = float(lr) if isinstance(lr, int | float | torch.Tensor) else math.nan
        for p in group["params"]:
            lrs[id(p)] = lr_value
    return lrs


def run_parameters_update(s: Session) -> CheckResult:
    """Every trainable parameter changes after one step; declared-frozen ones do not.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_parameters_update(s).passed  # doctest: +SKIP
        True
    """
    s.reset()
    opt = s.new_optimizer()
    watch = _StepWatch(opt, s.model)
    try:
        s.step(opt, s.batch)
    finally:
        watch.close()
    lrs = _param_lrs(opt)
    grads = (
        watch.grads
        if watch.calls
        else {
            n: None if p.grad is None else _dense(p.grad.detach())
            for n, p in s.model.named_parameters()
        }
    )
    rows: list[tuple[str, str, str]] = []
    causes: list[str] = []
    checked = 0
    for n, p in s.model.named_parameters():
        if matches(n, s.ignore):
            continue
        checked += 1
        changed = not torch.equal(p.detach(), s.state.params[n])
        if matches(n, s.frozen):
            if changed:
                why = (
                    "still requires_grad=True and is in the optimizer"
                    if p.requires_grad
                    else "changed without a gradient (weight decay, or code writing to it)"
                )
                rows.append((n, "declared frozen but changed", why))
            continue
        if not p.requires_grad:
            rows.append(
                (
                    n,
                    "requires_grad=False",
                    "frozen by mistake? (declare intended ones with frozen=[...])",
                )
            )
            causes.append("frozen layer")
            continue
        if changed:
            continue
        g = grads.get(n)
        if watch.calls == 0 and watch._handle is not None:
            why, cause = "optimizer.step() was never called", "step never called"
        elif id(p) not in lrs:
            why, cause = (
                "not in the optimizer (optimizer_factory left it out)",
                "missing from optimizer",
            )
        elif lrs[id(p)] == 0:
            why, cause = "its param group has lr=0", "learning rate 0"
        elif g is None:
            why, cause = "got no gradient (detached or unused in forward)", "no gradient"
        elif not bool(g.any()):
            why, cause = "its gradient is all zero", "zero gradient"
        else:
            why, cause = f"update too small to change it (lr={fmt(lrs[id(p)])})", "tiny update"
        rows.append((n, "unchanged after one step", why))
        causes.append(cause)
    if not rows:
        return CheckResult(
            "parameters_update",
            True,
            f"all {checked} parameters behaved: trainable ones changed after one step"
            + (", frozen ones did not" if s.frozen else ""),
            metrics={"parameters": checked},
        )
    details = table(["parameter", "problem", "likely cause"], rows)
    top = max(set(causes), key=causes.count) if causes else ""
    hints = {
        "step never called": "train_step never calls optimizer.step(): add it after "
        "loss.backward()",
        "missing from optimizer": "build the optimizer from model.parameters() (or add the "
        "missing module to a param group)",
        "learning rate 0": "set a non-zero learning rate (check the schedule's first value too)",
        "no gradient": "see gradient_flow: a .detach()/no_grad in forward cuts these off",
        "zero gradient": "see gradient_flow: dead units or zero-initialised weights",
        "frozen layer": "remove the stray requires_grad_(False), or pass frozen=['name'] if "
        "freezing is intended",
    }
    if top in hints:
        details.append("next: " + hints[top])
    return CheckResult(
        "parameters_update",
        False,
        f"{len(rows)} of {checked} parameters misbehaved after one optimizer step"
        + (f" ({top})" if top else ""),
        details,
        metrics={"misbehaving": len(rows), "parameters": checked, "step_calls": watch.calls},
        examples=[{"parameter": r[0], "problem": r[1], "cause": r[2]} for r in rows],
    )


def run_zero_grad(s: Session) -> CheckResult | None:
    """A user ``train_step`` must clear the previous step's gradients before stepping.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_zero_grad(s).passed  # doctest: +SKIP
        True
    """
    if s.train_step is None:
        return None
    s.reset()
    opt = s.new_optimizer()
    watch = _StepWatch(opt, s.model)
    try:
        s.step(opt, s.batch)
    finally:
        watch.close()
    if watch.calls == 0:
        return None  # no step at all: parameters_update says so
    first = watch.grads
    left = {
        n: None if p.grad is None else _dense(p.grad.detach()).clone()
        for n, p in s.model.named_parameters()
    }
    if not any(g is not None and bool(g.any()) for g in left.values()):
        return CheckResult("zero_grad", True, "train_step leaves no stale gradients behind")
    # Replay the same step from the same weights, with the leftovers in place.
    s.reset()
    for n, p in s.model.named_parameters():
        g = left.get(n)
        p.grad = None if g is None else g.clone()
    opt = s.new_optimizer()
    watch = _StepWatch(opt, s.model)
    try:
        s.step(opt, s.batch)
    finally:
        watch.close()
    stale: list[tuple[str, str, str]] = []
    for n, g_seen in watch.grads.items():
        g_new, g_old = first.get(n), left.get(n)
        if g_seen is None or g_new is None or g_old is None or not bool(g_old.any()):
            continue
        if torch.allclose(g_seen, g_new + g_old, rtol=1e-4, atol=1e-7) and not torch.allclose(
            g_seen, g_new, rtol=1e-4, atol=1e-7
        ):
            stale.append((n, fmt(float(g_new.norm())), fmt(float(g_seen.norm()))))
    if not stale:
        return CheckResult("zero_grad", True, "train_step clears gradients before each step")
    return CheckResult(
        "zero_grad",
        False,
        f"forgotten zero_grad: gradients accumulate across steps in train_step "
        f"({len(stale)} parameters)",
        [
            *table(["parameter", "|grad| of this step", "|grad| at optimizer.step()"], stale),
            "at optimizer.step() each gradient held this step's gradient plus the previous one",
            "fix: call optimizer.zero_grad() before loss.backward() in train_step",
        ],
        metrics={"stale": len(stale)},
        examples=[{"parameter": r[0], "grad_norm": r[1], "seen_norm": r[2]} for r in stale],
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


def _overfit(
    s: Session,
    get_batch: Callable[[int], Any],
    max_steps: int,
    fraction: float,
    *,
    record: int = 0,
    snapshot: int = 0,
) -> _Run:
    """Train toward ``fraction`` of the starting loss.

    Also measures the loss after each of the first ``record`` steps and copies
    the parameters after step ``snapshot``.
    """
    s.reset()
    opt = s.new_optimizer()
    first = get_batch(0)
    start = s.measure(first)
    goal = max(fraction * start, 1e-4) if is_finite(start) else 0.0
    run = _Run(False, [(0, start)], start, start, 0)
    last_batch = first
    reached = False
    for step in range(max_steps):
        b = first if step == 0 else get_batch(step)
        reported = s.step(opt, b)
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
            (reported is not None and reported <= goal) or steps % 25 == 0 or steps == max_steps
        )
        if check_now:
            run.final = run.losses.get(steps, None) or s.measure(last_batch)
            run.curve.append((steps, run.final))
            if not is_finite(run.final) or run.final <= goal:
                reached = True
            else:
                # A plateau: no 1% gain over the last two checkpoints (50 steps) or worse.
                marks = [v for i, v in run.curve if i % 25 == 0]
                reached = len(marks) >= 3 and marks[-1] > 0.99 * min(marks[:-2])
            if reached and steps >= max(record, snapshot):
                break
    run.ok = is_finite(run.final) and run.final <= goal
    return run


def shared_run(s: Session, *, max_steps: int, fraction: float, record: int, snapshot: int) -> _Run:
    """The overfit run on the fixed batch, made once per session.

    The loss-decrease, overfit and training-determinism checks share it.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> shared_run(s, max_steps=200, fraction=0.1, record=5, snapshot=3).ok  # doctest: +SKIP
        True
    """
    key = ("fixed-batch run", max_steps, fraction, record, snapshot)
    if key not in s.cache:
        s.cache[key] = _overfit(
            s, lambda step: s.batch, max_steps, fraction, record=record, snapshot=snapshot
        )
    run: _Run = s.cache[key]
    return run


def run_overfit_batch(
    s: Session,
    *,
    max_steps: int = 200,
    fraction: float = 0.1,
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
        run = _overfit(s, batch_stream(s.batches), max_steps, fraction)
    elif shared is not None:
        run = shared_run(s, **shared)
    else:
        run = _overfit(s, lambda step: s.batch, max_steps, fraction)
    ok, curve, start, final, steps = run.ok, run.curve, run.start, run.final, run.steps
    metrics = {
        "loss_start": start,
        "loss_final": final,
        "steps": steps,
        "source": "batches" if stream else "batch",
    }
    what = "the batches from `batches`" if stream else "one batch"
    if ok:
        return CheckResult(
            "overfit_batch",
            True,
            f"overfits {what}: loss {fmt(start)} -> {fmt(final)} in {steps} steps",
            metrics=metrics,
        )
    details = [f"loss curve: {_curve(curve)}", "likely causes:"]
    if stream:
        fixed = (
            shared_run(s, **shared)
            if shared is not None
            else _overfit(s, lambda step: s.batch, max_steps, fraction)
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
    out = None
    with torch.no_grad():
        s.reset(train=False)
        out = output_tensor(forward(s.model, s.inputs))
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


# ---------------------------------------------------------------------------
# Batch independence
# ---------------------------------------------------------------------------


def _leaks(s: Session, n_examples: int) -> tuple[list[tuple[int, list[int], float]], str] | None:
    """For probe outputs i, which inputs j != i the gradient of output i reaches."""
    probes: list[torch.Tensor] = []
    inputs = s.inputs
    float_inputs = [
        t
        for _, t in _named(inputs)
        if t.is_floating_point() and t.dim() >= 1 and t.shape[0] == n_examples
    ]
    if float_inputs:
        leaves = {id(t): t.detach().clone().requires_grad_(True) for t in float_inputs}

        def swap(obj: Any) -> Any:
            if isinstance(obj, torch.Tensor):
                return leaves.get(id(obj), obj)
            if isinstance(obj, dict):
                return {k: swap(v) for k, v in obj.items()}
            if isinstance(obj, tuple | list):
                return type(obj)(swap(v) for v in obj)
            return obj

        inputs = swap(inputs)
        probes = list(leaves.values())
        where = "the inputs"
    embedded: list[torch.Tensor] = []

    def grab(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor) and output.dim() >= 1 and output.shape[0] == n_examples:
            embedded.append(output)

    handles = []
    if not probes:
        handles = [
            m.register_forward_hook(grab)
            for m in s.model.modules()
            if isinstance(m, nn.Embedding | nn.EmbeddingBag)
        ]
        where = "the embedding outputs"
    try:
        out = output_tensor(forward(s.model, inputs))
    finally:
        for h in handles:
            h.remove()
    probes = probes or [e for e in embedded if e.requires_grad]
    if out is None or not probes or out.dim() == 0 or out.shape[0] != n_examples:
        return None
    gen = torch.Generator(device="cpu").manual_seed(s.seed)
    weights = torch.rand(out.shape[1:], generator=gen).to(out.device, out.dtype) + 0.5
    found: list[tuple[int, list[int], float]] = []
    for i in sorted({0, n_examples - 1}):
        grads = torch.autograd.grad(
            (out[i] * weights).sum(), probes, retain_graph=True, allow_unused=True
        )
        per_example = torch.zeros(n_examples, device=out.device)
        for g in grads:
            if g is not None:
                per_example = per_example + g.detach().abs().flatten(1).amax(1).float()
        own = float(per_example[i])
        others = per_example.clone()
        others[i] = 0
        tol = 1e-6 * max(own, float(others.max()), 1e-30)
        leaked = [int(j) for j in (others > tol).nonzero().flatten()]
        if leaked:
            found.append((i, leaked, float(others.max())))
    return found, where


def run_batch_independence(s: Session) -> CheckResult | None:
    """Output i must not depend on input j != i (checked with gradients).

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_batch_independence(s).passed  # doctest: +SKIP
        True
    """
    s.reset()
    with torch.no_grad(), s.fixed_rng():
        out = output_tensor(forward(s.model, s.inputs))
    if out is None or out.dim() == 0 or out.shape[0] < 2:
        return None
    n = out.shape[0]
    s.reset()
    result = _leaks(s, n)
    if result is None:
        return None
    leaks, where = result
    norms = [
        name for name, m in s.model.named_modules() if isinstance(m, _BATCHNORM) and m.training
    ]
    note = ""
    if leaks and norms:
        s.reset()
        for m in s.model.modules():
            if isinstance(m, _BATCHNORM):
                m.eval()
        again = _leaks(s, n)
        if again is not None and not again[0]:
            return CheckResult(
                "batch_independence",
                True,
                f"examples are independent; BatchNorm layers ({', '.join(norms[:3])}) mix the "
                "examples of a batch in train mode by design (batch statistics), so they were "
                "checked in eval mode",
                metrics={"examples": n, "batchnorm_mixing": True},
            )
        if again is not None:
            leaks = again[0]
            note = " (even with BatchNorm in eval mode)"
    if not leaks:
        return CheckResult(
            "batch_independence",
            True,
            f"output i depends only on input i (gradients at {where}, batch of {n})",
            metrics={"examples": n},
        )
    rows = [
        (f"output {i}", ", ".join(str(j) for j in js[:8]) + (" ..." if len(js) > 8 else ""), fmt(g))
        for i, js, g in leaks
    ]
    return CheckResult(
        "batch_independence",
        False,
        f"batch mixing: output {leaks[0][0]} depends on {len(leaks[0][1])} other examples of "
        f"the batch{note}",
        [
            *table(["output", "depends on inputs", "max |gradient|"], rows),
            f"gradients taken at {where}",
            "likely cause: a view/reshape where permute/transpose was needed (e.g. (N, T, D) "
            "-> (T, N, D)), a reduction or softmax over dim 0, or normalising across the batch",
        ],
        metrics={"examples": n, "mixed_outputs": len(leaks)},
        examples=[{"output": i, "depends_on": js[:20]} for i, js, _ in leaks],
    )


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------


def _first_difference(
    a: list[tuple[str, list[torch.Tensor]]],
    b: list[tuple[str, list[torch.Tensor]]],
    rtol: float,
    atol: float,
) -> str | None:
    for (name, ta), (_, tb) in zip(a, b, strict=False):
        for x, y in zip(ta, tb, strict=False):
            x, y = x.detach().cpu(), y.detach().cpu()
            if x.shape != y.shape or not torch.allclose(
                x.double(), y.double(), rtol=rtol, atol=atol, equal_nan=True
            ):
                return name
    return None


def _traced_forward(
    model: nn.Module, inputs: Any
) -> tuple[Any, list[tuple[str, list[torch.Tensor]]]]:
    names = _module_names(model)
    trace: list[tuple[str, list[torch.Tensor]]] = []

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        trace.append(
            (
                _label(names, module),
                [t.detach().clone() for t in tensors_in(output) if t.is_floating_point()],
            )
        )

    with _hooks(model, hook):
        out = forward(model, inputs)
    return out, trace


def _same_value(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):  # arrays: elementwise ==
        return repr(a) == repr(b)


def _max_diff(a: Any, b: Any) -> float:
    """Largest absolute difference between two outputs (inf when they differ in kind)."""
    ta, tb = tensors_in(a), tensors_in(b)
    if len(ta) != len(tb):
        return math.inf
    worst = 0.0
    for x, y in zip(ta, tb, strict=False):
        if x.shape != y.shape:
            return math.inf
        d = (x.detach().cpu().double() - y.detach().cpu().double()).abs()
        d = (
            d[~(x.detach().cpu().isnan() & y.detach().cpu().isnan())]
            if x.is_floating_point()
            else d
        )
        if d.numel():
            worst = max(worst, float(d.max()))
    if not ta:  # no tensors (labels as strings, numpy arrays): plain equality
        return 0.0 if _same_value(a, b) else math.inf
    return worst


def run_eval_determinism(s: Session) -> CheckResult:
    """Two inference passes agree (eval mode, or the user's ``predict`` path).

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_eval_determinism(s).passed  # doctest: +SKIP
        True
    """
    if s.predict is not None:
        return _predict_determinism(s)
    s.reset(train=False)
    s.model.eval()
    with torch.no_grad():
        out1, trace1 = _traced_forward(s.model, s.inputs)
        out2, trace2 = _traced_forward(s.model, s.inputs)
    diff = _max_diff(out1, out2)
    if diff == 0:
        return CheckResult(
            "eval_determinism", True, "two forward passes in eval mode agree exactly"
        )
    culprit = _first_difference(trace1, trace2, 0.0, 0.0) or "<root>"
    return CheckResult(
        "eval_determinism",
        False,
        f"randomness in forward: two forward passes in eval mode differ (max |diff| "
        f"{fmt(diff)}); first module whose output differs: {culprit}",
        [
            "something draws random numbers even after model.eval(): torch.rand*/randn* in "
            "forward, F.dropout(x, training=True), noise not gated by self.training",
            "fix: gate it with `if self.training:` (or use nn.Dropout, which eval() switches off)",
        ],
        metrics={"max_abs_diff": diff, "module": culprit},
    )


def _predict_determinism(s: Session) -> CheckResult:
    assert s.predict is not None
    names = _module_names(s.model)
    in_train: dict[str, str] = {}

    def pre(module: nn.Module, args: Any) -> None:
        if module.training and isinstance(module, _DROPOUT + _BATCHNORM):
            in_train.setdefault(_label(names, module), type(module).__name__)

    handles = [m.register_forward_pre_hook(pre) for m in s.model.modules()]
    try:
        s.reset()  # as after training: train mode
        first = s.predict(s.model, s.inputs)
        s.model.train()
        second = s.predict(s.model, s.inputs)
    finally:
        for h in handles:
            h.remove()
    diff = _max_diff(first, second)
    if not in_train and diff == 0:
        return CheckResult(
            "eval_determinism", True, "predict() gives the same answer twice, in eval mode"
        )
    details: list[str] = []
    if in_train:
        details += table(["module", "type"], sorted(in_train.items()))
        details.append(
            "predict() was called on a model left in training mode (as after a training loop) "
            "and did not switch it to eval mode"
        )
        details.append("fix: call model.eval() (and use torch.inference_mode()) inside predict")
    if diff:
        details.append(f"two calls of predict() on the same inputs differ (max |diff| {fmt(diff)})")
    head = (
        f"dropout left on at inference: {len(in_train)} dropout/batchnorm modules ran in "
        "training mode inside predict()"
        if in_train
        else f"predict() is not deterministic: two calls differ (max |diff| {fmt(diff)})"
    )
    return CheckResult(
        "eval_determinism",
        False,
        head,
        details,
        metrics={"modules_in_train_mode": len(in_train), "max_abs_diff": diff},
        examples=[{"module": k, "type": v} for k, v in in_train.items()],
    )


def _train_k(s: Session, steps: int) -> dict[str, torch.Tensor]:
    s.reset()
    opt = s.new_optimizer()
    for _ in range(steps):
        s.step(opt, s.batch)
    return {n: p.detach().clone() for n, p in s.model.named_parameters()}


def run_training_determinism(
    s: Session, *, steps: int = 3, shared: dict[str, Any] | None = None
) -> CheckResult:
    """Two seeded runs of ``steps`` steps give bit-identical parameters.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_training_determinism(s).passed  # doctest: +SKIP
        True
    """
    from mltest.repro import deterministic_mode

    cuda = s.device is not None and s.device.type == "cuda"
    if cuda:
        with deterministic_mode():
            a, b = _train_k(s, steps), _train_k(s, steps)
    else:
        first = shared_run(s, **shared).params if shared is not None else None
        a = first if first is not None else _train_k(s, steps)
        b = _train_k(s, steps)
    differ = [
        (n, shape_str(a[n].shape), fmt(float((a[n].double() - b[n].double()).abs().max())))
        for n in a
        if not torch.equal(a[n], b[n])
    ]
    mode = " (deterministic mode)" if cuda else ""
    if not differ:
        return CheckResult(
            "training_determinism",
            True,
            f"two seeded runs of {steps} steps give bit-identical parameters{mode}",
        )
    return CheckResult(
        "training_determinism",
        False,
        f"two seeded runs of {steps} steps differ in {len(differ)} parameters{mode}",
        [
            *table(["parameter", "shape", "max |diff|"], differ),
            "likely cause: randomness the seed does not reach (a torch.Generator or "
            "np.random.default_rng() made without a seed, time-based values), state kept "
            "between calls (caches, counters in the model or train_step), or "
            "non-deterministic kernels",
        ],
        metrics={"differing": len(differ)},
        examples=[{"parameter": r[0], "max_abs_diff": r[2]} for r in differ],
    )


# ---------------------------------------------------------------------------
# Device parity
# ---------------------------------------------------------------------------


def compare_models(
    s: Session,
    other: nn.Module,
    other_batch: Any,
    label: str,
    *,
    rtol: float,
    atol: float,
) -> list[str]:
    """Differences between the session's model and ``other`` (same weights) on a batch.

    Compares the eval-mode forward (naming the first module that diverges),
    then one training step: the loss, the gradients and the parameters after
    the step. Dropout is switched off for the step, since devices draw
    different random numbers.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> compare_models(s, other_model, batch, 'cuda', rtol=1e-3, atol=1e-5)  # doctest: +SKIP
        []
    """
    problems: list[str] = []
    s.reset(train=False)
    s.model.eval()
    other.eval()
    other_inputs, _ = split_batch(other_batch, target_key=s.target_key)
    with torch.no_grad():
        out_a, trace_a = _traced_forward(s.model, s.inputs)
        out_b, trace_b = _traced_forward(other, other_inputs)
    diff = _max_diff(out_a, out_b)
    ta, tb = tensors_in(out_a), tensors_in(out_b)
    close = len(ta) == len(tb) and all(
        x.shape == y.shape
        and torch.allclose(
            x.detach().cpu().double(), y.detach().cpu().double(), rtol=rtol, atol=atol
        )
        for x, y in zip(ta, tb, strict=False)
    )
    if not close:
        culprit = _first_difference(trace_a, trace_b, rtol, atol) or "<root>"
        problems.append(
            f"forward: outputs differ on {label} (max |diff| {fmt(diff)}); first module: {culprit}"
        )
    if s.loss_fn is None or s.optimizer_factory is None:
        return problems
    s.reset()
    other.train()
    for m in [*s.model.modules(), *other.modules()]:
        if isinstance(m, _DROPOUT):
            m.eval()
    for p in other.parameters():
        p.grad = None
    opt_a, opt_b = s.new_optimizer(), s.new_optimizer(other)
    watch_a, watch_b = _StepWatch(opt_a, s.model), _StepWatch(opt_b, other)
    try:
        loss_a = s.step(opt_a, s.batch)
        loss_b = s.step(opt_b, other_batch, other)
    finally:
        watch_a.close()
        watch_b.close()
    if (
        loss_a is not None
        and loss_b is not None
        and not math.isclose(loss_a, loss_b, rel_tol=rtol, abs_tol=atol)
    ):
        problems.append(
            f"training step: loss {fmt(loss_a)} on the model's device, {fmt(loss_b)} on {label}"
        )
    rows = []
    params_b = dict(other.named_parameters())
    for n, p in s.model.named_parameters():
        ga, gb = watch_a.grads.get(n), watch_b.grads.get(n)
        if ga is not None and gb is not None:
            ga64, gb64 = ga.cpu().double(), gb.cpu().double()
            scale = float(ga64.abs().max()) if ga64.numel() else 0.0
            if not torch.allclose(ga64, gb64, rtol=rtol, atol=atol + rtol * scale):
                rows.append((n, "gradient", fmt(float((ga64 - gb64).abs().max()))))
                continue
            # Elements with a near-zero gradient may flip sign between devices and move
            # by a whole learning rate under Adam: compare the rest.
            mask = ga64.abs() > 1e-3 * scale if scale else torch.ones_like(ga64, dtype=torch.bool)
        else:
            mask = torch.ones(p.shape, dtype=torch.bool)
        pa, pb = p.detach().cpu().double(), params_b[n].detach().cpu().double()
        if not torch.allclose(pa[mask], pb[mask], rtol=rtol, atol=atol):
            rows.append((n, "after step", fmt(float((pa - pb)[mask].abs().max()))))
    if rows:
        problems.append(f"training step: {len(rows)} parameters differ on {label}")
        problems += ["  " + line for line in table(["parameter", "where", "max |diff|"], rows)]
    return problems


def run_device_parity(
    s: Session, *, devices: Sequence[str] = (), rtol: float = 1e-3, atol: float = 1e-5
) -> CheckResult | None:
    """CPU and every other selected device agree within rtol/atol (forward + one step).

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_device_parity(s).passed  # doctest: +SKIP
        True
    """
    from mltest.devices import unavailable_reason

    here = s.device or torch.device("cpu")
    targets = []
    for name in devices:
        dev = torch.device(name)
        if dev.type == here.type and (dev.index is None or dev.index == (here.index or 0)):
            continue
        if dev.type == "cpu" or unavailable_reason(name) is None:
            targets.append(dev)
    if here.type != "cpu" and torch.device("cpu") not in targets:
        targets.insert(0, torch.device("cpu"))
    if not targets:
        return None
    problems: list[str] = []
    for dev in targets:
        s.reset()
        other = copy.deepcopy(s.model).to(dev)
        problems += compare_models(
            s, other, to_device(s.batch, dev), str(dev), rtol=rtol, atol=atol
        )
    names = ", ".join(str(d) for d in targets)
    if not problems:
        return CheckResult(
            "device_parity",
            True,
            f"{here} and {names} agree within rtol={rtol}, atol={atol} (forward and one step)",
        )
    return CheckResult(
        "device_parity",
        False,
        f"{here} and {names} disagree beyond rtol={rtol}, atol={atol}",
        [
            *problems,
            "likely cause: an op that behaves differently on the device (TF32 matmuls, "
            "reduced-precision kernels, a tensor created on the CPU inside forward), or a "
            "tolerance too tight for float32 on that device",
        ],
        examples=[{"problem": p} for p in problems[:20]],
    )
