"""The sequence zoo: tiny transformers with the bugs people ship, each with a correct twin.

``build(name, buggy, seed)`` returns the keyword arguments of ``check_model``
for a case. A tiny causal GPT (learned position embeddings, nanoGPT-style
attention written by hand) and a tiny transformer classifier taking a Hugging
Face-style dict batch (``input_ids``, ``attention_mask``, ``labels``) cover the
bugs; ``TRAPS`` are correct models whose sizes coincide (B == T, B == d_model,
B == vocab, B == num_classes) or whose outputs and losses come in the shapes
Hugging Face and nanoGPT use.

Plain Python (no tests): pytester-driven tests copy it into their project.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

VOCAB, D_MODEL, T, B, CLASSES, HEADS = 24, 16, 8, 6, 3, 2
PAD = 0


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def adamw(lr: float = 1e-2) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda m: torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)


class SelfAttention(nn.Module):
    """Multi-head self-attention, written out as in nanoGPT.

    ``mask``: ``"causal"`` (position t sees 0..t), ``"none"`` (sees everything),
    ``"off_by_one"`` (t also sees t + 1: ``torch.tril(..., diagonal=1)``).
    """

    def __init__(self, d: int, heads: int, mask: str = "none", dropout: float = 0.0) -> None:
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.heads = heads
        self.mask = mask
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)
        ones = torch.ones(t, t, dtype=torch.bool, device=x.device)
        if self.mask == "causal":
            att = att.masked_fill(~torch.tril(ones), float("-inf"))
        elif self.mask == "off_by_one":
            att = att.masked_fill(~torch.tril(ones, diagonal=1), float("-inf"))  # bug
        if key_mask is not None:  # (b, t): 1 = real token
            att = att.masked_fill(~key_mask.bool()[:, None, None, :], float("-inf"))
        att = self.drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, mask: str, dropout: float, f_dropout: str) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = SelfAttention(d, heads, mask, dropout)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 2 * d)
        self.out = nn.Linear(2 * d, d)
        self.p = dropout
        self.f_dropout = f_dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), key_mask)
        h = self.out(F.gelu(self.fc(self.ln2(x))))
        if self.f_dropout == "bug":
            h = F.dropout(h, self.p)  # bug: training defaults to True, so eval() cannot stop it
        elif self.f_dropout == "ok":
            h = F.dropout(h, self.p, training=self.training)
        return x + h


class TinyGPT(nn.Module):
    """A causal LM: token + learned position embeddings, blocks, a tied-free head.

    ``returns``: ``"logits"`` (a tensor), ``"tuple"`` (nanoGPT's ``(logits,
    loss)``; with no targets only the last position's logits, as nanoGPT does
    at inference), ``"dict"`` / ``"dataclass"`` (Hugging Face style, with
    ``.logits`` and, given ``labels``, ``.loss`` of the shifted targets).
    """

    def __init__(
        self,
        vocab: int = VOCAB,
        d: int = D_MODEL,
        block_size: int = T,
        layers: int = 1,
        mask: str = "causal",
        dropout: float = 0.0,
        f_dropout: str = "",
        returns: str = "logits",
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(block_size, d)
        self.blocks = nn.ModuleList(
            Block(d, HEADS, mask, dropout, f_dropout) for _ in range(layers)
        )
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.returns = returns

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> Any:
        t = idx.shape[1]
        pos = torch.arange(t, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # wpe(pos) is (T, d): not batch-aligned
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln(x))
        if self.returns == "logits":
            return logits
        if self.returns == "tuple":  # nanoGPT
            if targets is None:
                return logits[:, [-1], :], None
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
            return logits, loss
        loss = None
        if targets is not None:  # Hugging Face: labels are the inputs, shifted here
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1)
            )
        if self.returns == "dataclass":
            return CausalLMOutput(logits=logits, loss=loss)
        return ModelOutput(logits=logits, loss=loss)


class ModelOutput(OrderedDict):  # type: ignore[type-arg]
    """A Hugging Face-style output: an ordered dict whose items are also attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class CausalLMOutput:
    """A dataclass output with ``.logits`` and ``.loss``."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


def lm_data(seed: int, b: int = B, t: int = T, vocab: int = VOCAB) -> torch.Tensor:
    """Token ids (b, t + 1) of a learnable language: each token is the previous plus one."""
    g = _gen(seed)
    start = torch.randint(0, vocab, (b, 1), generator=g)
    steps = torch.randint(1, 3, (b, t), generator=g)
    return torch.cat([start, start + steps.cumsum(1)], 1) % vocab


def lm_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out.reshape(-1, out.size(-1)), y.reshape(-1))


def step_clip(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def step_clip_no_zero_grad(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    loss = loss_fn(model(x), y)
    loss.backward()  # bug: the previous step's gradients are still there
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def step_clip_value_no_zero_grad(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    loss = loss_fn(model(x), y)
    loss.backward()  # bug: no zero_grad
    torch.nn.utils.clip_grad_value_(model.parameters(), 0.01)
    opt.step()
    return loss


def _scaler_step(zero: bool) -> Callable[[nn.Module, Any, Any, Any], Any]:
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)

    def step(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
        x, y = batch
        if zero:
            opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        return loss

    return step


def _accumulating_step(k: int, zero: bool) -> Callable[[nn.Module, Any, Any, Any], Any]:
    calls = {"n": 0}

    def step(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
        x, y = batch
        loss = loss_fn(model(x), y) / k
        loss.backward()
        calls["n"] += 1
        if calls["n"] % k == 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if zero:
                opt.zero_grad(set_to_none=True)
        return loss * k

    return step


def _gpt_case(seed: int, **extra: Any) -> dict[str, Any]:
    model_args = {k: extra.pop(k) for k in list(extra) if k in ("mask", "dropout", "f_dropout")}
    torch.manual_seed(seed)
    ids = lm_data(seed)
    case: dict[str, Any] = {
        "model": TinyGPT(**model_args),
        "batch": (ids[:, :-1], ids[:, 1:]),
        "loss_fn": lm_loss,
        "optimizer_factory": adamw(),
        "causal": True,
        "seed": seed,
    }
    case.update(extra)
    return case


# --- bugs of the causal LM ------------------------------------------------------


def no_causal_mask(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _gpt_case(seed, mask="none" if buggy else "causal")


def mask_off_by_one(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _gpt_case(seed, mask="off_by_one" if buggy else "causal")


def zero_grad_under_clipping(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _gpt_case(seed, train_step=step_clip_no_zero_grad if buggy else step_clip)


def zero_grad_under_clip_value(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _gpt_case(seed, train_step=step_clip_value_no_zero_grad if buggy else step_clip)


def zero_grad_under_grad_scaler(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _gpt_case(seed, train_step=_scaler_step(zero=not buggy))


def functional_double_softmax(buggy: bool, seed: int = 0) -> dict[str, Any]:
    def softmax_then_ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(out, dim=-1)  # bug: F.cross_entropy applies log_softmax itself
        return F.cross_entropy(probs.reshape(-1, probs.size(-1)), y.reshape(-1))

    return _gpt_case(seed, loss_fn=softmax_then_ce if buggy else lm_loss)


def unshifted_targets(buggy: bool, seed: int = 0) -> dict[str, Any]:
    case = _gpt_case(seed)
    x = case["batch"][0]
    if buggy:
        case["batch"] = (x, x.clone())  # bug: targets are the inputs, not the next tokens
    return case


def ignore_index_minus_one(buggy: bool, seed: int = 0) -> dict[str, Any]:
    case = _gpt_case(seed)
    x, y = case["batch"]
    y = y.clone()
    y[:, -2:] = -1  # the dataset marks positions not to learn with -1

    def loss_fn(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if buggy:  # bug: F.cross_entropy's ignore_index is -100
            return F.cross_entropy(out.reshape(-1, out.size(-1)), t.reshape(-1))
        return F.cross_entropy(out.reshape(-1, out.size(-1)), t.reshape(-1), ignore_index=-1)

    case.update(batch=(x, y), loss_fn=loss_fn)
    return case


def functional_dropout_in_eval(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _gpt_case(seed, dropout=0.1, f_dropout="bug" if buggy else "ok")


# --- the transformer classifier with padding ------------------------------------


class TinyEncoderClassifier(nn.Module):
    """A bidirectional encoder over a dict batch; mean-pools real tokens into class logits.

    With ``use_mask=False`` it ignores its attention mask: attention and the
    mean run over padding too. ``loss_inside``: given ``labels`` it returns a
    Hugging Face-style output with ``.loss`` too.
    """

    def __init__(
        self,
        vocab: int = VOCAB,
        d: int = D_MODEL,
        classes: int = CLASSES,
        use_mask: bool = True,
        loss_inside: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d, padding_idx=PAD)
        self.wpe = nn.Embedding(32, d)
        self.block = Block(d, HEADS, "none", dropout, "")
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)
        self.use_mask = use_mask
        self.loss_inside = loss_inside

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> Any:
        t = input_ids.shape[1]
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        if self.use_mask:
            x = self.ln(self.block(x, attention_mask))
            m = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
        else:
            x = self.ln(self.block(x))  # bug: attends to padding
            pooled = x.mean(1)  # bug: averages padding in
        logits = self.head(pooled)
        if not self.loss_inside:
            return ModelOutput(logits=logits)
        out = ModelOutput(logits=logits)
        if labels is not None:
            out["loss"] = F.cross_entropy(logits, labels)
        return out


def classifier_batch(
    seed: int, b: int = B, t: int = T, classes: int = CLASSES, vocab: int = VOCAB
) -> dict[str, torch.Tensor]:
    """A padded dict batch: lengths 3..t, pad id 0 after the real tokens; label from the tokens."""
    g = _gen(seed)
    ids = torch.randint(1, vocab, (b, t), generator=g)
    lengths = torch.randint(3, t + 1, (b,), generator=g)
    lengths[0] = t - 2  # at least one example is padded
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    ids = ids * mask  # pad id 0
    labels = ids[:, 0] % classes
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _classifier_case(seed: int, **extra: Any) -> dict[str, Any]:
    names = ("use_mask", "loss_inside", "classes")
    model_args = {k: extra.pop(k) for k in list(extra) if k in names}
    torch.manual_seed(seed)
    case: dict[str, Any] = {
        "model": TinyEncoderClassifier(**model_args),
        "batch": classifier_batch(seed, classes=model_args.get("classes", CLASSES)),
        "loss_fn": lambda out, y: F.cross_entropy(out.logits, y),
        "optimizer_factory": adamw(),
        "seed": seed,
    }
    case.update(extra)
    return case


def padding_ignored(buggy: bool, seed: int = 0) -> dict[str, Any]:
    return _classifier_case(seed, use_mask=not buggy)


BUGS: dict[str, Callable[[bool, int], dict[str, Any]]] = {
    "no_causal_mask": no_causal_mask,
    "mask_off_by_one": mask_off_by_one,
    "zero_grad_under_clipping": zero_grad_under_clipping,
    "zero_grad_under_clip_value": zero_grad_under_clip_value,
    "zero_grad_under_grad_scaler": zero_grad_under_grad_scaler,
    "functional_double_softmax": functional_double_softmax,
    "unshifted_targets": unshifted_targets,
    "ignore_index_minus_one": ignore_index_minus_one,
    "functional_dropout_in_eval": functional_dropout_in_eval,
    "padding_ignored": padding_ignored,
}


# --- correct traps (no buggy twin) --------------------------------------------


def gpt_b_equals_t(seed: int = 0) -> dict[str, Any]:
    """B == T == 8: the position embedding's (T, d) output looks batch-aligned by size."""
    case = _gpt_case(seed)
    ids = lm_data(seed, b=T)
    case["batch"] = (ids[:, :-1], ids[:, 1:])
    return case


