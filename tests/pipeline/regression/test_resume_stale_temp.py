"""A ``kill -9`` during a checkpoint write: the resume cleans up its temp file (issue 13).

The training process is killed by SIGKILL at the one moment the issue found a
leftover: inside the atomic write of the second checkpoint, after the temp file
was created and before anything was written to it. The resume must remove that
0-byte ``.checkpoint.pt.<8 characters>.tmp``, leave files that only look alike
alone, and still end bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from test_resume import assert_bit_identical, weights  # type: ignore[import-not-found]

from reference_pipeline.train import CHECKPOINT, train

pytestmark = pytest.mark.ml

EPOCHS = 3

#: Runs ``python -m reference_pipeline.train`` with torch.save wrapped so that the
#: process SIGKILLs itself when the second checkpoint's temp file exists, empty.
KILL_DURING_SECOND_CHECKPOINT = """
import os, runpy, signal, sys, torch
real_save, writes = torch.save, []
def save(obj, f, *args, **kwargs):
    name = os.path.basename(str(f))
    if name.startswith(".checkpoint.pt.") and name.endswith(".tmp"):
        writes.append(name)
        if len(writes) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = save
sys.argv = ["reference_pipeline.train", *sys.argv[1:]]
runpy.run_module("reference_pipeline.train", run_name="__main__")
"""

#: Names near ours that are not our temp files: they must survive the clean-up.
LOOKALIKES = (
    ".checkpoint.pt.backup.tmp",  # 6 characters, not mkstemp's 8
    ".notes.json.abcd1234.tmp",  # our pattern, but not a file train writes
    "checkpoint.pt.abcd1234.tmp",  # no leading dot
    ".checkpoint.pt.abcd1234.tmp.keep",
)


def test_resume_after_a_kill_during_a_checkpoint_write_removes_the_temp_file(
    small_params, small_splits, small_split_dir, tmp_path
):
    params = small_params(epochs=EPOCHS, patience=EPOCHS)
    reference = tmp_path / "uninterrupted"
    train(params, small_splits.train, small_splits.val, reference, progress=False)

    params_file = tmp_path / "params.yaml"
    params_file.write_text(json.dumps(params.to_dict()), encoding="utf-8")
    out = tmp_path / "killed"
    out.mkdir()
    for name in LOOKALIKES:
        (out / name).write_text("not ours\n", encoding="utf-8")
    args = ["--params", str(params_file), "--data-dir", str(small_split_dir), "--out", str(out)]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DURING_SECOND_CHECKPOINT, *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    stale = sorted(p.name for p in out.glob(".checkpoint.pt.*.tmp") if p.name not in LOOKALIKES)
    assert len(stale) == 1, stale  # what the issue found, 0 bytes
    assert (out / stale[0]).stat().st_size == 0
    assert torch.load(out / CHECKPOINT, weights_only=True)["epoch"] == 1

    result = train(params, small_splits.train, small_splits.val, out, progress=False, resume=True)

    assert result.finished
    assert result.epochs_run == EPOCHS
    assert not (out / stale[0]).exists()
    left = sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name)
    assert left == sorted(LOOKALIKES)
    for name in LOOKALIKES:
        assert (out / name).read_text(encoding="utf-8") == "not ours\n"
    assert_bit_identical(weights(out), weights(reference))
