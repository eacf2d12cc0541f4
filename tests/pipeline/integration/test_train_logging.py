"""Training's side outputs: rich progress bars on a terminal, DVCLive metrics and plots."""

from __future__ import annotations

import io
import json
import sys

import pytest

from reference_pipeline.train import train

pytestmark = pytest.mark.ml


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_show_on_a_terminal_only(small_params, small_splits, tmp_path, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    train(small_params(epochs=2), small_splits.train, small_splits.val, tmp_path / "a")
    assert "epochs" in terminal.getvalue()
    assert "val F1" in terminal.getvalue()

    quiet = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    train(
        small_params(epochs=2), small_splits.train, small_splits.val, tmp_path / "b", progress=False
    )
    assert quiet.getvalue() == ""


def test_dvclive_logs_every_epoch_across_a_resume(small_params, small_splits, tmp_path):
    params = small_params(epochs=3, dvclive=True)
    train(params, small_splits.train, small_splits.val, tmp_path, progress=False, stop_after=2)
    result = train(
        params, small_splits.train, small_splits.val, tmp_path, progress=False, resume=True
    )
    live = tmp_path / "dvclive"
    metrics = json.loads((live / "metrics.json").read_text())
    assert metrics["best_val_macro_f1"] == pytest.approx(result.best_val_macro_f1)
    assert metrics["epochs_run"] == 3
    rows = (live / "plots" / "metrics" / "val_macro_f1.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["step", "val_macro_f1"]
    assert [r.split("\t")[0] for r in rows[1:]] == ["0", "1", "2"]
    assert not (tmp_path / "dvc.yaml").exists()  # no DVC experiment or stage written
