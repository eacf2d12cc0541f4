"""Benchmark: every model (baselines, hashed, pretrained) on BBC News and on a short-text stand-in.

Run: ``.venv/bin/python benchmarks/training.py [--suite bbc,standin,cv,bbc-cv,gpu]
[--seeds 42,1,2] [--resamplings 3] [--members hashed,pretrained_frozen,pretrained_finetune]
[--set key=value ...]``

Suites (all through the real code: ``train.train``, ``Predictor``, the baselines):

- ``bbc``: the split ``params.yaml`` defines. For each training seed: the
  hashed model (params as they are), the pretrained encoder in frozen mode
  (``model.encoder=pretrained``; its sentence vectors come from the on-disk
  cache after the first run, as in ``make run``) and fine-tuned
  (``model.pretrained_mode=finetune``, the ``model.finetune_*`` settings,
  about 6 min a seed on 2 cores), the ensembles of the hashed model with
  each (their probabilities averaged, as ``run`` reports them), and the
  baselines (fitted single-threaded with threadpoolctl). Figures: macro-F1,
  weighted F1, accuracy, train seconds, predict ms/text; the mean, min and
  max over seeds. Target (issue 12): the best configuration's macro-F1 >=
  0.98, mean of 3 seeds.
- ``standin``: a stand-in for the unpublished short-text dataset of issue 12
  (title + one-sentence description, 760 training rows, a 191-row holdout,
  4 tags at 41/37/14/8 %): BBC titles plus the first sentence of the article,
  4 topics resampled to those counts, ``--resamplings`` times. Training goes
  as ``run --data train.csv --test holdout.csv`` does: the 760 rows are split
  into train and validation (``data.val_size``), the holdout is only scored.
  Figure: holdout weighted F1 of every model per resampling, mean and spread.
  Target: pretrained weighted F1 >= 0.93.
- ``bbc-cv``: how the BBC configuration was chosen: 5-fold cross-validation
  on BBC's train + validation rows (the test split is never looked at); each
  model alone and each one's ensemble with the hashed model.
- ``cv``: how the small-data defaults were chosen: 5-fold cross-validation on
  the first stand-in's 760 training rows only (the holdout is never looked
  at); each fold's training part is split again for early stopping. Candidate
  settings of both neural models; mean and standard deviation of weighted F1.
- ``gpu``: with CUDA only (skipped otherwise, and says so): fine-tuning the
  pretrained encoder on the stand-in with AMP on and off; samples/s, seconds,
  peak memory, holdout weighted F1.

The machine may be shared: the load average is printed with the figures, and
every timing is compared with the TF-IDF baseline's in the same run. The last
line is one JSON object with all figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference_pipeline.baselines import (  # noqa: E402
    KeywordBaseline,
    MajorityClassBaseline,
    TfidfLogRegBaseline,
    fit_timed,
    single_threaded,
)
from reference_pipeline.config import Params, load_params  # noqa: E402
from reference_pipeline.data import LabelEncoder, clean, load_dataset, split, subsample  # noqa: E402
from reference_pipeline.predict import Predictor  # noqa: E402
from reference_pipeline.train import train  # noqa: E402

#: The stand-in's tags and shares (issue 12: 41 / 37 / 14 / 8 %) and sizes.
STANDIN_SHARES = {"sports": 0.41, "business": 0.37, "tech": 0.14, "entertainment": 0.08}
STANDIN_TRAIN, STANDIN_HOLDOUT = 760, 191

#: The neural models the bbc and standin suites train (``--members`` picks some):
#: the hashed model, the pretrained encoder frozen and fine-tuned (each with its
#: defaults: fine-tuning on torch's default threads, ``model.finetune_threads: 0``).
ENCODERS: dict[str, dict[str, object]] = {
    "hashed": {},
    "pretrained_frozen": {"model.encoder": "pretrained", "model.pretrained_mode": "frozen"},
    "pretrained_finetune": {"model.encoder": "pretrained", "model.pretrained_mode": "finetune"},
}

#: Ensembles (probabilities averaged) as ``run`` writes them: hashed + frozen by
#: default, hashed + fine-tuned with ``--set model.pretrained_mode=finetune``.
ENSEMBLES: dict[str, tuple[str, str]] = {
    "ensemble": ("hashed", "pretrained_frozen"),
    "ensemble_finetune": ("hashed", "pretrained_finetune"),
}

#: Candidate small-data settings compared by cross-validation (``cv`` suite).
CV_CANDIDATES: dict[str, dict[str, object]] = {
    "hashed: defaults (monitor val_macro_f1)": {},
    "hashed: monitor val_loss": {"train.monitor": "val_loss"},
    "hashed: monitor val_loss, patience 12": {"train.monitor": "val_loss", "train.patience": 12},
    "hashed: lr 0.05, monitor val_loss": {"train.lr": 0.05, "train.monitor": "val_loss"},
    "hashed: lr 0.1": {"train.lr": 0.1},
    "hashed: lr 0.05, 20 epochs": {"train.lr": 0.05, "train.epochs": 20},
    "hashed: patience 6": {"train.patience": 6},
    "pretrained: defaults": {"model.encoder": "pretrained"},
    "pretrained: monitor val_loss": {"model.encoder": "pretrained", "train.monitor": "val_loss"},
    "pretrained: val_loss, head_lr 0.003": {
        "model.encoder": "pretrained",
        "train.monitor": "val_loss",
        "model.head_lr": 0.003,
    },
    "pretrained: val_loss, 30 epochs, patience 10": {
        "model.encoder": "pretrained",
        "train.monitor": "val_loss",
        "train.epochs": 30,
        "train.patience": 10,
    },
    "pretrained: finetune": ENCODERS["pretrained_finetune"],
}


def f1_scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score  # type: ignore[import-untyped]

    y_pred = proba.argmax(axis=1)
    return {
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
        "weighted_f1": float(f1_score(y_true, y_pred, average="weighted")),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def with_overrides(params: Params, overrides: dict[str, object]) -> Params:
    out = copy.deepcopy(params)
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        setattr(getattr(out, section), key, value)
    return out


def run_neural(
    params: Params,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    test_df: pd.DataFrame,
    *,
    honest_predict: bool = True,
) -> dict[str, Any]:
    """Train through ``train.train``, score through ``Predictor``.

    ``honest_predict``: the frozen encoder's cache is off while predicting, so
    ms/text is the real cost (cross-validation turns it off: it needs scores only).
    """
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train(params, train_df, val_df, Path(out), progress=False)
        seconds = time.perf_counter() - start
        predictor = Predictor.load(out, embedding_cache=None if honest_predict else "")
        encoder = LabelEncoder(predictor.labels)
        texts = list(test_df["text"])
        start = time.perf_counter()
        proba = predictor.predict_proba(texts)
        predict_ms = 1000 * (time.perf_counter() - start) / max(len(texts), 1)
    scores = f1_scores(encoder.encode(test_df["tag"]), proba)
    return {
        **scores,
        "proba": proba,
        "y": encoder.encode(test_df["tag"]),
        "train_seconds": seconds,
        "predict_ms_per_text": predict_ms,
        "epochs": result.epochs_run,
        "best_epoch": result.best_epoch,
        "encoded_texts": result.encoded_texts,
        "history": result.history,
    }


def run_baselines(train_df: pd.DataFrame, test_df: pd.DataFrame, seed: int) -> dict[str, Any]:
    encoder = LabelEncoder().fit(train_df["tag"])
    k = len(encoder)
    texts, labels = list(train_df["text"]), encoder.encode(train_df["tag"])
    # Imported outside the timers: train seconds exclude imports, as the neural models' do.
    import sklearn.feature_extraction.text
    import sklearn.linear_model  # noqa: F401

    out: dict[str, Any] = {}
    for model in (MajorityClassBaseline(k), KeywordBaseline(k), TfidfLogRegBaseline(k, seed=seed)):
        seconds = fit_timed(model, texts, labels)
        test_texts = list(test_df["text"])
        with single_threaded():
            start = time.perf_counter()
            proba = model.predict_proba(test_texts)
            predict_ms = 1000 * (time.perf_counter() - start) / max(len(test_texts), 1)
        out[model.name] = {
            **f1_scores(encoder.encode(test_df["tag"]), proba),
            "train_seconds": seconds,
            "predict_ms_per_text": predict_ms,
        }
    return out


def ensemble_rows(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ``run`` reports as an ensemble: its members' probabilities averaged.

    One row per entry of :data:`ENSEMBLES` whose members all ran. Then pops
    every result's ``proba`` and ``y`` (they stay out of the figures).
    """
    rows = {}
    for name, members in ENSEMBLES.items():
        if all(m in results for m in members):
            runs = [results[m] for m in members]
            rows[name] = {
                **f1_scores(runs[0]["y"], np.mean([r["proba"] for r in runs], axis=0)),
                "train_seconds": sum(r["train_seconds"] for r in runs),
                "predict_ms_per_text": sum(r["predict_ms_per_text"] for r in runs),
            }
    for res in results.values():
        res.pop("proba")
        res.pop("y")
    return rows


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": round(statistics.mean(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
        "std": round(statistics.pstdev(values), 4),
    }


