"""Shared machinery of the model checks: batches, state snapshots, results.

Nothing here is a check. The checks (``checks.py``) and the battery
(``battery.py``) build on a :class:`Session`, which holds the user's model,
batch, loss and optimizer factory, validates them once, and can put the model
back exactly as it was found (parameters, buffers, gradients, ``requires_grad``
flags, train/eval modes) and the random generators too.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import math
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mltest.errors import MLCheckFailure, MLUsageError
from mltest.report import format_table, record_check

__all__ = [
    "Batch",
    "CheckResult",
    "LossFn",
    "ModelCheckFailure",
    "OptimizerFactory",
    "OutputKey",
    "Predict",
    "Session",
    "TrainStep",
    "forward",
    "output_tensor",
    "split_batch",
]

#: A training batch: a tensor (inputs only), a tuple ``(inputs, targets)``
#: (inputs may be a tuple of positional arguments), or a dict of tensors whose
#: ``labels`` key holds the targets (Hugging Face style).
Batch = Any
#: ``loss_fn(outputs, targets) -> scalar tensor``.
LossFn = Callable[[Any, Any], Any]
#: ``optimizer_factory(model) -> torch.optim.Optimizer``.
OptimizerFactory = Callable[[nn.Module], Any]
#: ``train_step(model, optimizer, batch, loss_fn) -> loss`` (a tensor, a float or None).
TrainStep = Callable[[nn.Module, Any, Any, LossFn], Any]
#: ``predict(model, inputs) -> predictions``: the user's inference path.
Predict = Callable[[nn.Module, Any], Any]
#: Which output the checks inspect: None (auto), a key/attribute, an index, or a callable.
OutputKey = str | int | Callable[[Any], Any] | None

#: Rows shown in a failure table before "... and N more".
MAX_ROWS = 8


# ---------------------------------------------------------------------------
# Results and failures
# ---------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The outcome of one model check.

    Attributes:
        name: The check's name (``"gradient_flow"``).
        passed: The verdict.
        headline: One line saying what was found.
        details: Further lines: a small table, the likely cause, what to do.
        metrics: Numbers behind the verdict (recorded in the JSON report).
        examples: Failing examples, small dicts (recorded in the JSON report).

    Example:
        >>> r = CheckResult("finite", True, "outputs, loss and gradients are finite")
        >>> r.message()
        '[finite] outputs, loss and gradients are finite'
    """

    name: str
    passed: bool
    headline: str
    details: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def message(self) -> str:
        """The diagnosis: ``[name] headline`` then the indented details."""
        lines = [f"[{self.name}] {self.headline}"]
        lines += [f"    {line}" if line else "" for line in self.details]
        return "\n".join(lines)

    def record(self) -> None:
        """Send this result to the mltest report (no-op outside pytest)."""
        record_check(
            "model",
            self.name,
            self.passed,
            headline=self.headline,
            metrics=self.metrics,
            examples=self.examples,
        )


class ModelCheckFailure(MLCheckFailure):
    """One or more model checks failed; the message lists each diagnosis.

    Attributes:
        failures: The failed :class:`CheckResult` objects.
        results: Every result of the run, passed ones included.

    Example:
        >>> try:  # doctest: +SKIP
        ...     check_model(model, batch, loss_fn, make_optimizer)
        ... except ModelCheckFailure as exc:
        ...     print([r.name for r in exc.failures])
        ['gradient_flow', 'parameters_update']
    """

    def __init__(self, message: str, failures: list[CheckResult], results: list[CheckResult]):
        super().__init__(message)
        self.failures = failures
        self.results = results


def table(
    header: Sequence[str], rows: Sequence[Sequence[object]], limit: int = MAX_ROWS
) -> list[str]:
    """Format rows as an aligned text table, cut to ``limit`` rows.

    Example:
        >>> table(["parameter", "grad"], [["fc1.weight", "None"]])
        ['parameter   grad', 'fc1.weight  None']
    """
    return format_table(header, rows, limit=limit)


