"""Unit tests of training helpers: device choice, batching, metrics, atomic saves."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from reference_pipeline import train as train_mod
from reference_pipeline.train import TrainError, atomic_torch_save, macro_f1, select_device


def test_cpu_is_always_selectable():
    assert select_device("cpu") == torch.device("cpu")


def test_auto_picks_an_available_device():
    device = select_device("auto")
    if torch.cuda.is_available():
        assert device.type == "cuda"
    elif torch.backends.mps.is_available():
        assert device.type == "mps"
    else:
        assert device == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_unavailable_cuda_is_a_clear_error():
    with pytest.raises(TrainError) as info:
        select_device("cuda")
    assert str(info.value) == "device 'cuda' requested but CUDA is not available; use cpu or auto"


def test_unknown_device_is_a_clear_error():
    with pytest.raises(
        TrainError, match=r"^unknown device 'tpu9': use auto, cpu, cuda, cuda:N or mps$"
    ):
        select_device("tpu9")


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    y_pred = np.where(rng.random(200) < 0.7, y_true, rng.integers(0, 4, 200))
    assert macro_f1(y_true, y_pred, 4) == pytest.approx(f1_score(y_true, y_pred, average="macro"))


@pytest.mark.parametrize(("n", "world"), [(10, 1), (10, 2), (11, 2), (7, 3)])
def test_batches_cover_every_index_and_ranks_get_equal_steps(n, world):
    per_rank = [
        torch.cat(train_mod._batches(n, 3, seed=1, epoch=2, rank=r, world_size=world))
        for r in range(world)
    ]
    assert len({len(p) for p in per_rank}) == 1
    assert set(torch.cat(per_rank).tolist()) == set(range(n))


def test_batches_depend_on_seed_and_epoch_only():
    def order(**kw):
        return torch.cat(train_mod._batches(50, 8, rank=0, world_size=1, **kw)).tolist()

    assert order(seed=1, epoch=1) == order(seed=1, epoch=1)
    assert order(seed=1, epoch=1) != order(seed=1, epoch=2)
    assert order(seed=1, epoch=1) != order(seed=2, epoch=1)


def test_atomic_save_leaves_no_partial_file(tmp_path: Path):
    target = tmp_path / "ckpt.pt"
    atomic_torch_save({"w": torch.ones(2)}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_torch_save({"w": Unpicklable()}, target)
    # The old checkpoint is intact and no temp file is left behind.
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_linear_schedule_decays_to_zero_over_the_epochs():
    from reference_pipeline.config import TrainConfig

    cfg = TrainConfig(lr=0.1, epochs=2, lr_schedule="linear")
    rates = [train_mod._learning_rate(cfg, e, s, 5) for e in (1, 2) for s in range(5)]
    assert rates[0] == pytest.approx(0.1)
    assert rates[-1] == pytest.approx(0.01)
    assert all(a > b for a, b in itertools.pairwise(rates))
    constant = TrainConfig(lr=0.1, epochs=2, lr_schedule="constant")
    assert {train_mod._learning_rate(constant, e, s, 5) for e in (1, 2) for s in range(5)} == {0.1}


def test_warmup_rises_to_the_peak_then_the_schedule_takes_the_rest():
    from reference_pipeline.config import TrainConfig

    def factors(schedule: str, warmup: float = 0.0) -> list[float]:
        """2 epochs of 5 steps."""
        cfg = TrainConfig(lr=1.0, epochs=2, lr_schedule=schedule)
        return [train_mod._lr_factor(cfg, e, s, 5, warmup) for e in (1, 2) for s in range(5)]

    # 30% warm-up = 3 steps rising, the peak, then a linear decay towards 0.
    linear = factors("linear", warmup=0.3)
    assert linear[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert linear[3:] == pytest.approx([1.0, 6 / 7, 5 / 7, 4 / 7, 3 / 7, 2 / 7, 1 / 7])
    assert factors("constant", warmup=0.3) == pytest.approx([0.25, 0.5, 0.75] + [1.0] * 7)
    # No warm-up is the plain schedule, and a warm-up shorter than one step is none.
    assert factors("linear") == pytest.approx([1 - i / 10 for i in range(10)])
    assert factors("linear", warmup=0.05) == pytest.approx(factors("linear"))


def test_unknown_schedule_is_a_clear_error():
    from reference_pipeline.config import TrainConfig

    message = r"^train\.lr_schedule 'cosine': use 'constant' or 'linear'$"
    with pytest.raises(TrainError, match=message):
        train_mod._learning_rate(TrainConfig(lr_schedule="cosine"), 1, 0, 1)
