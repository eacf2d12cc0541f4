"""DDP through torchrun: two CPU processes (gloo) train the classifier together.

With dropout off, two processes of batch b see, step for step, the same
examples as one process of batch 2b (the sampler deals indices round-robin),
and DDP averages their gradients; so the weights must match a single-process
run up to float rounding. A broken gradient sync would make them diverge.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reference_pipeline.predict import Predictor
from reference_pipeline.train import CHECKPOINT, train

pytestmark = pytest.mark.ml


def test_two_cpu_processes_train_like_one_with_twice_the_batch(
    small_params, small_splits, small_split_dir, tmp_path
):
    assert len(small_splits.train) % 2 == 0, "equal shards keep the averages comparable"
    ddp = small_params(epochs=2, batch_size=8)
    ddp.model.dropout = 0.0
    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(ddp.to_dict()), encoding="utf-8")
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "reference_pipeline.train",
        "--params",
        str(params_file),
        "--data-dir",
        str(small_split_dir),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2
    assert summary["epochs_run"] == 2
    ckpt = torch.load(out / CHECKPOINT, weights_only=True)
    assert len(ckpt["rng"]) == 2  # one RNG state per process, for resuming

    single = small_params(epochs=2, batch_size=16)
    single.model.dropout = 0.0
    train(single, small_splits.train, small_splits.val, tmp_path / "single", progress=False)
    reference = torch.load(tmp_path / "single" / CHECKPOINT, weights_only=True)
    for name, tensor in reference["model_state"].items():
        torch.testing.assert_close(ckpt["model_state"][name], tensor, rtol=1e-4, atol=1e-5)

    # What rank 0 wrote is a usable model.
    predictor = Predictor.load(out)
    assert predictor.predict(list(small_splits.test["text"][:3]))[0] in predictor.labels


def test_launcher_reports_bad_input_with_exit_2(small_split_dir, tmp_path: Path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "reference_pipeline.train",
            "--params",
            str(tmp_path / "missing.yaml"),
            "--data-dir",
            str(small_split_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {tmp_path / 'missing.yaml'}: params file not found"