def bbc_splits(params: Params) -> Any:
    cfg = params.data
    df = clean(load_dataset(cfg.source), lowercase=cfg.lowercase, dedupe_titles=cfg.dedupe_titles)
    df = subsample(df, cfg.max_rows_per_label, seed=cfg.seed)
    return split(
        df,
        val_size=cfg.val_size,
        test_size=cfg.test_size,
        seed=cfg.seed,
        min_rows_per_label=cfg.min_rows_per_label,
    )


def suite_bbc(params: Params, seeds: list[int], members: list[str]) -> dict[str, Any]:
    splits = bbc_splits(params)
    print(f"bbc: {len(splits.train)} train, {len(splits.val)} val, {len(splits.test)} test")
    rows: dict[str, list[dict[str, Any]]] = {}
    for seed in seeds:
        results: dict[str, dict[str, Any]] = {}
        for name in members:
            p = with_overrides(params, {**ENCODERS[name], "train.seed": seed})
            res = run_neural(p, splits.train, splits.val, splits.test)
            res.pop("history")
            rows.setdefault(name, []).append(res)
            results[name] = res
            print(
                f"  seed {seed} {name}: macro-F1 {res['macro_f1']:.4f}, weighted F1 "
                f"{res['weighted_f1']:.4f}, {res['train_seconds']:.1f} s "
                f"({res['epochs']} epochs, best {res['best_epoch']}, encoded "
                f"{res['encoded_texts']}), {res['predict_ms_per_text']:.2f} ms/text"
            )
        for name, ens in ensemble_rows(results).items():
            rows.setdefault(name, []).append(ens)
            print(f"  seed {seed} {name}: macro-F1 {ens['macro_f1']:.4f}, weighted F1 "
                  f"{ens['weighted_f1']:.4f}")  # fmt: skip
        for name, res in run_baselines(splits.train, splits.test, seed).items():
            rows.setdefault(name, []).append(res)
    return summarize(rows)


