"""Training on CUDA with mixed precision; skipped with the reason where there is no GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_pipeline.predict import Predictor
from reference_pipeline.train import train

pytestmark = [pytest.mark.ml, pytest.mark.cuda]


@pytest.mark.limit_cuda_memory("2 GB")
def test_amp_training_on_cuda_gives_a_model_that_runs_on_cpu(small_params, small_splits, tmp_path):
    params = small_params(epochs=3, device="cuda", amp=True)
    result = train(params, small_splits.train, small_splits.val, tmp_path, progress=False)
    assert result.device.startswith("cuda")
    assert result.finished
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    texts = list(small_splits.test["text"])
    on_gpu = Predictor.load(tmp_path, device="cuda").predict_proba(texts)
    on_cpu = Predictor.load(tmp_path, device="cpu").predict_proba(texts)
    # Inference runs in float32 on both devices: only summation order differs.
    np.testing.assert_allclose(on_gpu, on_cpu, atol=1e-4)
    assert torch.cuda.max_memory_allocated() > 0