def shape_str(shape: Iterable[int]) -> str:
    """Write a shape as a tuple: ``(32, 5)``, ``(32,)``, ``()``.

    Example:
        >>> shape_str((32,))
        '(32,)'
    """
    dims = list(shape)
    return "(" + ", ".join(str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def fmt(value: float) -> str:
    """A number for a message, four significant digits.

    Example:
        >>> fmt(1.234567), fmt(float("nan"))
        ('1.235', 'nan')
    """
    return f"{value:.4g}"


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def split_batch(batch: Batch, *, target_key: str = "labels") -> tuple[Any, Any]:
    """Split a batch into ``(inputs, targets)``.

    * a tensor: inputs only, targets ``None``;
    * a tuple or list: ``(inputs, targets)``; with more than two items the
      last is the targets and the rest are positional inputs;
    * a dict: ``target_key`` (default ``"labels"``) holds the targets, the
      other keys are keyword inputs.

    Raises:
        MLUsageError: On an empty tuple or a type that is none of these.

    Example:
        >>> import torch
        >>> x, y = split_batch({"input_ids": torch.zeros(2, 3), "labels": torch.zeros(2)})
        >>> sorted(x), tuple(y.shape)
        (['input_ids'], (2,))
    """
    if isinstance(batch, torch.Tensor):
        return batch, None
    if isinstance(batch, Mapping):
        if target_key in batch:
            return {k: v for k, v in batch.items() if k != target_key}, batch[target_key]
        return dict(batch), None
    if isinstance(batch, tuple | list):
        if len(batch) == 0:
            raise MLUsageError("batch is an empty tuple: give (inputs, targets)")
        if len(batch) == 1:
            return batch[0], None
        if len(batch) == 2:
            return batch[0], batch[1]
        return tuple(batch[:-1]), batch[-1]
    raise MLUsageError(
        f"batch is a {type(batch).__name__}: give a tensor, a tuple (inputs, targets) "
        "or a dict of tensors"
    )


def forward(model: nn.Module, inputs: Any) -> Any:
    """Call the model the way its inputs are packed.

    A tuple or list is passed as positional arguments, a dict as keyword
    arguments, anything else as the one argument.

    Example:
        >>> import torch
        >>> forward(torch.nn.Identity(), torch.ones(1)).tolist()
        [1.0]
    """
    if isinstance(inputs, tuple | list):
        return model(*inputs)
    if isinstance(inputs, Mapping):
        return model(**inputs)
    return model(inputs)


def output_tensor(outputs: Any) -> torch.Tensor | None:
    """The tensor to check in a model's outputs: itself, ``.logits``, or the first item.

    Example:
        >>> import torch
        >>> output_tensor((torch.zeros(2), None)).shape
        torch.Size([2])
    """
    if isinstance(outputs, torch.Tensor):
        return outputs
    logits = outputs.get("logits") if isinstance(outputs, Mapping) else None
    if logits is None:
        logits = getattr(outputs, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(outputs, tuple | list) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    return None


def named_tensors(obj: Any, prefix: str = "batch") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in a nested batch with a name such as ``batch[0]['ids']``.

    Example:
        >>> import torch
        >>> [n for n, _ in named_tensors((torch.zeros(1), {"m": torch.zeros(1)}))]
        ['batch[0]', "batch[1]['m']"]
    """
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from named_tensors(value, f"{prefix}[{key!r}]")
    elif isinstance(obj, tuple | list):
        for i, value in enumerate(obj):
            yield from named_tensors(value, f"{prefix}[{i}]")


def to_device(obj: Any, device: torch.device) -> Any:
    """Move every tensor of a nested batch to ``device``.

    Example:
        >>> import torch
        >>> to_device({"x": torch.zeros(1)}, torch.device("cpu"))["x"].device.type
        'cpu'
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(to_device(v, device) for v in obj)
    if isinstance(obj, list):
        return [to_device(v, device) for v in obj]
    return obj


def tensors_in(obj: Any) -> list[torch.Tensor]:
    """Every tensor in a nested output (tuples, lists, dicts, objects with ``.logits``).

    Example:
        >>> import torch
        >>> len(tensors_in((torch.zeros(1), [torch.ones(1)])))
        2
    """
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in tensors_in(v)]
    if isinstance(obj, tuple | list):
        return [t for v in obj for t in tensors_in(v)]
    logits = getattr(obj, "logits", None)
    return [logits] if isinstance(logits, torch.Tensor) else []


def batch_stream(batches: Any) -> Callable[[int], Any]:
    """Turn ``batches`` (a ``get_batch(step)`` callable or an iterable) into ``get(step)``.

    A re-iterable (a list, a DataLoader) starts again when exhausted; a
    one-shot iterator (a generator) cycles through the batches it gave.

    Raises:
        MLUsageError: When ``batches`` is neither, or gives no batch at all.

    Example:
        >>> get = batch_stream([1, 2])
        >>> [get(i) for i in range(3)]
        [1, 2, 1]
    """
    if callable(batches):
        return batches  # type: ignore[no-any-return]
    try:
        iterator = iter(batches)
    except TypeError:
        raise MLUsageError(
            f"batches is a {type(batches).__name__}: give an iterable of batches or a "
            "get_batch(step) callable"
        ) from None
    reiterable = iterator is not batches
    seen: list[Any] = []
    state = {"it": iterator, "cycle": 0}

    def get(step: int) -> Any:
        del step
        if state["cycle"]:
            item = seen[(state["cycle"] - 1) % len(seen)]
            state["cycle"] += 1
            return item
        try:
            item = next(state["it"])
        except StopIteration:
            if reiterable:
                state["it"] = iter(batches)
                try:
                    return next(state["it"])
                except StopIteration:
                    pass
            if not seen:
                raise MLUsageError("batches gave no batch: it is empty") from None
            state["cycle"] = 2
            return seen[0]
        if not reiterable:
            seen.append(item)
        return item

    return get


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether a parameter name matches a pattern: a glob, or a module prefix.

    Example:
        >>> matches("encoder.layer.0.weight", ["encoder"]), matches("fc.bias", ["*.bias"])
        (True, True)
    """
    return any(
        name == p or name.startswith(p + ".") or fnmatch.fnmatchcase(name, p) for p in patterns
    )


# ---------------------------------------------------------------------------
# State: parameters, buffers, gradients, modes, random generators
# ---------------------------------------------------------------------------


class ModelState:
    """A snapshot of everything the checks may change on a model.

    Example:
        >>> import torch
        >>> m = torch.nn.Linear(2, 1)
        >>> state = ModelState(m)
        >>> with torch.no_grad():
        ...     _ = m.weight.add_(1)
        >>> state.restore(m)
        >>> torch.equal(m.weight, state.params["weight"])
        True
    """

    def __init__(self, model: nn.Module) -> None:
        self.params = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        self.grads = {
            n: None if p.grad is None else p.grad.detach().clone()
            for n, p in model.named_parameters()
        }
        self.requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
        self.training = {n: m.training for n, m in model.named_modules()}

    def restore(self, model: nn.Module, *, grads: bool = True, modes: bool = True) -> None:
        """Put values, flags, gradients and modes back as they were."""
        with torch.no_grad():
            for n, p in model.named_parameters():
                saved = self.params.get(n)
                if saved is not None and saved.shape == p.shape:
                    p.copy_(saved)
                if n in self.requires_grad:
                    p.requires_grad_(self.requires_grad[n])
                if grads:
                    g = self.grads.get(n)
                    p.grad = None if g is None else g.clone()
            for n, b in model.named_buffers():
                saved = self.buffers.get(n)
                if saved is not None and saved.shape == b.shape:
                    b.copy_(saved)
        if modes:
            for n, m in model.named_modules():
                if n in self.training:
                    m.training = self.training[n]


class RngState:
    """The state of Python's, numpy's and torch's (CPU and CUDA) random generators.

    Example:
        >>> import torch
        >>> state = RngState()
        >>> a = torch.rand(1)
        >>> state.restore()
        >>> torch.equal(a, torch.rand(1))
        True
    """

    def __init__(self) -> None:
        self.python = random.getstate()
        np = sys.modules.get("numpy")
        self.numpy = np.random.get_state() if np is not None else None
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None  # type: ignore[no-untyped-call]

    def restore(self) -> None:
        """Put every generator back to the captured state."""
        random.setstate(self.python)
        np = sys.modules.get("numpy")
        if np is not None and self.numpy is not None:
            np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)


def seed_all(seed: int) -> None:
    """Seed Python's, numpy's (if imported) and torch's generators.

    Example:
        >>> seed_all(0)
    """
    random.seed(seed)
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_device(model: nn.Module) -> torch.device | None:
    """The one device holding the model's parameters and buffers, or None if mixed/none.

    Example:
        >>> import torch
        >>> model_device(torch.nn.Linear(1, 1))
        device(type='cpu')
    """
    found = {t.device for t in [*model.parameters(), *model.buffers()]}
    return found.pop() if len(found) == 1 else None


def _is_optimizer(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("step", "zero_grad", "param_groups", "state_dict"))


# ---------------------------------------------------------------------------
# Session
# ---------------------------------------------------------------------------


class Session:
    """The model, batch and training recipe under check, validated once.

    A session snapshots the model and the random generators when it is made;
    :meth:`reset` returns to that starting point before each check and
    :meth:`close` puts everything back for the caller. Optimizers made by the
    factory are snapshotted too, in case the factory hands back one the user
    already holds.

    Args:
        model: The ``nn.Module`` under check (any device).
        batch: A batch (see :func:`split_batch`).
        loss_fn: ``loss_fn(outputs, targets)``, needed by training checks.
        optimizer_factory: ``optimizer_factory(model)``, needed by training checks.
        train_step: The user's own step, ``train_step(model, optimizer, batch, loss_fn)``.
        batches: Training batches: an iterable or a ``get_batch(step)`` callable.
        predict: The user's inference path, ``predict(model, inputs)``.
        seed: Seed for every check's random numbers.
        target_key: Key of the targets in dict batches.
        frozen: Parameter names or globs that must not train.
        ignore: Parameter names or globs left out of gradient checks.
        model_loss: The model computes its own loss from the labels in the
            batch (``check_model(loss_fn=None)``): every forward gets the
            whole batch, and the loss is read from the output at ``loss_key``.
        output_key: Which output the checks inspect (see :meth:`pick`).
        loss_key: Where the model's own loss is in its output.
        attention_mask_key: Key of the attention mask in dict batches.
        pad_id: The padding token id, if any.
        causal: Whether the model is causal (position t sees only 0..t).
        sequence_dim: The sequence dimension of token inputs and outputs.
        accumulation_steps: Micro-batches a ``train_step`` accumulates on purpose.

    Raises:
        MLUsageError: On a model with no trainable parameters, an empty batch or
            a batch on another device than the model.

    Example:
        >>> import torch
        >>> s = Session(torch.nn.Linear(2, 1), (torch.zeros(4, 2), torch.zeros(4, 1)))
        >>> s.close()
    """

    def __init__(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: LossFn | None = None,
        optimizer_factory: OptimizerFactory | None = None,
        *,
        train_step: TrainStep | None = None,
        batches: Any = None,
        predict: Predict | None = None,
        seed: int = 0,
        target_key: str = "labels",
        frozen: Sequence[str] = (),
        ignore: Sequence[str] = (),
        model_loss: bool = False,
        output_key: OutputKey = None,
        loss_key: str | int = "loss",
        attention_mask_key: str = "attention_mask",
        pad_id: int | None = None,
        causal: bool = False,
        sequence_dim: int | None = None,
        accumulation_steps: int = 1,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise MLUsageError(f"model is a {type(model).__name__}, not a torch.nn.Module")
        self.model = model
        self.batch = batch
        self.loss_fn = loss_fn
        self.optimizer_factory = optimizer_factory
        self.train_step = train_step
        self.batches = batches
        self.predict = predict
        self.seed = int(seed)
        self.target_key = target_key
        self.frozen = tuple(frozen)
        self.ignore = tuple(ignore)
        self.model_loss = bool(model_loss)
        self.output_key = output_key
        self.loss_key = loss_key
        self.attention_mask_key = attention_mask_key
        self.pad_id = pad_id
        self.causal = bool(causal) or sequence_dim is not None
        self.sequence_dim = 1 if sequence_dim is None else int(sequence_dim)
        if int(accumulation_steps) < 1:
            raise MLUsageError(f"accumulation_steps is {accumulation_steps}: give 1 or more")
        self.accumulation_steps = int(accumulation_steps)
        self.inputs, self.targets = split_batch(batch, target_key=target_key)
        #: What the model is called with: the inputs, or the whole batch when it computes its loss.
        self.call_inputs = self.inputs_of(batch)
        self._validate()
        self.state = ModelState(model)
        self.rng = RngState()
        self._optimizers: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.step_calls = 0
        #: Results that several checks share (one training run on the fixed batch).
        self.cache: dict[Any, Any] = {}

    # -- validation ----------------------------------------------------------

    def _validate(self) -> None:
        params = list(self.model.named_parameters())
        if not any(p.requires_grad for _, p in params):
            what = f"all {len(params)} have requires_grad=False" if params else "it has none"
            raise MLUsageError(f"model has no trainable parameters ({what}): nothing to check")
        tensors = list(named_tensors(self.batch))
        if not tensors:
            raise MLUsageError("batch holds no tensor: give a tensor, a tuple or a dict of tensors")
        for name, t in tensors:
            if t.dim() > 0 and t.shape[0] == 0:
                raise MLUsageError(
                    f"batch is empty: {name} has shape {shape_str(t.shape)}, 0 examples"
                )
        device = model_device(self.model)
        if device is not None:
            for name, t in tensors:
                if t.device != device:
                    raise MLUsageError(
                        f"{name} is on {t.device} but the model is on {device}: move the batch "
                        f"with .to({str(device)!r})"
                    )
        self.device = device

    def validate_loss(self, loss: Any) -> torch.Tensor:
        """Check that ``loss_fn`` returned a scalar tensor.

        Raises:
            MLUsageError: When it returned something else.
        """
        who = "the model's own loss" if self.model_loss else "loss_fn"
        if not isinstance(loss, torch.Tensor):
            raise MLUsageError(
                f"{who} returned a {type(loss).__name__}, not a tensor: return the loss "
                "tensor (before .item())"
            )
        if loss.numel() != 1:
            raise MLUsageError(
                f"{who} returned a tensor of shape {shape_str(loss.shape)}, not a scalar: "
                "reduce it (reduction='mean' or .mean())"
            )
        return loss

    # -- state ---------------------------------------------------------------

    def reset(self, *, train: bool = True) -> None:
        """Return to the starting point: parameters, buffers, no gradients, seeded RNGs."""
        self.state.restore(self.model, grads=False, modes=True)
        for p in self.model.parameters():
            p.grad = None
        if train:
            self.model.train()
        seed_all(self.seed)

    def close(self) -> None:
        """Put the model, the optimizers handed out and the RNGs back as found."""
        self.state.restore(self.model)
        for opt, saved in self._optimizers.values():
            # pragma: no cover - exotic optimizers whose state cannot be loaded back
            with contextlib.suppress(RuntimeError, ValueError, KeyError):
                opt.load_state_dict(saved)
        self.rng.restore()

    @contextmanager
    def fixed_rng(self, offset: int = 1) -> Iterator[None]:
        """Run a block with freshly seeded RNGs, then resume the outer random stream."""
        saved = RngState()
        seed_all(self.seed + offset)
        try:
            yield
        finally:
            saved.restore()

    # -- training ------------------------------------------------------------

    def new_optimizer(self, model: nn.Module | None = None) -> Any:
        """A fresh optimizer from the factory (snapshotted, to be restored on close)."""
        if self.optimizer_factory is None:
            raise MLUsageError("this check needs optimizer_factory(model) -> optimizer")
        opt = self.optimizer_factory(self.model if model is None else model)
        if not _is_optimizer(opt):
            raise MLUsageError(
                f"optimizer_factory(model) returned a {type(opt).__name__}, not a "
                "torch.optim.Optimizer"
            )
        if id(opt) not in self._optimizers:
            self._optimizers[id(opt)] = (opt, copy.deepcopy(opt.state_dict()))
        else:  # the factory hands back one optimizer: start each check from its first state
            opt.load_state_dict(copy.deepcopy(self._optimizers[id(opt)][1]))
        return opt

    def has_loss(self) -> bool:
        """Whether there is a loss: ``loss_fn``, or the model's own."""
        return self.loss_fn is not None or self.model_loss

    def need_loss(self) -> LossFn:
        """The loss function, or a usage error naming the check's need.

        With the model's own loss this reads the loss from the outputs (the
        targets are ignored: the model got them with the batch).
        """
        if self.model_loss:
            return lambda outputs, targets: self.pick_loss(outputs)
        if self.loss_fn is None:
            raise MLUsageError("this check needs loss_fn(outputs, targets) -> scalar tensor")
        return self.loss_fn

    def inputs_of(self, batch: Batch) -> Any:
        """What the model is called with for ``batch`` (see :func:`forward`).

        The inputs alone; with the model's own loss, the whole batch: a dict
        with its labels, a tuple ``(x, y)`` as ``model(x, y)``.
        """
        if not self.model_loss:
            return split_batch(batch, target_key=self.target_key)[0]
        if isinstance(batch, tuple | list) and len(batch) == 2:
            x, y = batch
            return (*x, y) if isinstance(x, tuple | list) else (x, y)
        if isinstance(batch, tuple | list) and len(batch) == 1:
            return batch[0]
        if isinstance(batch, Mapping):
            return dict(batch)
        return batch

    def run(self, inputs: Any = None, model: nn.Module | None = None) -> Any:
        """Call the model on ``inputs`` (default: the batch's), as the user would."""
        return forward(
            self.model if model is None else model, self.call_inputs if inputs is None else inputs
        )

    def pick(self, outputs: Any) -> torch.Tensor | None:
        """The tensor the checks inspect in the model's outputs.

        ``output_key`` None: the output itself, ``.logits``/``["logits"]``, or
        the first tensor of a tuple; a str: that dict key or attribute; an
        int: that item of a tuple; a callable: ``output_key(outputs)``.
        """
        key = self.output_key
        if key is None:
            return output_tensor(outputs)
        if callable(key):
            got = key(outputs)
        elif isinstance(key, int):
            got = outputs[key] if isinstance(outputs, tuple | list) else None
        elif isinstance(outputs, Mapping):
            got = outputs.get(key)
        else:
            got = getattr(outputs, key, None)
        if not isinstance(got, torch.Tensor):
            raise MLUsageError(
                f"output_key={key!r}: the model's output ({type(outputs).__name__}) has no "
                f"tensor there (got {type(got).__name__})"
            )
        return got

    def pick_loss(self, outputs: Any) -> Any:
        """The model's own loss in its outputs (``loss_key``).

        Raises:
            MLUsageError: When the outputs hold no loss there.
        """
        key = self.loss_key
        got: Any = None
        if isinstance(outputs, tuple | list):
            if isinstance(key, int):
                got = outputs[key] if -len(outputs) <= key < len(outputs) else None
            else:
                got = next(
                    (o for o in outputs if isinstance(o, torch.Tensor) and o.numel() == 1), None
                )
        elif isinstance(outputs, Mapping):
            got = outputs.get(key)
        elif isinstance(key, str):
            got = getattr(outputs, key, None)
        if got is None:
            where = f"[{key}]" if isinstance(key, int) else f".{key}"
            raise MLUsageError(
                f"loss_fn=None, but the model's output ({type(outputs).__name__}) has no loss at "
                f"{where}: put the labels in the batch (target_key={self.target_key!r}) so the "
                "model computes its loss, set loss_key=, or give loss_fn"
            )
        return got

    def compute_loss(self, outputs: Any, targets: Any) -> Any:
        """The loss of ``outputs`` (unvalidated): ``loss_fn`` or the model's own."""
        return self.need_loss()(outputs, targets)

    def loss_of(self, batch: Batch, model: nn.Module | None = None) -> torch.Tensor:
        """Forward ``batch`` and return the validated loss (with its graph)."""
        targets = split_batch(batch, target_key=self.target_key)[1]
        out = self.run(self.inputs_of(batch), model)
        return self.validate_loss(self.compute_loss(out, targets))

    def step(self, optimizer: Any, batch: Batch, model: nn.Module | None = None) -> float | None:
        """One training step: the user's ``train_step`` or zero_grad/forward/backward/step.

        With ``accumulation_steps=k`` one step is ``k`` calls of ``train_step``
        on the batch (the step accumulates k micro-batches and steps on the
        last); the mean of the losses it returned is the step's loss.
        """
        model = self.model if model is None else model
        if self.train_step is not None:
            losses = [
                as_float(self.train_step(model, optimizer, batch, self.need_loss()))
                for _ in range(self.accumulation_steps)
            ]
            known = [v for v in losses if v is not None]
            return sum(known) / len(known) if len(known) == len(losses) else None
        optimizer.zero_grad(set_to_none=True)
        loss = self.loss_of(batch, model)
        if loss.requires_grad:
            loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return float(loss.detach())

    def measure(self, batch: Batch) -> float:
        """The loss on ``batch`` without a graph, with the same random masks every time."""
        with self.fixed_rng(), torch.no_grad():
            return float(self.loss_of(batch).detach())

    def trainable(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters with ``requires_grad`` that are not ignored."""
        return [
            (n, p)
            for n, p in self.model.named_parameters()
            if p.requires_grad and not matches(n, self.ignore)
        ]


def as_float(value: Any) -> float | None:
    """A loss value as a float: tensors, numbers; None stays None.

    Example:
        >>> import torch
        >>> as_float(torch.tensor(0.5)), as_float(None)
        (0.5, None)
    """
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean()) if value.numel() else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def is_finite(x: float | None) -> bool:
    """Whether a loss value is a finite number.

    Example:
        >>> is_finite(1.0), is_finite(float("nan")), is_finite(None)
        (True, False, False)
    """
    return x is not None and math.isfinite(x)
