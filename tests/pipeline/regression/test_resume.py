"""Resuming from a checkpoint ends with the same weights, bit for bit, as never stopping.

Two ways a run stops early are covered: ``stop_after`` (the loop returns after
an epoch, as an interrupted run would) and a training process killed with
SIGKILL right after its first checkpoint, resumed from the command line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reference_pipeline.train import CHECKPOINT, TrainError, train

pytestmark = pytest.mark.ml

EPOCHS = 4


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "model.pt", weights_only=True)["state_dict"]


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    assert not differing, f"weights differ after resume: {differing}"


@pytest.fixture(scope="module")
def uninterrupted(small_splits, tmp_path_factory, small_params) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    result = train(
        small_params(epochs=EPOCHS), small_splits.train, small_splits.val, out, progress=False
    )
    assert result.finished
    assert result.epochs_run == EPOCHS
    return out


def test_stopped_then_resumed_run_matches_an_uninterrupted_one(
    uninterrupted, small_splits, tmp_path, small_params
):
    params = small_params(epochs=EPOCHS)
    first = train(
        params, small_splits.train, small_splits.val, tmp_path, progress=False, stop_after=2
    )
    assert not first.finished
    assert first.epochs_run == 2
    assert not (tmp_path / "model.pt").exists()
    second = train(
        params, small_splits.train, small_splits.val, tmp_path, progress=False, resume=True
    )
    assert second.finished
    assert second.epochs_run == EPOCHS
    assert [h["epoch"] for h in second.history] == [1.0, 2.0, 3.0, 4.0]
    assert_bit_identical(weights(tmp_path), weights(uninterrupted))
    # Not only the kept (best) weights: the last epoch's weights and optimizer agree too.
    a = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    b = torch.load(uninterrupted / CHECKPOINT, weights_only=True)
    assert_bit_identical(a["model_state"], b["model_state"])
    assert a["best_metric"] == b["best_metric"]


def test_checkpoint_holds_what_resuming_needs(uninterrupted):
    ckpt = torch.load(uninterrupted / CHECKPOINT, weights_only=True)
    assert set(ckpt) >= {
        "model_args",
        "model_state",
        "optimizer_state",
        "epoch",
        "best_metric",
        "best_state",
        "rng",
        "config",
        "label_encoder",
        "data_hash",
    }
    assert ckpt["epoch"] == EPOCHS
    assert ckpt["label_encoder"]["classes"][0] == "business"
    assert ckpt["config"]["train"]["epochs"] == EPOCHS


def test_resume_refuses_a_checkpoint_from_other_data(
    uninterrupted, small_splits, tmp_path, small_params
):
    import shutil

    shutil.copy(uninterrupted / CHECKPOINT, tmp_path / CHECKPOINT)
    other_train = small_splits.train.iloc[1:]
    with pytest.raises(TrainError, match="checkpoint was trained on different data"):
        train(small_params(epochs=EPOCHS), other_train, small_splits.val, tmp_path, resume=True)


#: Epochs of the killed run: long enough (tiny epochs, no early stop) that the
#: kill, sent as soon as the first checkpoint appears, lands well before the end.
KILL_EPOCHS = 40


def test_killed_process_resumes_to_the_same_weights(
    small_splits, small_split_dir, tmp_path, small_params
):
    params = small_params(epochs=KILL_EPOCHS, patience=KILL_EPOCHS)
    reference = tmp_path / "uninterrupted"
    train(params, small_splits.train, small_splits.val, reference, progress=False)

    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params.to_dict()), encoding="utf-8")
    out = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "reference_pipeline.train",
        "--params",
        str(params_file),
        "--data-dir",
        str(small_split_dir),
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    ckpt = out / CHECKPOINT
    deadline = time.monotonic() + 60
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    state = torch.load(ckpt, weights_only=True)
    assert not state["finished"], f"the kill landed after the last epoch ({state['epoch']})"
    assert not (out / "model.pt").exists()

    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["epochs_run"] == KILL_EPOCHS
    assert_bit_identical(weights(out), weights(reference))


def test_resume_with_changed_settings_warns(small_params, small_splits, tmp_path):
    data = (small_splits.train, small_splits.val, tmp_path)
    train(small_params(epochs=3), *data, progress=False, stop_after=1)
    with pytest.warns(
        UserWarning, match=r"resuming with changed train settings \(train\.lr: 0\.05 -> 0\.01\)"
    ):
        train(small_params(epochs=3, lr=0.01), *data, progress=False, resume=True)
