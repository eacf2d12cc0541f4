"""A zoo of deliberately buggy models and training steps, each with a correct twin.

``build(name, buggy)`` returns the keyword arguments of ``check_model`` for a
case. Each buggy case must be caught by at least one check whose message names
the bug; each twin (``buggy=False``) must pass every check. Everything is tiny
so the whole zoo runs in seconds on two CPU cores.

This file is plain Python (no tests): the pytester-driven tests copy it into
their temporary project and import it there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

N, D, C, T = 16, 8, 4, 5


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def classification_data(n: int = N, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Linearly separable-ish classes: y = argmax(x @ w)."""
    g = _gen(seed)
    x = torch.randn(n, D, generator=g)
    w = torch.randn(D, C, generator=_gen(1234))
    return x, (x @ w).argmax(1)


def adam(lr: float = 1e-2) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda m: torch.optim.Adam(m.parameters(), lr=lr)


class MLP(nn.Module):
    def __init__(self, out: int = C, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D, 32)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(32, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def _classifier_case(**extra: Any) -> dict[str, Any]:
    torch.manual_seed(0)
    case: dict[str, Any] = {
        "model": MLP(),
        "batch": classification_data(),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": adam(),
    }
    case.update(extra)
    return case


# --- 1. forgotten zero_grad -------------------------------------------------


def step_without_zero_grad(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    loss = loss_fn(model(x), y)
    loss.backward()  # bug: the previous step's gradients are still there
    opt.step()
    return loss


def step_with_zero_grad(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss


def zero_grad(buggy: bool) -> dict[str, Any]:
    return _classifier_case(train_step=step_without_zero_grad if buggy else step_with_zero_grad)


# --- 2. softmax before CrossEntropyLoss ---------------------------------------


class SoftmaxHead(nn.Module):
    def __init__(self, softmax: bool) -> None:
        super().__init__()
        self.body = MLP()
        self.softmax = softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.body(x)
        return torch.softmax(logits, dim=1) if self.softmax else logits  # bug: softmax + CE


def softmax_before_ce(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(model=SoftmaxHead(softmax=buggy))


# --- 3. a frozen layer; 4. a layer missing from the optimizer -----------------


def frozen_layer(buggy: bool) -> dict[str, Any]:
    case = _classifier_case()
    if buggy:
        case["model"].fc1.requires_grad_(False)  # bug: frozen by mistake
    return case


def missing_from_optimizer(buggy: bool) -> dict[str, Any]:
    def only_head(m: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(m.fc2.parameters(), lr=1e-2)  # type: ignore[union-attr]

    return _classifier_case(optimizer_factory=only_head if buggy else adam())


# --- 5. batch mixing through view where permute was needed --------------------


class TimeMajorPool(nn.Module):
    def __init__(self, use_view: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(D, 16)
        self.head = nn.Linear(16, C)
        self.use_view = use_view

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, T, D)
        n, t, _ = x.shape
        h = torch.tanh(self.proj(x))
        # to time-major (T, N, H): view reinterprets memory and mixes examples
        tm = h.view(t, n, -1) if self.use_view else h.permute(1, 0, 2)
        return self.head(tm.mean(0))


def view_vs_permute(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    g = _gen(3)
    x = torch.randn(N, T, D, generator=g)
    y = (x.mean(1) @ torch.randn(D, C, generator=_gen(4))).argmax(1)
    return {
        "model": TimeMajorPool(use_view=buggy),
        "batch": (x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": adam(),
    }


# --- 6. detach in forward ----------------------------------------------------


class Detached(MLP):
    def __init__(self, detach: bool) -> None:
        super().__init__()
        self.detach = detach

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        if self.detach:
            h = h.detach()  # bug: cuts fc1 off from the loss
        return self.fc2(h)


def detach_in_forward(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(model=Detached(detach=buggy))


# --- 7. learning rate 0; 8. step never called ---------------------------------


def lr_zero(buggy: bool) -> dict[str, Any]:
    return _classifier_case(optimizer_factory=adam(0.0 if buggy else 1e-2))


def step_without_step(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()  # bug: no opt.step()
    return loss


def step_never_called(buggy: bool) -> dict[str, Any]:
    return _classifier_case(train_step=step_without_step if buggy else step_with_zero_grad)


# --- 9. NaN from log(softmax) on large logits ----------------------------------


class LogProbs(nn.Module):
    def __init__(self, naive: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(D, C)
        self.naive = naive

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(x) * 100.0  # large logits (a low temperature)
        if self.naive:
            return torch.log(torch.softmax(logits, dim=1))  # bug: log(0) = -inf
        return torch.log_softmax(logits, dim=1)


def nan_log_softmax(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(model=LogProbs(naive=buggy), loss_fn=nn.NLLLoss())


# --- 10. wrong output dimension ------------------------------------------------


def wrong_output_dim(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(model=MLP(out=C - 1 if buggy else C), output_shape=(None, C))


# --- 11. dropout left on at inference (through predict) -----------------------


def predict_without_eval(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1)  # bug: no model.eval()


def predict_with_eval(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        return model(x).argmax(1)


def dropout_at_inference(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(
        model=MLP(dropout=0.2), predict=predict_without_eval if buggy else predict_with_eval
    )


# --- 12. randomness in forward ---------------------------------------------------


class Noise(nn.Module):
    def __init__(self, always: bool) -> None:
        super().__init__()
        self.always = always

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.always or self.training:  # bug when always: noise at inference too
            return x + 0.1 * torch.randn_like(x)
        return x


class Noisy(MLP):
    def __init__(self, always: bool) -> None:
        super().__init__()
        self.noise = Noise(always)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.noise(torch.relu(self.fc1(x))))


def randomness_in_forward(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(model=Noisy(always=buggy))


# --- 13. labels shuffled independently of inputs (through batches) ------------


def shuffled_labels(buggy: bool) -> dict[str, Any]:
    x_all, y_all = classification_data(n=48, seed=5)

    def get_batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = _gen(step)
        idx = torch.randperm(48, generator=g)[:N]
        if buggy:  # bug: labels drawn with their own permutation
            return x_all[idx], y_all[torch.randperm(48, generator=g)[:N]]
        return x_all[idx], y_all[idx]

    return _classifier_case(batch=get_batch(0), batches=get_batch)


# --- 14. target-shape broadcasting (MSELoss with (N, 1) vs (N,)) ----------------


class Regressor(nn.Module):
    def __init__(self, squeeze: bool) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D, 32), nn.ReLU(), nn.Linear(32, 1))
        self.squeeze = squeeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out.squeeze(-1) if self.squeeze else out  # bug: (N, 1) against (N,)


def target_broadcasting(buggy: bool) -> dict[str, Any]:
    torch.manual_seed(0)
    g = _gen(7)
    x = torch.randn(N, D, generator=g)
    y = x @ torch.randn(D, generator=g)
    return {
        "model": Regressor(squeeze=not buggy),
        "batch": (x, y),
        "loss_fn": nn.MSELoss(),
        "optimizer_factory": adam(),
    }


# --- 15. zero-init symmetry ---------------------------------------------------------


def zero_init(buggy: bool) -> dict[str, Any]:
    case = _classifier_case()
    if buggy:
        for p in case["model"].parameters():
            nn.init.zeros_(p)  # bug: every unit starts (and stays) the same
    return case


BUGS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "zero_grad": zero_grad,
    "softmax_before_ce": softmax_before_ce,
    "frozen_layer": frozen_layer,
    "missing_from_optimizer": missing_from_optimizer,
    "view_vs_permute": view_vs_permute,
    "detach_in_forward": detach_in_forward,
    "lr_zero": lr_zero,
    "step_never_called": step_never_called,
    "nan_log_softmax": nan_log_softmax,
    "wrong_output_dim": wrong_output_dim,
    "dropout_at_inference": dropout_at_inference,
    "randomness_in_forward": randomness_in_forward,
    "shuffled_labels": shuffled_labels,
    "target_broadcasting": target_broadcasting,
    "zero_init": zero_init,
}


# --- correct models of other shapes (no buggy twin) ----------------------------------


class BatchNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(D, 32)
        self.bn = nn.BatchNorm1d(32)
        self.fc2 = nn.Linear(32, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def batchnorm() -> dict[str, Any]:
    torch.manual_seed(0)
    return _classifier_case(model=BatchNormNet())


class BagClassifier(nn.Module):
    def __init__(self, vocab: int = 50) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab, 16, mode="mean")
        self.fc = nn.Linear(16, C)

    def forward(self, text: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(text, offsets))


def embedding_bag() -> dict[str, Any]:
    torch.manual_seed(0)
    g = _gen(11)
    lengths = torch.randint(2, 6, (N,), generator=g)
    text = torch.randint(0, 50, (int(lengths.sum()),), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
    y = torch.randint(0, C, (N,), generator=g)
    return {
        "model": BagClassifier(),
        "batch": ((text, offsets), y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": adam(5e-2),
    }


class Output(dict):  # type: ignore[type-arg]
    """A Hugging Face-style output: a dict whose items are also attributes."""

    def __getattr__(self, name: str) -> Any:
        return self[name]


class TokenClassifier(nn.Module):
    def __init__(self, vocab: int = 50) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16)
        self.fc = nn.Linear(16, C)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Output:
        h = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        pooled = h.sum(1) / attention_mask.sum(1, keepdim=True)
        return Output(logits=self.fc(pooled))


def hf_dict() -> dict[str, Any]:
    torch.manual_seed(0)
    g = _gen(13)
    ids = torch.randint(0, 50, (N, 6), generator=g)
    mask = torch.ones(N, 6)
    mask[:, 4:] = 0
    return {
        "model": TokenClassifier(),
        "batch": {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.randint(0, C, (N,), generator=g),
        },
        "loss_fn": lambda out, y: F.cross_entropy(out.logits, y),
        "optimizer_factory": adam(5e-2),
    }


class SparseBag(nn.Module):
    def __init__(self, vocab: int = 50) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, 16, sparse=True)
        self.fc = nn.Linear(16, C)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(ids).mean(1))


def sparse_embedding() -> dict[str, Any]:
    torch.manual_seed(0)
    g = _gen(17)

    def two_optimizers(m: nn.Module) -> Any:
        # SparseAdam for the sparse embedding, Adam for the rest, stepped together.
        class Both(torch.optim.Optimizer):
            def __init__(self) -> None:
                self.sparse = torch.optim.SparseAdam(list(m.embed.parameters()), lr=5e-2)  # type: ignore[union-attr]
                self.dense = torch.optim.Adam(m.fc.parameters(), lr=5e-2)  # type: ignore[union-attr]
                super().__init__(list(m.parameters()), {"lr": 5e-2})

            def step(self, closure: Any = None) -> None:  # type: ignore[override]
                self.sparse.step()
                self.dense.step()

        return Both()

    return {
        "model": SparseBag(),
        "batch": (
            torch.randint(0, 50, (N, 5), generator=g),
            torch.randint(0, C, (N,), generator=g),
        ),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer_factory": two_optimizers,
    }


EXTRA: dict[str, Callable[[], dict[str, Any]]] = {
    "batchnorm": batchnorm,
    "embedding_bag": embedding_bag,
    "hf_dict": hf_dict,
    "sparse_embedding": sparse_embedding,
}


def build(name: str, buggy: bool = False) -> dict[str, Any]:
    """The ``check_model`` keyword arguments of a zoo case."""
    if name in EXTRA:
        return EXTRA[name]()
    return BUGS[name](buggy)
