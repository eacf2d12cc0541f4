"""Output spec and loss inputs: what the model returns and what reaches the loss."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

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
        out_all = s.run()
    out = s.pick(out_all)
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
