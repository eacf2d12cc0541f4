"""How long the full model-check battery takes on reference-sized classifiers.

Runs ``mltest.model.check_model`` (every check) on two CPU threads against:

* an EmbeddingBag text classifier (vocabulary 20,000, dimension 64, 5 classes,
  batch of 32 texts of 10-40 tokens), the shape of reference_pipeline's model;
* an MLP (300 inputs, 256 hidden, 5 classes, batch of 32).

The baseline, measured in the same run, is one plain training step
(zero_grad, forward, backward, Adam step) of the same model, so the battery's
cost reads as a number of training steps too. Prints a table, then one JSON
object on the last line: ``{"battery_seconds": ..., ...}`` (target: under 2 s).

It then times a 2-layer transformer language model (GPT-style: learned
position embeddings, causal self-attention; vocabulary 256, d_model 64, 4
heads, batch 8 of 32 tokens): the full battery with causality and padding
(``causal=True, pad_id=0``), median of ``--repeats``, against the same battery
with one check left out at a time, so each check's cost reads as the
difference (target: under 1 s per call). And the same battery with one torch
thread (what ``check_model`` uses by default) against two and against
torch's default, which is how the default was chosen.

Usage:
    .venv/bin/python benchmarks/model_checks.py [--repeats 5] [--skip-classifiers]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mltest.model import CHECKS, check_model

VOCAB, DIM, CLASSES, BATCH = 20_000, 64, 5, 32


class TextClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(VOCAB, DIM, mode="mean")
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(DIM, CLASSES)

    def forward(self, text: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.embed(text, offsets)))


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(300, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, CLASSES)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def text_case() -> dict[str, Any]:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(10, 41, (BATCH,), generator=g)
    text = torch.randint(0, VOCAB, (int(lengths.sum()),), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)[:-1]])
    labels = torch.randint(0, CLASSES, (BATCH,), generator=g)
    torch.manual_seed(0)
    return {"model": TextClassifier(), "batch": ((text, offsets), labels)}


def mlp_case() -> dict[str, Any]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, 300, generator=g)
    labels = torch.randint(0, CLASSES, (BATCH,), generator=g)
    torch.manual_seed(0)
    return {"model": MLP(), "batch": (x, labels)}


def adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-2)


def predict(model: nn.Module, inputs: Any) -> torch.Tensor:
    model.eval()
    with torch.inference_mode():
        out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
        return out.argmax(1)


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: lazy imports, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_step(case: dict[str, Any]) -> Callable[[], None]:
    model, (inputs, labels) = case["model"], case["batch"]
    opt = adam(model)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        out = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
        loss_fn(out, labels).backward()
        opt.step()

    return step


LM_VOCAB, LM_DIM, LM_HEADS, LM_T, LM_BATCH, LM_LAYERS = 256, 64, 4, 32, 8, 2


class CausalSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(LM_DIM, 3 * LM_DIM)
        self.proj = nn.Linear(LM_DIM, LM_DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(b, t, LM_HEADS, d // LM_HEADS).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // LM_HEADS)
        causal = torch.tril(torch.ones(t, t, dtype=torch.bool, device=x.device))
        att = torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        return self.proj((att @ v).transpose(1, 2).contiguous().view(b, t, d))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(LM_DIM), nn.LayerNorm(LM_DIM)
        self.attn = CausalSelfAttention()
        self.mlp = nn.Sequential(
            nn.Linear(LM_DIM, 4 * LM_DIM), nn.GELU(), nn.Linear(4 * LM_DIM, LM_DIM), nn.Dropout(0.1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TransformerLM(nn.Module):
    """A 2-layer GPT: token + learned position embeddings, causal blocks, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.wte = nn.Embedding(LM_VOCAB, LM_DIM)
        self.wpe = nn.Embedding(2 * LM_T, LM_DIM)  # room for the padding check's extra tokens
        self.blocks = nn.Sequential(*[Block() for _ in range(LM_LAYERS)])
        self.ln = nn.LayerNorm(LM_DIM)
        self.head = nn.Linear(LM_DIM, LM_VOCAB)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.head(self.ln(self.blocks(self.wte(idx) + self.wpe(pos))))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, LM_VOCAB), targets.reshape(-1), ignore_index=-1)


