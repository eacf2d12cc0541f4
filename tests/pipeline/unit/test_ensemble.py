"""The ensemble model: its members' probabilities averaged, saved as one self-contained folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from reference_pipeline.predict import EnsemblePredictor, PredictError, Predictor, save_ensemble

pytestmark = pytest.mark.ml

TEXTS = [
    "the striker scored twice in the cup final",
    "shares fell sharply after the profit warning",
    "the minister announced an election date",
    "",
]


def test_an_ensemble_averages_its_members_probabilities(
    trained_dir: Path, twin_trained_dir: Path, tmp_path: Path
) -> None:
    twin = twin_trained_dir
    folder = save_ensemble(tmp_path / "ensemble", {"a": trained_dir, "b": twin})
    ensemble = Predictor.load(folder)
    assert isinstance(ensemble, EnsemblePredictor)
    a, b = Predictor.load(trained_dir), Predictor.load(twin)
    expected = (a.predict_proba(TEXTS) + b.predict_proba(TEXTS)) / 2
    assert not np.allclose(a.predict_proba(TEXTS), b.predict_proba(TEXTS))  # a real average
    np.testing.assert_allclose(ensemble.predict_proba(TEXTS), expected, atol=1e-6)
    assert ensemble.labels == a.labels
    assert ensemble.predict(TEXTS) == [a.labels[i] for i in expected.argmax(axis=1)]
    info = ensemble.info
    assert info["encoder"]["kind"] == "ensemble"
    assert info["encoder"]["members"] == ["a", "b"]
    assert info["encoder"]["member_encoders"]["a"]["kind"] == "hashed"


def test_the_ensemble_folder_is_self_contained(trained_dir: Path, tmp_path: Path) -> None:
    member = tmp_path / "member"
    shutil.copytree(trained_dir, member)
    folder = save_ensemble(tmp_path / "ensemble", {"a": member, "b": trained_dir})
    before = Predictor.load(folder).predict_proba(TEXTS)
    shutil.rmtree(member)  # the ensemble holds its own copies
    np.testing.assert_allclose(Predictor.load(folder).predict_proba(TEXTS), before)
    assert json.loads((folder / "ensemble.json").read_text())["members"] == ["a", "b"]
    assert not (folder / "members" / "a" / "checkpoint.pt").exists()  # resume state left out


def test_saving_over_an_ensemble_replaces_it_whole(trained_dir: Path, tmp_path: Path) -> None:
    folder = save_ensemble(tmp_path / "ensemble", {"a": trained_dir, "b": trained_dir})
    save_ensemble(folder, {"x": trained_dir, "y": trained_dir, "z": trained_dir})
    assert sorted(p.name for p in (folder / "members").iterdir()) == ["x", "y", "z"]
    with pytest.raises(PredictError, match=r"model\.pt: not found; train the model first"):
        save_ensemble(folder, {"x": trained_dir, "gone": tmp_path / "gone"})
    assert Predictor.load(folder).info["encoder"]["members"] == ["x", "y", "z"]  # kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ensemble"]  # no staging left


def test_members_with_different_labels_are_refused(trained_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(trained_dir, other)
    labels = json.loads((other / "label_encoder.json").read_text())
    labels["classes"] = list(reversed(labels["classes"]))
    (other / "label_encoder.json").write_text(json.dumps(labels))
    folder = save_ensemble(tmp_path / "ensemble", {"a": trained_dir, "b": other})
    with pytest.raises(PredictError, match=r"ensemble member 'b' has labels .* train them on"):
        Predictor.load(folder)


def test_one_member_or_a_bad_manifest_is_one_clear_error(trained_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PredictError, match="an ensemble needs at least 2 members, got 1"):
        save_ensemble(tmp_path / "one", {"a": trained_dir})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "ensemble.json").write_text("{not json")
    with pytest.raises(PredictError, match=r"ensemble\.json: not an ensemble manifest"):
        Predictor.load(bad)
    (bad / "ensemble.json").write_text(json.dumps({"members": ["missing", "also"]}))
    with pytest.raises(PredictError, match=r"missing[/\\]model\.pt: not found"):
        Predictor.load(bad)
