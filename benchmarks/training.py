"""Benchmark: the neural classifier vs the TF-IDF baseline on the BBC News test split.

Run: ``.venv/bin/python benchmarks/training.py [--params params.yaml] [--seeds 42,1,2]
[--set data.dedupe_titles=true]``

For each training seed, on the split ``params.yaml`` defines (seeded,
stratified, after cleaning and de-duplication), in this process:

- the neural model: ``reference_pipeline.train.train`` with the params as
  they are (DVCLive and progress bars off, nothing else changed), timed from
  the call to its return (featurizing, training, validation, per-epoch
  checkpoints and final artefacts; imports excluded), then scored on the test
  split through ``Predictor`` (the real inference path);
- the TF-IDF + logistic regression baseline: ``fit`` timed the same way, then
  scored on the same test split.

Targets (issue 6): model macro-F1 >= 0.97 and training < 30 s on 2 CPU cores.
When CUDA is available the model is trained once more on the GPU and its
training throughput (samples per second, mean over epochs after the first)
is reported. The load average is printed: the machine may be shared.

The last line is one JSON object:
``{"model_macro_f1", "model_train_seconds", "tfidf_macro_f1", "tfidf_train_seconds", ...}``
(the first seed's figures; with several seeds the means and minima follow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference_pipeline.baselines import TfidfLogRegBaseline  # noqa: E402
from reference_pipeline.config import load_params  # noqa: E402
from reference_pipeline.data import LabelEncoder, clean, load_dataset, split, subsample  # noqa: E402
from reference_pipeline.predict import Predictor  # noqa: E402
from reference_pipeline.train import macro_f1, train  # noqa: E402


def score(encoder: LabelEncoder, tags: Any, proba: np.ndarray) -> tuple[float, float]:
    y_true = encoder.encode(tags)
    y_pred = proba.argmax(axis=1)
    return macro_f1(y_true, y_pred, len(encoder)), float(np.mean(y_true == y_pred))


def run_model(params: Any, splits: Any, device: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(params, splits.train, splits.val, Path(out), device=device, progress=False)
        seconds = time.perf_counter() - start
        predictor = Predictor.load(out, device=device)
        encoder = LabelEncoder(predictor.labels)
        proba = predictor.predict_proba(list(splits.test["text"]))
        f1, acc = score(encoder, splits.test["tag"], proba)
    throughput = [h["samples_per_second"] for h in result.history[1:]] or [
        result.history[0]["samples_per_second"]
    ]
    return {
        "macro_f1": f1,
        "accuracy": acc,
        "seconds": seconds,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "val_macro_f1": result.best_val_macro_f1,
        "samples_per_second": statistics.mean(throughput),
        "device": result.device,
    }


def run_tfidf(splits: Any, seed: int) -> dict[str, Any]:
    encoder = LabelEncoder().fit(splits.train["tag"])
    model = TfidfLogRegBaseline(len(encoder), seed=seed)
    # fit() imports scikit-learn lazily; import it first so only fitting is timed.
    import sklearn.feature_extraction.text
    import sklearn.linear_model  # noqa: F401

    start = time.perf_counter()
    model.fit(list(splits.train["text"]), encoder.encode(splits.train["tag"]))
    seconds = time.perf_counter() - start
    f1, acc = score(encoder, splits.test["tag"], model.predict_proba(list(splits.test["text"])))
    return {"macro_f1": f1, "accuracy": acc, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--seeds", default="", help="training seeds, comma-separated")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    overrides: dict[str, object] = dict(item.split("=", 1) for item in args.set)
    params = load_params(args.params, {**overrides, "train.dvclive": False})
    seeds = [int(s) for s in args.seeds.split(",") if s] or [params.train.seed]
    cfg = params.data
    raw = load_dataset(cfg.source)
    df = clean(raw, lowercase=cfg.lowercase, dedupe_titles=cfg.dedupe_titles)
    df = subsample(df, cfg.max_rows_per_label)
    splits = split(
        df,
        val_size=cfg.val_size,
        test_size=cfg.test_size,
        seed=cfg.seed,
        min_rows_per_label=cfg.min_rows_per_label,
    )
    print(
        f"data: {len(splits.train)} train, {len(splits.val)} val, {len(splits.test)} test; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads available, "
        f"train.num_threads={params.train.num_threads}, load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    runs = []
    for seed in seeds:
        params.train.seed = seed
        model = run_model(params, splits, "cpu")
        tfidf = run_tfidf(splits, seed)
        runs.append((model, tfidf))
        print(
            f"seed {seed}: model macro-F1 {model['macro_f1']:.4f} (acc {model['accuracy']:.4f}, "
            f"val {model['val_macro_f1']:.4f}, {model['epochs']} epochs, "
            f"best {model['best_epoch']}) "
            f"in {model['seconds']:.1f} s, {model['samples_per_second']:.0f} samples/s on cpu | "
            f"TF-IDF macro-F1 {tfidf['macro_f1']:.4f} (acc {tfidf['accuracy']:.4f}) "
            f"in {tfidf['seconds']:.1f} s"
        )
    model, tfidf = runs[0]
    figures: dict[str, Any] = {
        "model_macro_f1": round(model["macro_f1"], 4),
        "model_train_seconds": round(model["seconds"], 2),
        "tfidf_macro_f1": round(tfidf["macro_f1"], 4),
        "tfidf_train_seconds": round(tfidf["seconds"], 2),
        "model_accuracy": round(model["accuracy"], 4),
        "model_epochs": model["epochs"],
        "cpu_samples_per_second": round(model["samples_per_second"], 1),
        "seeds": seeds,
    }
    if len(runs) > 1:
        f1s = [m["macro_f1"] for m, _ in runs]
        secs = [m["seconds"] for m, _ in runs]
        figures["model_macro_f1_mean"] = round(statistics.mean(f1s), 4)
        figures["model_macro_f1_min"] = round(min(f1s), 4)
        figures["model_train_seconds_max"] = round(max(secs), 2)
    if torch.cuda.is_available():
        params.train.seed = seeds[0]
        gpu = run_model(params, splits, "cuda")
        print(
            f"cuda ({torch.cuda.get_device_name()}): macro-F1 {gpu['macro_f1']:.4f} in "
            f"{gpu['seconds']:.1f} s, {gpu['samples_per_second']:.0f} samples/s"
        )
        figures["gpu_macro_f1"] = round(gpu["macro_f1"], 4)
        figures["gpu_train_seconds"] = round(gpu["seconds"], 2)
        figures["gpu_samples_per_second"] = round(gpu["samples_per_second"], 1)
        figures["gpu_name"] = torch.cuda.get_device_name()
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
