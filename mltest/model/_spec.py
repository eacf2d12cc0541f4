"""Output spec and loss inputs: what the model returns and what reaches the loss."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from mltest.model._common import (
    _REGRESSION_LOSSES,
    _is_class_targets,
    _looks_like_probabilities,
)
from mltest.model._core import (
    CheckResult,
    Session,
    fmt,
    shape_str,
    table,
)
from mltest.model._sequence import token_ids

# ---------------------------------------------------------------------------
# Output spec and loss inputs
# ---------------------------------------------------------------------------


#: Loss functions whose inputs are inspected wherever they are called from
#: (a loss module, a lambda, the model's own forward).
_FUNCTIONAL = {
    F.cross_entropy: "cross_entropy",
    F.nll_loss: "nll_loss",
    F.mse_loss: "mse_loss",
    F.l1_loss: "l1_loss",
    F.smooth_l1_loss: "smooth_l1_loss",
    F.huber_loss: "huber_loss",
    F.binary_cross_entropy: "binary_cross_entropy",
    F.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits",
}
_ELEMENTWISE = {n for n in _FUNCTIONAL.values() if n not in ("cross_entropy", "nll_loss")}


class _LossCalls(TorchFunctionMode):
    """Records every call of a torch loss function, with its arguments, while active."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = _FUNCTIONAL.get(func)
        if name is not None:
            self.calls.append((name, args, kwargs))
        return func(*args, **kwargs)


def _loss_name(s: Session) -> str:
    if s.model_loss:
        return "the model's own loss"
    fn = s.loss_fn
    if isinstance(fn, nn.Module):
        return type(fn).__name__
    named = getattr(fn, "__name__", "")
    return f"loss_fn {named}" if named and named != "<lambda>" else "loss_fn"


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, key: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(key, default)


def _functional_problems(
    s: Session, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]], *, skip_kinds: bool
) -> list[tuple[str, list[str]]]:
    """What reached torch's loss functions, wherever they were called from.

    Probabilities where logits belong, -1 targets, unshifted language-model
    targets, class indices against elementwise losses.
    """
    problems: list[tuple[str, list[str]]] = []
    token = token_ids(s)
    ids = token[1] if token is not None else None
    for fname, args, kwargs in calls:
        inp = _arg(args, kwargs, 0, "input", None)
        target = _arg(args, kwargs, 1, "target", None)
        if not isinstance(inp, torch.Tensor) or not isinstance(target, torch.Tensor):
            continue
        if fname in ("cross_entropy", "nll_loss"):
            ignore = int(_arg(args, kwargs, 4, "ignore_index", -100))
            classes = inp.shape[1] if inp.dim() >= 2 else inp.shape[0]
            if _is_class_targets(target) and target.numel():
                negative = target[(target < 0) & (target != ignore)]
                if negative.numel():
                    value = int(negative[0])
                    problems.append(
                        (
                            f"targets hold {value} at {negative.numel()} positions, and "
                            f"{fname}'s ignore_index is {ignore}: pass ignore_index={value}",
                            [
                                f"{fname} reads every target as a class index, so {value} ends "
                                f"in IndexError: Target {value} is out of bounds",
                                f"fix: F.{fname}(..., ignore_index={value}) (or "
                                f"nn.CrossEntropyLoss(ignore_index={value})), or mark ignored "
                                "positions with -100, the default",
                            ],
                        )
                    )
                valid = target[target >= 0]
                top = int(valid.max()) if valid.numel() else -1
                if not skip_kinds and top >= classes:
                    problems.append(
                        (
                            f"wrong output dimension: targets go up to class {top} but "
                            f"{fname} gets {classes} scores per example (input "
                            f"{shape_str(inp.shape)})",
                            [f"likely cause: the last layer needs at least {top + 1} outputs"],
                        )
                    )
                if (
                    ids is not None
                    and ids.dim() >= 2
                    and ids.shape[s.sequence_dim] > 1
                    and target.numel() == ids.numel()
                    and torch.equal(
                        target.reshape(-1).cpu(), ids.reshape(-1).to(target.dtype).cpu()
                    )
                ):
                    problems.append(
                        (
                            "the targets are the input tokens themselves: did you forget to "
                            "shift the targets?",
                            [
                                "a language model predicts token t + 1 from tokens <= t: "
                                "inputs ids[:, :-1], targets ids[:, 1:] (or shift the logits "
                                "and labels inside forward, as Hugging Face models do)",
                                "unshifted, the model learns to copy its input and the loss "
                                "falls to 0 without learning anything",
                            ],
                        )
                    )
            if (
                not skip_kinds
                and fname == "cross_entropy"
                and inp.dim() >= 2
                and _looks_like_probabilities(inp, 1)
            ):
                problems.append(
                    (
                        "softmax before cross_entropy: what reaches F.cross_entropy is already "
                        "probabilities (each row in [0, 1] and summing to 1)",
                        [
                            "cross_entropy applies log_softmax itself and expects raw logits; "
                            "on probabilities the loss cannot go near 0 and gradients vanish",
                            "fix: drop the softmax (in forward or in loss_fn) before the loss",
                        ],
                    )
                )
        elif fname in _ELEMENTWISE and (
            inp.dim() == 2
            and inp.shape[1] > 1
            and target.dim() == 1
            and target.shape[0] == inp.shape[0]
            and (not target.is_floating_point() or bool((target == target.round()).all()))
            and int(target.max()) < inp.shape[1]
            and int(target.min()) >= 0
        ):
            problems.append(
                (
                    f"class-index targets against {fname}: targets {shape_str(target.shape)} "
                    f"hold class indices but {fname} compares them elementwise with outputs "
                    f"{shape_str(inp.shape)}",
                    [
                        "fix: one-hot encode them (F.one_hot(y, C).float()) or use "
                        "cross_entropy on logits",
                    ],
                )
            )
    return problems


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
        out = s.pick(s.run())
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
        token = token_ids(s)
        sd = s.sequence_dim
        if (
            token is not None
            and out.dim() > sd
            and out.shape[sd] == 1
            and token[1].dim() > sd
            and token[1].shape[sd] > 1
        ):
            details.append(
                f"the output has 1 position where the inputs have {token[1].shape[sd]}: "
                "last-position logits at inference (nanoGPT without targets)? Give the targets "
                "in the batch (loss_fn=None) to get every position, or a shape with 1 there"
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
    watch = _LossCalls()
    raised: Exception | None = None
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        with watch:
            out_all = s.run()
        out = s.pick(out_all)
        targets = s.targets
        if targets is not None or s.model_loss:
            try:
                with watch:
                    loss_fn(out_all, targets)
            except Exception as exc:  # diagnosed below; re-raised when nothing explains it
                raised = exc
    name = _loss_name(s)
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
    module_loss = isinstance(loss_fn, nn.CrossEntropyLoss | nn.NLLLoss)
    for problem in _functional_problems(s, watch.calls, skip_kinds=module_loss):
        if problem[0] not in [p[0] for p in problems]:
            problems.append(problem)
    if raised is not None and not problems:
        raise raised
    if not problems and targets is not None:
        # Any loss, even a hand-written one: torch warns when shapes broadcast.
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
