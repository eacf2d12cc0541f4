"""Determinism (eval and training) and device parity."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from mltest.model._common import (
    _BATCHNORM,
    _DROPOUT,
    _hooks,
    _label,
    _module_names,
)
from mltest.model._core import (
    CheckResult,
    Session,
    fmt,
    forward,
    shape_str,
    table,
    tensors_in,
    to_device,
)
from mltest.model._gradients import _StepWatch
from mltest.model._training import shared_run

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


_F_DROPOUTS = {
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.alpha_dropout,
    F.feature_alpha_dropout,
}


class _FunctionalDropout(TorchFunctionMode):
    """Records functional dropout calls with ``training=True`` and p > 0, by innermost module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.found: dict[str, float] = {}
        names = _module_names(model)
        self._stack: list[str] = []

        def pre(module: nn.Module, args: Any) -> None:
            self._stack.append(_label(names, module))

        def post(module: nn.Module, args: Any, output: Any) -> None:
            if self._stack:
                self._stack.pop()

        self._handles = [
            h
            for m in model.modules()
            for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))
        ]

    def close(self) -> None:
        """Remove the module hooks."""
        for h in self._handles:
            h.remove()

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _F_DROPOUTS:
            p = args[1] if len(args) > 1 else kwargs.get("p", 0.5)
            training = args[2] if len(args) > 2 else kwargs.get("training", True)
            if training and float(p) > 0:
                where = self._stack[-1] if self._stack else "forward"
                self.found.setdefault(where, float(p))
        return func(*args, **kwargs)


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
    dropouts = _FunctionalDropout(s.model)
    # Both passes under the mode: a torch function mode turns off fused fast paths
    # (nn.TransformerEncoderLayer's in eval), whose results differ from the slow path's.
    try:
        with torch.no_grad(), dropouts:
            out1, trace1 = _traced_forward(s.model, s.call_inputs)
            out2, trace2 = _traced_forward(s.model, s.call_inputs)
    finally:
        dropouts.close()
    diff = _max_diff(out1, out2)
    if diff == 0:
        return CheckResult(
            "eval_determinism", True, "two forward passes in eval mode agree exactly"
        )
    culprit = _first_difference(trace1, trace2, 0.0, 0.0) or "<root>"
    if dropouts.found:
        where = ", ".join(f"{m} (p={fmt(p)})" for m, p in dropouts.found.items())
        return CheckResult(
            "eval_determinism",
            False,
            f"F.dropout without training=self.training: dropout runs in eval mode in {where}",
            [
                f"two forward passes in eval mode differ (max |diff| {fmt(diff)}); first module "
                f"whose output differs: {culprit}",
                "F.dropout's training argument defaults to True, so model.eval() cannot turn "
                "it off",
                "fix: F.dropout(x, p, training=self.training), or an nn.Dropout module",
            ],
            metrics={"max_abs_diff": diff, "module": culprit, "functional_dropout": where},
        )
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
    other_inputs = s.inputs_of(other_batch)
    with torch.no_grad():
        out_a, trace_a = _traced_forward(s.model, s.call_inputs)
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
    if not s.has_loss() or s.optimizer_factory is None:
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