def gpt_b_equals_d_model(seed: int = 0) -> dict[str, Any]:
    case = _gpt_case(seed)
    ids = lm_data(seed, b=D_MODEL)
    case["batch"] = (ids[:, :-1], ids[:, 1:])
    return case


def gpt_b_equals_vocab(seed: int = 0) -> dict[str, Any]:
    case = _gpt_case(seed)
    ids = lm_data(seed, b=VOCAB)
    case["batch"] = (ids[:, :-1], ids[:, 1:])
    return case


def classifier_b_equals_classes(seed: int = 0) -> dict[str, Any]:
    case = _classifier_case(seed)
    case["batch"] = classifier_batch(seed, b=CLASSES)
    return case


def classifier_b_equals_t(seed: int = 0) -> dict[str, Any]:
    case = _classifier_case(seed)
    case["batch"] = classifier_batch(seed, b=T)
    return case


def gpt_loss_inside_tuple(seed: int = 0) -> dict[str, Any]:
    """nanoGPT: ``model(idx, targets) -> (logits, loss)``; ``model(idx)``: last-position logits."""
    case = _gpt_case(seed, loss_fn=None, output_shape=(None, T, VOCAB))
    case["model"] = TinyGPT(returns="tuple")
    return case


def gpt_hf_dict_output(seed: int = 0) -> dict[str, Any]:
    """Hugging Face causal LM: labels are the input ids, shifted inside forward."""
    case = _gpt_case(seed, loss_fn=None)
    torch.manual_seed(seed)
    case["model"] = TinyGPT(returns="dict")
    ids = lm_data(seed)[:, :-1]
    case["batch"] = {"idx": ids, "targets": ids.clone()}
    case["target_key"] = "targets"
    case["output_key"] = "logits"
    return case


