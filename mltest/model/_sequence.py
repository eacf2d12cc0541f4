"""Across examples and positions: batch independence, causality, padding."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mltest.model._common import (
    _BATCHNORM,
    _named,
)
from mltest.model._core import (
    CheckResult,
    Session,
    fmt,
    forward,
    output_tensor,
    table,
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
