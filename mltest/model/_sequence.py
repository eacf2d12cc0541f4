"""Across examples and positions: batch independence, causality, padding."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mltest.errors import MLUsageError
from mltest.model._common import (
    _BATCHNORM,
    _named,
)
from mltest.model._core import (
    CheckResult,
    Session,
    fmt,
    shape_str,
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


# ---------------------------------------------------------------------------
# Sequences: causality and padding
# ---------------------------------------------------------------------------


def token_ids(s: Session) -> tuple[Any, torch.Tensor] | None:
    """The batch's token ids: (key or index, tensor).

    The first integer tensor with a sequence dim (``input_ids`` first in a dict batch).
    """
    inputs = s.call_inputs
    sd = s.sequence_dim
    if isinstance(inputs, Mapping):
        keys = sorted(inputs, key=lambda k: k != "input_ids")
        for k in keys:
            v = inputs[k]
            if (
                k not in (s.attention_mask_key, s.target_key)
                and isinstance(v, torch.Tensor)
                and not v.is_floating_point()
                and v.dim() > sd
            ):
                return k, v
        return None
    items = list(inputs) if isinstance(inputs, tuple | list) else [inputs]
    for i, v in enumerate(items):
        if isinstance(v, torch.Tensor) and v.dim() > sd:
            return i, v
    return None


def _replace(inputs: Any, where: Any, value: torch.Tensor) -> Any:
    if isinstance(inputs, Mapping):
        return {**inputs, where: value}
    if isinstance(inputs, tuple | list):
        items = list(inputs)
        items[where] = value
        return type(inputs)(items)
    return value


def _positions(first: list[int]) -> str:
    if len(first) == 1:
        return f"position {first[0]}"
    if first == list(range(first[0], first[-1] + 1)):
        return f"positions {first[0]}-{first[-1]}"
    return "positions " + ", ".join(str(j) for j in first[:6]) + (" ..." if len(first) > 6 else "")


#: Output positions probed by gradient (one backward pass each); longer sequences
#: are sampled evenly, always with the first two and the last but one.
MAX_PROBED_POSITIONS = 16


def _probe_positions(length: int) -> list[int]:
    """Output positions whose dependence on later inputs is checked."""
    last = length - 2
    if last + 1 <= MAX_PROBED_POSITIONS:
        return list(range(last + 1))
    step = last / (MAX_PROBED_POSITIONS - 1)
    return sorted({0, 1, last, *(round(i * step) for i in range(MAX_PROBED_POSITIONS))})


def _future_by_gradient(
    s: Session, out: torch.Tensor, probes: list[torch.Tensor], length: int
) -> dict[int, tuple[list[int], float]]:
    sd = s.sequence_dim
    gen = torch.Generator(device="cpu").manual_seed(s.seed)
    weights = torch.rand(out.shape, generator=gen).to(out.device, out.dtype) + 0.5
    leaks: dict[int, tuple[list[int], float]] = {}
    for t in _probe_positions(length):
        target = (out.select(sd, t) * weights.select(sd, t)).sum()
        grads = torch.autograd.grad(target, probes, retain_graph=True, allow_unused=True)
        per_pos = torch.zeros(length, device=out.device)
        for g, p in zip(grads, probes, strict=True):
            if g is None or p.dim() <= sd or p.shape[sd] != length:
                continue
            dims = [d for d in range(g.dim()) if d != sd]
            per_pos = per_pos + g.detach().abs().float().amax(dim=dims)
        tol = 1e-6 * max(float(per_pos.max()), 1e-30)
        future = [j for j in range(t + 1, length) if float(per_pos[j]) > tol]
        if future:
            leaks[t] = (future, float(per_pos[t + 1 :].max()))
    return leaks


def _future_by_perturbation(
    s: Session, where: Any, ids: torch.Tensor, base: torch.Tensor
) -> dict[int, tuple[list[int], float]]:
    sd = s.sequence_dim
    length = ids.shape[sd]
    lo, hi = ids.min(), ids.max()
    scale = float(base.detach().abs().max()) if base.numel() else 0.0
    found: dict[int, list[int]] = {}
    worst: dict[int, float] = {}
    for j in range(1, length):
        changed = ids.clone()
        col = changed.select(sd, j)
        col.copy_(torch.where(col == lo, hi, lo))
        with torch.no_grad():
            out = s.pick(s.run(_replace(s.call_inputs, where, changed)))
        if out is None:
            return {}
        for t in range(j):
            diff = float((out.select(sd, t) - base.select(sd, t)).abs().max())
            if diff > 1e-5 * scale + 1e-7:
                found.setdefault(t, []).append(j)
                worst[t] = max(worst.get(t, 0.0), diff)
    return {t: (js, worst[t]) for t, js in sorted(found.items())}


def run_causality(s: Session) -> CheckResult | None:
    """Output at position t must not depend on inputs after t (a causal model).

    Gradient-based at float inputs and at the token-embedding outputs;
    perturbation-based (change the token at position j, watch positions < j)
    when the token ids reach no ``nn.Embedding``. Runs in eval mode.

    Raises:
        MLUsageError: When the output has no sequence dimension to check.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer, causal=True)  # doctest: +SKIP
        >>> run_causality(s).passed  # doctest: +SKIP
        True
    """
    if not s.causal:
        return None
    sd = s.sequence_dim
    token = token_ids(s)
    float_seq = [t for _, t in _named(s.call_inputs) if t.is_floating_point() and t.dim() > sd]
    ref = token[1] if token is not None else (float_seq[0] if float_seq else None)
    if ref is None or ref.dim() <= sd:
        raise MLUsageError(
            f"causal=True, but no input has a sequence dimension {sd}: give token ids or "
            "embeddings shaped (batch, time, ...) or set sequence_dim="
        )
    length = ref.shape[sd]
    n = ref.shape[0]
    s.reset(train=False)
    s.model.eval()
    probes = Probes(s, n)
    out = s.pick(probes.forward())
    if out is None:
        return None
    if out.dim() <= sd or out.shape[sd] != length:
        raise MLUsageError(
            f"causal=True, but the output {shape_str(out.shape)} has no position axis of length "
            f"{length} at dim {sd} (last-position logits?): call the model so that it returns "
            "every position (nanoGPT does when given targets: loss_fn=None), or set output_key="
        )
    seq_probes = [p for p in probes.tensors if p.dim() > sd and p.shape[sd] == length]
    if seq_probes and out.requires_grad:
        leaks = _future_by_gradient(s, out, seq_probes, length)
        how, measure = f"gradients at {probes.where}", "max |gradient|"
        checked = len(_probe_positions(length))
    elif token is not None:
        leaks = _future_by_perturbation(s, token[0], token[1], out.detach())
        how, measure = "changing one token at a time", "max |change|"
        checked = length - 1
    else:
        return None
    if not leaks:
        return CheckResult(
            "causality",
            True,
            f"output at position t depends only on positions <= t ({how}, {length} positions)",
            metrics={"positions": length},
        )
    t0, (f0, _) = next(iter(leaks.items()))
    off_by_one = all(js == [t + 1] for t, (js, _) in leaks.items())
    everything = all(js == list(range(t + 1, length)) for t, (js, _) in leaks.items()) and len(
        leaks
    ) == (length - 1)
    if off_by_one:
        cause = "causal mask off by one?"
        hint = (
            "likely cause: torch.tril(..., diagonal=1) or a mask built with <= where < was meant: "
            "position t sees t + 1, so the model can copy the token it should predict"
        )
    elif everything:
        cause = "no causal mask?"
        hint = (
            "likely cause: the causal mask is missing or not applied (masked_fill on a copy, "
            "is_causal=False, attn_mask=None): every position sees the whole sequence"
        )
    else:
        cause = "future positions leak"
        hint = "likely cause: a mask that lets some later positions through, or a mixing layer "
        hint += "(a convolution or pooling that is not left-padded) over the time axis"
    rows = [
        (
            f"position {t}",
            _positions(js).removeprefix("positions ").removeprefix("position "),
            fmt(g),
        )
        for t, (js, g) in leaks.items()
    ]
    return CheckResult(
        "causality",
        False,
        f"causality broken: position {t0} reads {_positions(f0)}: {cause}",
        [
            *table(["output", "reads later positions", measure], rows),
            f"{len(leaks)} of {checked} positions read later ones ({how})",
            hint,
        ],
        metrics={"leaking_positions": len(leaks), "positions": length},
        examples=[{"position": t, "reads": js} for t, (js, _) in leaks.items()],
    )


def _mask_key(s: Session) -> str | None:
    inputs = s.call_inputs
    key = s.attention_mask_key
    if isinstance(inputs, Mapping) and isinstance(inputs.get(key), torch.Tensor):
        return key
    return None


def _append(t: torch.Tensor, extra: int, sd: int, value: float) -> torch.Tensor:
    shape = list(t.shape)
    shape[sd] = extra
    return torch.cat([t, torch.full(shape, value, dtype=t.dtype, device=t.device)], dim=sd)


def run_padding(s: Session) -> CheckResult | None:
    """Padding must not move any output of a real position, nor a pooled output.

    Runs when the batch has the attention-mask key or ``pad_id`` is given:
    appends padding positions (pad id, mask 0) with two different contents,
    and changes the content of the batch's own padded positions; compares the
    outputs in eval mode.

    Example:
        >>> s = Session(model, batch, loss_fn, make_optimizer, pad_id=0)  # doctest: +SKIP
        >>> run_padding(s).passed  # doctest: +SKIP
        True
    """
    mask_key = _mask_key(s)
    if mask_key is None and s.pad_id is None:
        return None
    token = token_ids(s)
    if token is None:
        return None
    where, ids = token
    sd = s.sequence_dim
    length = ids.shape[sd]
    inputs = s.call_inputs
    mask = inputs[mask_key] if mask_key is not None else None
    pad = 0 if s.pad_id is None else int(s.pad_id)
    other = int(ids.max()) if int(ids.max()) != pad else int(ids.min())
    if other == pad:
        other = pad + 1
    real = ids != pad if mask is None else mask != 0
    s.reset(train=False)
    s.model.eval()
    with torch.no_grad():
        base = s.pick(s.run())
    if base is None:
        return None
    per_position = base.dim() > sd and base.shape[0] == ids.shape[0] and base.shape[sd] == length
    extra = max(2, length // 4)

    def variant(content: int, appended: bool) -> Any:
        new = dict(inputs) if isinstance(inputs, Mapping) else inputs
        if appended:
            new_ids = _append(ids, extra, sd, content)
            if isinstance(inputs, Mapping):
                for k, v in inputs.items():
                    if k == where or not isinstance(v, torch.Tensor):
                        continue
                    if v.dim() > sd and v.shape[: sd + 1] == ids.shape[: sd + 1]:
                        fill = -100 if k == s.target_key else 0
                        new[k] = _append(v, extra, sd, fill)
        else:
            new_ids = torch.where(real.reshape(ids.shape), ids, torch.full_like(ids, content))
        return _replace(new, where, new_ids)

    trials: list[tuple[str, Any]] = []
    if mask is not None and bool((~real).any()):
        trials.append(("changing the content of padded positions", variant(other, False)))
    trials.append((f"appending {extra} padding positions", variant(pad, True)))
    if mask is not None:
        trials.append(
            (f"appending {extra} masked positions holding token {other}", variant(other, True))
        )
    found: list[tuple[str, float, list[tuple[int, int | None]]]] = []
    notes: list[str] = []
    scale = float(base.abs().max()) if base.numel() else 0.0
    tol = 1e-4 * scale + 1e-6
    for what, new_inputs in trials:
        try:
            with torch.no_grad():
                out = s.pick(s.run(new_inputs))
        except (IndexError, RuntimeError) as exc:  # position embeddings shorter than T + extra
            notes.append(f"{what} raised {type(exc).__name__}; not checked that way")
            continue
        if out is None:
            continue
        if per_position and out.dim() > sd:
            out = out.narrow(sd, 0, length)
            if out.shape != base.shape:
                continue
            diff = (out - base).abs()
            keep = real.reshape(real.shape + (1,) * (diff.dim() - real.dim())).expand_as(diff)
            diff = torch.where(keep, diff, torch.zeros_like(diff))
            reduce = [d for d in range(diff.dim()) if d not in (0, sd)]
            per = diff.amax(dim=reduce) if reduce else diff
            bad = (per > tol).nonzero().tolist()
            spots: list[tuple[int, int | None]] = [(int(i), int(j)) for i, j in bad]
        else:
            if out.shape != base.shape:
                continue
            diff = (out - base).abs()
            per = diff.flatten(1).amax(1) if diff.dim() > 1 else diff
            spots = [(int(i), None) for i in (per > tol).nonzero().flatten().tolist()]
        if spots:
            found.append((what, float(diff.max()), spots))
    if not found and len(notes) == len(trials):
        return None  # every way of padding raised: nothing was checked
    if not found:
        kind = "real-position outputs" if per_position else "pooled outputs"
        checked = "; ".join(w for w, _ in trials)
        return CheckResult(
            "padding",
            True,
            f"padding does not move the {kind} ({checked})",
            notes,
            metrics={"trials": len(trials)},
        )
    what, worst, spots = max(found, key=lambda f: f[1])
    if per_position:
        at = ", ".join(f"example {i} position {j}" for i, j in spots[:4])
        kind = "real-position outputs"
    else:
        n = ids.shape[0]
        at = f"{len(spots)} of {n} examples" if len(spots) > 1 else f"example {spots[0][0]}"
        kind = "pooled output"
    more = f" and {len(spots) - 4} more" if per_position and len(spots) > 4 else ""
    rows = [(w, fmt(m), str(len(sp))) for w, m, sp in found]
    return CheckResult(
        "padding",
        False,
        f"padding leaks into the outputs: {what} moved the {kind} by up to {fmt(worst)} "
        f"({at}{more})",
        [
            *table(["padding change", "max change", "outputs moved"], rows),
            *notes,
            "likely cause: the attention mask is not applied (attention over pad tokens: mask "
            "the scores with masked_fill(mask == 0, -inf) before softmax, or pass "
            "key_padding_mask), or pooling averages over padding (divide the masked sum by "
            "mask.sum(1))",
        ],
        metrics={"max_change": worst, "outputs_moved": len(spots)},
        examples=[{"change": w, "max_change": m} for w, m, _ in found],
    )