def lm_case() -> dict[str, Any]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(1, LM_VOCAB, (LM_BATCH, LM_T + 1), generator=g)
    torch.manual_seed(0)
    return {"model": TransformerLM(), "batch": (ids[:, :-1], ids[:, 1:])}


def clipped_step(model: nn.Module, opt: Any, batch: Any, loss_fn: Any) -> Any:
    x, y = batch
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def lm_battery(
    case: dict[str, Any], seconds: list[dict[str, float]] | None = None, **options: Any
) -> Callable[[], int]:
    def run() -> int:
        report = check_model(
            case["model"],
            case["batch"],
            lm_loss,
            lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3),
            train_step=clipped_step,
            causal=True,
            pad_id=0,
            **options,
        )
        if seconds is not None:
            seconds.append(report.seconds)
        return len(report.results)

    return run


def median_wall_and_cpu(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds (CPU time is what load on a shared
    machine disturbs least for a one-thread run)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def lm_figures(repeats: int) -> dict[str, Any]:
    case = lm_case()
    timings: list[dict[str, float]] = []
    full = lm_battery(case, timings)
    checks_run = full()
    timings.clear()
    seconds, cpu = median_wall_and_cpu(full, repeats)
    own = {
        name: round(statistics.median(t.get(name, 0.0) for t in timings[1:]), 4)
        for name in CHECKS
        if any(name in t for t in timings)
    }
    cost: dict[str, float] = {}
    shared = ["loss_decreases", "overfit_batch", "training_determinism"]
    for name, skip in [*((n, [n]) for n in CHECKS), ("shared training run", shared)]:
        _, without = median_wall_and_cpu(lm_battery(case, skip=skip), repeats)
        cost[name] = round(cpu - without, 4)
    threads: dict[str, float] = {}
    for label, n in (("1", 1), ("2", 2), ("default", None)):
        wall, _ = median_wall_and_cpu(lm_battery(case, num_threads=n), min(repeats, 3))
        threads[label] = round(wall, 4)
    print(f"transformer LM battery {seconds:7.3f} s wall, {cpu:7.3f} s CPU ({checks_run} checks)")
    print("  each check: its own wall time in the battery | CPU of the battery minus without it")
    for name, c in sorted(cost.items(), key=lambda kv: -own.get(kv[0], kv[1])):
        mine = f"{own[name] * 1000:8.1f} ms" if name in own else " " * 11
        print(f"  {name:22s} {mine} | {c * 1000:8.1f} ms")
    print(
        "  wall seconds by torch threads: " + ", ".join(f"{k}: {v:.3f}" for k, v in threads.items())
    )
    return {
        "battery_seconds": round(seconds, 4),
        "battery_cpu_seconds": round(cpu, 4),
        "checks_run": checks_run,
        "check_seconds": own,
        "leave_one_out_cpu_seconds": cost,
        "threads_wall_seconds": threads,
        "target_seconds": 1.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-classifiers", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    figures: dict[str, Any] = {}
    classifiers = () if args.skip_classifiers else (("embeddingbag", text_case), ("mlp", mlp_case))
    for label, make in classifiers:
        case = make()
        results: list[int] = []

        def battery(case: dict[str, Any] = case, results: list[int] = results) -> None:
            report = check_model(
                case["model"],
                case["batch"],
                nn.CrossEntropyLoss(),
                adam,
                predict=predict,
                output_shape=(None, CLASSES),
            )
            results.append(len(report.results))

        seconds = median_seconds(battery, args.repeats)
        step = median_seconds(plain_step(make()), args.repeats * 4)
        figures[label] = {
            "battery_seconds": round(seconds, 4),
            "checks_run": results[-1],
            "plain_step_ms": round(step * 1000, 3),
            "battery_in_steps": round(seconds / step, 1),
        }
        print(
            f"{label:13s} battery {seconds:7.3f} s ({results[-1]} checks), plain step "
            f"{step * 1000:7.2f} ms, battery = {seconds / step:6.0f} steps"
        )
    lm = lm_figures(args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {
        "battery_seconds": figures.get("embeddingbag", {}).get("battery_seconds"),
        "mlp_battery_seconds": figures.get("mlp", {}).get("battery_seconds"),
        "transformer_lm_battery_seconds": lm["battery_seconds"],
        "target_seconds": 2.0,
        "transformer_lm_target_seconds": 1.0,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "load_average_1min": load,
        "details": {**figures, "transformer_lm": lm},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
