"""Finite values, gradient flow, parameter updates and zero_grad."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mltest.model._common import (
    _dense,
    _hooks,
    _label,
    _module_names,
    _named,
    _nonfinite,
)
from mltest.model._core import (
    CheckResult,
    Session,
    fmt,
    matches,
    shape_str,
    table,
    tensors_in,
)


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
        out = s.run()
    loss = s.validate_loss(s.compute_loss(out, s.targets)) if s.has_loss() else None
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
        "loss.backward() (a step that accumulates k micro-batches on purpose: pass "
        "accumulation_steps=k)",
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


def _replay(s: Session, preset: dict[str, torch.Tensor | None]) -> _StepWatch:
    """One step from the starting weights, with ``preset`` in ``.grad`` beforehand."""
    s.reset()
    for n, p in s.model.named_parameters():
        g = preset.get(n)
        p.grad = None if g is None else g.clone()
    opt = s.new_optimizer()
    watch = _StepWatch(opt, s.model)
    try:
        s.step(opt, s.batch)
    finally:
        watch.close()
    return watch


def _differs(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    scale = max(float(a.abs().max()), float(b.abs().max())) if a.numel() else 0.0
    return not torch.allclose(a, b, rtol=1e-4, atol=1e-6 * scale + 1e-12)


def run_zero_grad(s: Session) -> CheckResult | None:
    """A user ``train_step`` must clear the previous step's gradients before stepping.

    The step is replayed from the same weights with the previous step's
    gradients left in ``.grad``: a step that clears them sees the same
    gradients at ``optimizer.step()`` as a clean one, whatever it does to
    them in between (``clip_grad_norm_``, ``clip_grad_value_``, a
    ``GradScaler``). With ``accumulation_steps=k`` a step is k calls of
    ``train_step`` and the check is that no gradient survives into the next
    accumulation cycle.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_zero_grad(s).passed  # doctest: +SKIP
        True
    """
    if s.train_step is None:
        return None
    k = s.accumulation_steps
    clean = _replay(s, {})
    if clean.calls == 0:
        return None  # no step at all: parameters_update says so
    if k > 1 and clean.calls != 1:
        return CheckResult(
            "zero_grad",
            False,
            f"accumulation_steps={k} declared, but optimizer.step() ran {clean.calls} times in "
            f"{k} calls of train_step",
            [
                f"a step that accumulates {k} micro-batches calls optimizer.step() once, on "
                f"the {k}th call; check the `if (i + 1) % {k} == 0` condition",
            ],
            metrics={"step_calls": clean.calls, "accumulation_steps": k},
        )
    left = {
        n: None if p.grad is None else _dense(p.grad.detach()).clone()
        for n, p in s.model.named_parameters()
    }
    cycle = f" (an accumulation cycle of {k} calls)" if k > 1 else ""
    if not any(g is not None and bool(g.any()) for g in left.values()):
        return CheckResult("zero_grad", True, f"train_step leaves no stale gradients behind{cycle}")
    stale_run = _replay(s, left)
    changed = [
        n
        for n, g in stale_run.grads.items()
        if left.get(n) is not None and bool(left[n].any()) and _differs(g, clean.grads.get(n))  # type: ignore[union-attr]
    ]
    if changed:
        # A step whose gradients vary from run to run anyway is not evidence: replay clean.
        again = _replay(s, {})
        noisy = {n for n in changed if _differs(again.grads.get(n), clean.grads.get(n))}
        changed = [n for n in changed if n not in noisy]
    if not changed:
        return CheckResult(
            "zero_grad", True, f"train_step clears gradients before each step{cycle}"
        )
    additive = all(
        torch.allclose(
            stale_run.grads[n],  # type: ignore[arg-type]
            clean.grads[n] + left[n],  # type: ignore[operator]
            rtol=1e-4,
            atol=1e-7,
        )
        for n in changed
    )
    rows = [
        (
            n,
            fmt(float(clean.grads[n].norm())),  # type: ignore[union-attr]
            fmt(float(stale_run.grads[n].norm())),  # type: ignore[union-attr]
        )
        for n in changed
    ]
    if additive:
        how = "at optimizer.step() each gradient held this step's gradient plus the previous one"
    else:
        how = (
            "at optimizer.step() the gradients differed from a clean step's: the previous "
            "step's gradients were still in .grad and were added in before clipping/scaling"
        )
    fix = (
        f"fix: call optimizer.zero_grad() right after optimizer.step() in the accumulation "
        f"cycle (every {k} calls)"
        if k > 1
        else "fix: call optimizer.zero_grad() before loss.backward() in train_step"
    )
    return CheckResult(
        "zero_grad",
        False,
        f"forgotten zero_grad: gradients accumulate across steps in train_step{cycle} "
        f"({len(changed)} parameters)",
        [
            *table(["parameter", "|grad| of this step", "|grad| at optimizer.step()"], rows),
            how,
            fix,
        ],
        metrics={"stale": len(changed), "accumulation_steps": k},
        examples=[{"parameter": r[0], "grad_norm": r[1], "seen_norm": r[2]} for r in rows],
    )
