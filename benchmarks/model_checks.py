"""How long the full model-check battery takes on reference-sized classifiers.

Runs ``mltest.model.check_model`` (every check) on two CPU threads against:

* an EmbeddingBag text classifier (vocabulary 20,000, dimension 64, 5 classes,
  batch of 32 texts of 10-40 tokens), the shape of reference_pipeline's model;
* an MLP (300 inputs, 256 hidden, 5 classes, batch of 32).

The baseline, measured in the same run, is one plain training step
(zero_grad, forward, backward, Adam step) of the same model, so the battery's
cost reads as a number of training steps too. Prints a table, then one JSON
object on the last line: ``{"battery_seconds": ..., ...}`` (target: under 2 s).

Usage:
    .venv/bin/python benchmarks/model_checks.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mltest.model import check_model

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(2)
    figures: dict[str, Any] = {}
    for label, make in (("embeddingbag", text_case), ("mlp", mlp_case)):
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
    out = {
        "battery_seconds": figures["embeddingbag"]["battery_seconds"],
        "mlp_battery_seconds": figures["mlp"]["battery_seconds"],
        "target_seconds": 2.0,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "details": figures,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
