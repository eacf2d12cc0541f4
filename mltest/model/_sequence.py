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
    table,
)

# ---------------------------------------------------------------------------
# Batch independence
# ---------------------------------------------------------------------------


def _aligned(t: torch.Tensor, batch_tensors: list[torch.Tensor], n: int) -> bool:
    """Whether ``t`` is indexed by example along dim 0, as the batch is.

    True for one of the batch's tensors, a view of one keeping its example
    stride, or a tensor of exactly a batch tensor's shape.

    Sizes alone never decide: a ``(T,)`` position index is not batch-aligned when T == B.
    """
    if t.dim() == 0 or t.shape[0] != n:
        return False
    for b in batch_tensors:
        if b.dim() == 0 or b.shape[0] != n:
            continue
        if t is b or t.shape == b.shape:
            return True
        if t.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and t.stride(
            0
        ) == b.stride(0):
            return True
    return False


class Probes:
    """Tensors to take gradients at, indexed by example along dim 0.

    The batch's float inputs, made leaves, and the outputs of the embedding
    layers whose *input* is the batch's token ids; a position embedding of
    ``arange(T)`` is left out by its input's role, whatever T is.

    Example:
        >>> probes = Probes(session, n=8)  # doctest: +SKIP
        >>> out = session.pick(probes.forward())  # doctest: +SKIP
    """

    def __init__(self, s: Session, n: int) -> None:
        self.s = s
        self.n = n
        self.batch_tensors = [t for _, t in _named(s.call_inputs)]
        float_inputs = [
            t
            for t in self.batch_tensors
            if t.is_floating_point() and t.dim() >= 1 and t.shape[0] == n
        ]
        self.leaves = {id(t): t.detach().clone().requires_grad_(True) for t in float_inputs}
        self.embedded: list[torch.Tensor] = []

    def _swap(self, obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            return self.leaves.get(id(obj), obj)
        if isinstance(obj, dict):
            return {k: self._swap(v) for k, v in obj.items()}
        if isinstance(obj, tuple | list):
            return type(obj)(self._swap(v) for v in obj)
        return obj

    def _grab(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or not output.requires_grad:
            return
        ids = args[0] if args else kwargs.get("input")
        if not isinstance(ids, torch.Tensor):
            return
        offsets = args[1] if len(args) > 1 else kwargs.get("offsets")
        if isinstance(module, nn.EmbeddingBag) and ids.dim() == 1:
            # One bag per offset: the bags are the examples when the offsets are the batch's.
            ok = isinstance(offsets, torch.Tensor) and _aligned(offsets, self.batch_tensors, self.n)
        else:
            ok = _aligned(ids, self.batch_tensors, self.n)
        if ok and output.dim() >= 1 and output.shape[0] == self.n:
            self.embedded.append(output)

    def forward(self) -> Any:
        """Run the model with float inputs as leaves and the embedding outputs captured."""
        handles = [
            m.register_forward_hook(self._grab, with_kwargs=True)
            for m in self.s.model.modules()
            if isinstance(m, nn.Embedding | nn.EmbeddingBag)
        ]
        try:
            return self.s.run(self._swap(self.s.call_inputs))
        finally:
            for h in handles:
                h.remove()

    @property
    def tensors(self) -> list[torch.Tensor]:
        """Every probe, float inputs first."""
        return [*self.leaves.values(), *self.embedded]

    @property
    def where(self) -> str:
        """Where the gradients are taken, for a message."""
        parts = (["the inputs"] if self.leaves else []) + (
            ["the embedding outputs"] if self.embedded else []
        )
        return " and ".join(parts)


def _leaks(s: Session, n_examples: int) -> tuple[list[tuple[int, list[int], float]], str] | None:
    """For probe outputs i, which inputs j != i the gradient of output i reaches."""
    probes = Probes(s, n_examples)
    out = s.pick(probes.forward())
    tensors = probes.tensors
    if out is None or not tensors or out.dim() == 0 or out.shape[0] != n_examples:
        return None
    gen = torch.Generator(device="cpu").manual_seed(s.seed)
    weights = torch.rand(out.shape[1:], generator=gen).to(out.device, out.dtype) + 0.5
    found: list[tuple[int, list[int], float]] = []
    for i in sorted({0, n_examples - 1}):
        grads = torch.autograd.grad(
            (out[i] * weights).sum(), tensors, retain_graph=True, allow_unused=True
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
    return found, probes.where


def run_batch_independence(s: Session) -> CheckResult | None:
    """Output i must not depend on input j != i (checked with gradients).

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer)  # doctest: +SKIP
        >>> run_batch_independence(s).passed  # doctest: +SKIP
        True
    """
    s.reset()
    with torch.no_grad(), s.fixed_rng():
        out = s.pick(s.run())
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
