"""What median pruning saves in the Optuna study, against the same study without it.

Runs the same seeded study twice on a BBC News subset: once with the median
pruner (the default), once with pruning off (the baseline), and compares the
epochs trained, the wall time and the best validation macro-F1.

Usage:
    python benchmarks/tuning.py [--trials 12] [--rows-per-topic 150]

Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--rows-per-topic", type=int, default=150)
    args = parser.parse_args()

    from reference_pipeline.config import Params
    from reference_pipeline.data import clean, load_dataset, split, subsample
    from reference_pipeline.tune import TuneConfig, default_storage, tune

    df = subsample(clean(load_dataset()), args.rows_per_topic, seed=0)
    parts = split(df, val_size=0.15, test_size=0.15, seed=0)
    params = Params.from_dict(
        {
            "model": {"hash_buckets": 2**15, "char_ngram_max": 4, "max_words": 200},
            "train": {"device": "cpu"},
        }
    )
    figures: dict[str, float | int] = {"trials": args.trials}
    with tempfile.TemporaryDirectory() as tmp:
        for pruner in ("none", "median"):
            out = Path(tmp) / pruner
            settings = TuneConfig(
                n_trials=args.trials,
                storage=default_storage(out),
                pruner=pruner,
                min_epochs=4,
                max_epochs=8,
                pruner_startup_trials=3,
                pruner_warmup_epochs=1,
            )
            start = time.perf_counter()
            result = tune(params, parts.train, parts.val, out, settings)
            seconds = time.perf_counter() - start
            print(
                f"pruner={pruner:6s} epochs={result['epochs_trained']:3d} "
                f"pruned={result['n_pruned']:2d} seconds={seconds:6.1f} "
                f"best_val_f1={result['best_value']:.4f}",
                file=sys.stderr,
            )
            figures[f"{pruner}_epochs"] = result["epochs_trained"]
            figures[f"{pruner}_seconds"] = round(seconds, 2)
            figures[f"{pruner}_best_val_macro_f1"] = round(result["best_value"], 4)
            figures[f"{pruner}_pruned"] = result["n_pruned"]
    figures["epochs_saved_ratio"] = round(1 - figures["median_epochs"] / figures["none_epochs"], 3)
    figures["time_ratio_median_vs_none"] = round(
        figures["median_seconds"] / figures["none_seconds"], 3
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