def gpt_dataclass_output(seed: int = 0) -> dict[str, Any]:
    case = gpt_hf_dict_output(seed)
    torch.manual_seed(seed)
    case["model"] = TinyGPT(returns="dataclass")
    return case


def classifier_loss_inside(seed: int = 0) -> dict[str, Any]:
    return _classifier_case(seed, loss_inside=True, loss_fn=None)


def classifier_pad_id(seed: int = 0) -> dict[str, Any]:
    """The classifier, checked by appending pad id 0 (with mask zeros)."""
    return _classifier_case(seed, pad_id=PAD)


def gpt_dropout_module(seed: int = 0) -> dict[str, Any]:
    """minGPT defaults: dropout 0.1 and lr 5e-4 (a falling loss needs more than 200 steps)."""
    return _gpt_case(seed, dropout=0.1, optimizer_factory=adamw(5e-4))


def gpt_grad_accumulation(seed: int = 0) -> dict[str, Any]:
    """A step that accumulates 2 micro-batches on purpose, declared with accumulation_steps=2."""
    return _gpt_case(seed, train_step=_accumulating_step(2, zero=True), accumulation_steps=2)


class TorchEncoderClassifier(nn.Module):
    """``nn.TransformerEncoderLayer`` with a key padding mask: its eval-mode fast path
    (nested tensors) must not read as randomness nor as padding leaking."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D_MODEL, padding_idx=PAD)
        self.encoder = nn.TransformerEncoderLayer(D_MODEL, HEADS, 32, 0.0, batch_first=True)
        self.head = nn.Linear(D_MODEL, CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        h = self.encoder(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).float()
        return ModelOutput(logits=self.head((h * m).sum(1) / m.sum(1)))


def torch_encoder_layer(seed: int = 0) -> dict[str, Any]:
    case = _classifier_case(seed)
    torch.manual_seed(seed)
    case["model"] = TorchEncoderClassifier()
    return case


TRAPS: dict[str, Callable[[int], dict[str, Any]]] = {
    "torch_encoder_layer": torch_encoder_layer,
    "gpt_b_equals_t": gpt_b_equals_t,
    "gpt_b_equals_d_model": gpt_b_equals_d_model,
    "gpt_b_equals_vocab": gpt_b_equals_vocab,
    "classifier_b_equals_classes": classifier_b_equals_classes,
    "classifier_b_equals_t": classifier_b_equals_t,
    "gpt_loss_inside_tuple": gpt_loss_inside_tuple,
    "gpt_hf_dict_output": gpt_hf_dict_output,
    "gpt_dataclass_output": gpt_dataclass_output,
    "classifier_loss_inside": classifier_loss_inside,
    "classifier_pad_id": classifier_pad_id,
    "gpt_dropout_module": gpt_dropout_module,
    "gpt_grad_accumulation": gpt_grad_accumulation,
}


def build(name: str, buggy: bool = False, seed: int = 0) -> dict[str, Any]:
    """The ``check_model`` keyword arguments of a sequence-zoo case."""
    if name in TRAPS:
        return TRAPS[name](seed)
    return BUGS[name](buggy, seed)