def summarize(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, runs in rows.items():
        out[name] = {
            metric: spread([r[metric] for r in runs])
            for metric in (
                "macro_f1",
                "weighted_f1",
                "accuracy",
                "train_seconds",
                "predict_ms_per_text",
            )
        }
    return out


def first_sentence(text: str) -> str:
    match = re.match(r"\s*(.+?[.!?])(?=\s|$)", text, re.DOTALL)
    return (match.group(1) if match else text).strip()


def standin_pool(lowercase: bool) -> pd.DataFrame:
    """BBC titles + first sentence, 4 topics, cleaned and de-duplicated (as the pipeline does)."""
    raw = load_dataset()
    raw = raw[raw["tag"].isin(list(STANDIN_SHARES))].copy()
    raw["description"] = [first_sentence(d) for d in raw["description"]]
    return clean(raw, lowercase=lowercase, dedupe_titles=True)


def standin(pool: pd.DataFrame, resampling: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One resampling: 951 rows at the issue's shares, split 760 / 191 stratified."""
    total = STANDIN_TRAIN + STANDIN_HOLDOUT
    rng = np.random.default_rng(1000 + resampling)
    picked = []
    for tag, share in STANDIN_SHARES.items():
        index = pool.index[pool["tag"] == tag].to_numpy()
        picked.extend(rng.choice(index, size=round(total * share), replace=False))
    df = pool.loc[sorted(picked)]
    parts = split(df, val_size=0.0, test_size=STANDIN_HOLDOUT / total, seed=resampling)
    return parts.train, parts.test


def suite_standin(params: Params, resamplings: int, members: list[str]) -> dict[str, Any]:
    pool = standin_pool(params.data.lowercase)
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in range(resamplings):
        train760, holdout = standin(pool, r)
        # As `run --data train.csv --test holdout.csv`: train + validation from the 760 rows.
        inner = split(train760, val_size=params.data.val_size, test_size=0.0, seed=params.data.seed)
        words = statistics.mean(len(t.split()) for t in train760["text"])
        shares = (train760["tag"].value_counts(normalize=True) * 100).round(1).to_dict()
        print(
            f"standin {r}: {len(inner.train)} train + {len(inner.val)} val, {len(holdout)} "
            f"holdout; {words:.0f} words/text; shares {shares}"
        )
        results: dict[str, dict[str, Any]] = {}
        for name in members:
            res = run_neural(
                with_overrides(params, ENCODERS[name]), inner.train, inner.val, holdout
            )
            res.pop("history")
            rows.setdefault(name, []).append(res)
            results[name] = res
            print(
                f"  {name}: holdout weighted F1 {res['weighted_f1']:.4f} (macro "
                f"{res['macro_f1']:.4f}), {res['train_seconds']:.1f} s, best epoch "
                f"{res['best_epoch']}/{res['epochs']}"
            )
        for name, ens in ensemble_rows(results).items():
            rows.setdefault(name, []).append(ens)
            print(f"  {name}: holdout weighted F1 {ens['weighted_f1']:.4f}")
        for name, res in run_baselines(inner.train, holdout, params.train.seed).items():
            rows.setdefault(name, []).append(res)
            print(f"  {name}: holdout weighted F1 {res['weighted_f1']:.4f}")
    return summarize(rows)


def suite_cv(params: Params, folds: int = 5, only: str = "") -> dict[str, Any]:
    """5-fold CV on the first stand-in's 760 training rows; the holdout is not used."""
    candidates = {n: o for n, o in CV_CANDIDATES.items() if only in n}
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]

    train760, _ = standin(standin_pool(params.data.lowercase), 0)
    train760 = train760.reset_index(drop=True)
    train760.attrs["source"] = "standin-0"
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    scores: dict[str, list[float]] = {name: [] for name in candidates}
    seconds: dict[str, float] = dict.fromkeys(candidates, 0.0)
    for fold, (fit_idx, score_idx) in enumerate(kfold.split(train760, train760["tag"])):
        fit_part, score_part = train760.iloc[fit_idx], train760.iloc[score_idx]
        fit_part.attrs["source"] = "standin-0"
        inner = split(fit_part, val_size=params.data.val_size, test_size=0.0, seed=fold)
        for name, overrides in candidates.items():
            res = run_neural(
                with_overrides(params, overrides),
                inner.train,
                inner.val,
                score_part,
                honest_predict=False,
            )
            scores[name].append(res["weighted_f1"])
            seconds[name] += res["train_seconds"]
        print(f"cv fold {fold}: " + ", ".join(f"{n} {s[-1]:.3f}" for n, s in scores.items()))
    out = {
        name: {**spread(values), "train_seconds": round(seconds[name], 1)}
        for name, values in scores.items()
    }
    for name, row in out.items():
        print(f"  cv {name}: weighted F1 {row['mean']:.4f} +- {row['std']:.4f}")
    return out


#: Models compared by cross-validation on BBC (``bbc-cv`` suite): each alone,
#: and the hashed model's ensemble with each pretrained one.
BBC_CV_MEMBERS: dict[str, dict[str, object]] = {
    "hashed": {},
    **{
        f"frozen {length}x{chunks}": {
            "model.encoder": "pretrained",
            "model.pretrained_mode": "frozen",
            "model.max_length": length,
            "model.max_chunks": chunks,
        }
        for length, chunks in ((128, 1), (128, 2), (128, 4), (128, 8), (256, 1), (256, 2))
    },
    # The whole encoder fine-tuned (model.finetune_* defaults), about 6 min a fold on 2 cores.
    "finetune 128": ENCODERS["pretrained_finetune"],
}


def suite_bbc_cv(params: Params, folds: int = 5, only: str = "") -> dict[str, Any]:
    """5-fold CV on BBC's train + validation rows (the test split is not used).

    Each fold's training part is split again for early stopping, as ``run`` splits.
    Figure: macro-F1 of each model and of each hashed + pretrained ensemble.
    """
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold  # type: ignore[import-untyped]

    splits = bbc_splits(params)
    pool = pd.concat([splits.train, splits.val]).reset_index(drop=True)
    pool.attrs = dict(splits.train.attrs)
    members = {n: o for n, o in BBC_CV_MEMBERS.items() if n == "hashed" or only in n}
    print(f"bbc-cv: {len(pool)} rows (train + val), {folds} folds, members {list(members)}")
    kfold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    scores: dict[str, list[float]] = {}
    for fold, (fit_idx, score_idx) in enumerate(kfold.split(pool, pool["tag"])):
        fit_part, score_part = pool.iloc[fit_idx], pool.iloc[score_idx]
        fit_part.attrs = dict(pool.attrs)
        inner = split(fit_part, val_size=params.data.val_size, test_size=0.0, seed=fold)
        results = {
            name: run_neural(
                with_overrides(params, overrides),
                inner.train,
                inner.val,
                score_part,
                honest_predict=False,
            )
            for name, overrides in members.items()
        }
        for name, res in results.items():
            scores.setdefault(name, []).append(res["macro_f1"])
            if name != "hashed":
                proba = (res["proba"] + results["hashed"]["proba"]) / 2
                both = f1_scores(res["y"], proba)["macro_f1"]
                scores.setdefault(f"ensemble hashed + {name}", []).append(both)
        print(f"bbc-cv fold {fold}: " + ", ".join(f"{n} {v[-1]:.4f}" for n, v in scores.items()))
    out = {name: spread(values) for name, values in scores.items()}
    for name, row in out.items():
        print(f"  bbc-cv {name}: macro-F1 {row['mean']:.4f} +- {row['std']:.4f}")
    return out


def suite_gpu(params: Params) -> dict[str, Any]:
    if not torch.cuda.is_available():
        print("gpu: skipped (no CUDA device)")
        return {"skipped": "no CUDA device"}
    train760, holdout = standin(standin_pool(params.data.lowercase), 0)
    inner = split(train760, val_size=params.data.val_size, test_size=0.0, seed=params.data.seed)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name()}
    for amp in (False, True):
        p = with_overrides(
            params,
            {
                "model.encoder": "pretrained",
                "model.pretrained_mode": "finetune",
                "train.device": "cuda",
                "train.amp": amp,
                "train.epochs": 4,
            },
        )
        torch.cuda.reset_peak_memory_stats()
        res = run_neural(p, inner.train, inner.val, holdout)
        throughput = [h["samples_per_second"] for h in res.pop("history")[1:]] or [0.0]
        key = f"amp_{'on' if amp else 'off'}"
        out[key] = {
            "weighted_f1": round(res["weighted_f1"], 4),
            "train_seconds": round(res["train_seconds"], 2),
            "samples_per_second": round(statistics.mean(throughput), 1),
            "peak_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1),
        }
        print(f"gpu amp={amp}: {out[key]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--suite", default="bbc,standin", help="bbc, standin, cv, bbc-cv, gpu")
    parser.add_argument("--seeds", default="42,1,2", help="training seeds (bbc suite)")
    parser.add_argument("--resamplings", type=int, default=3, help="stand-in resamplings")
    parser.add_argument("--candidates", default="", help="cv, bbc-cv: only candidates named so")
    parser.add_argument(
        "--members",
        default=",".join(ENCODERS),
        help=f"bbc, standin: the neural models to train, of {', '.join(ENCODERS)}",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    overrides: dict[str, object] = dict(item.split("=", 1) for item in args.set)
    params_file = args.params if Path(args.params).is_file() else None
    params = load_params(params_file, {**overrides, "train.dvclive": False})
    seeds = [int(s) for s in args.seeds.split(",") if s]
    suites = [s.strip() for s in args.suite.split(",") if s.strip()]
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    unknown = sorted(set(members) - set(ENCODERS))
    if unknown:
        parser.error(f"--members: unknown {', '.join(unknown)} (known: {', '.join(ENCODERS)})")
    print(
        f"torch {torch.__version__}, train.num_threads={params.train.num_threads}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    figures: dict[str, Any] = {"seeds": seeds, "resamplings": args.resamplings}
    started = time.perf_counter()
    if "cv" in suites:
        figures["cv"] = suite_cv(params, only=args.candidates)
    if "bbc-cv" in suites:
        figures["bbc_cv"] = suite_bbc_cv(params, only=args.candidates)
    if "bbc" in suites:
        figures["bbc"] = suite_bbc(params, seeds, members)
    if "standin" in suites:
        figures["standin"] = suite_standin(params, args.resamplings, members)
    if "gpu" in suites:
        figures["gpu"] = suite_gpu(params)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["load_average"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
