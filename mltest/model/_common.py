"""Helpers the model-check families share: module names, forward hooks, tensor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

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


def _named(batch: Any) -> list[tuple[str, torch.Tensor]]:
    from mltest.model._core import named_tensors

    return list(named_tensors(batch))
