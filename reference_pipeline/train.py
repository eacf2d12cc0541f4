r"""Training: device choice, AMP on GPU, DDP via torchrun, early stopping, atomic checkpoints.

:func:`train` is the stage as a function of its params and DataFrames;
:func:`main` is the command-line entry that reads the prepared splits, so
``torchrun`` can launch it on several processes::

    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        -m reference_pipeline.train --data-dir data/prepared --out artifacts

Every epoch ends with ``checkpoint.pt`` written atomically (temp file, then
``os.replace``), holding everything :func:`train` needs to continue with
``resume=True``: model args and state, optimiser state, epoch, best metric and
the best weights so far, patience counter, RNG states, the resolved config,
the label encoder and the data hash. Shuffling is derived from ``(seed,
epoch)`` and dropout's RNG state is restored, so on CPU a resumed run ends
with bit-identical weights to an uninterrupted one.

Example:
    >>> from reference_pipeline.config import load_params  # doctest: +SKIP
    >>> result = train(load_params(), train_df, val_df, Path("artifacts"))  # doctest: +SKIP
    >>> result.best_val_macro_f1  # doctest: +SKIP
    0.98
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from reference_pipeline.config import Params, TrainConfig, load_params
from reference_pipeline.data import (
    DataError,
    LabelEncoder,
    _default_mode,
    atomic_write_text,
    check_output_dir,
    data_hash,
    read_split,
    remove_stale_temp_files,
)
from reference_pipeline.model import (
    build_model,
    collate,
    encoder_record,
    make_featurizer,
    model_args_for,
    param_groups,
)

__all__ = [
    "CHECKPOINT",
    "TrainError",
    "TrainResult",
    "atomic_torch_save",
    "macro_f1",
    "main",
    "select_device",
    "train",
]

#: File name of the per-epoch checkpoint inside the output folder.
CHECKPOINT = "checkpoint.pt"
#: Final artefacts written next to it.
MODEL_FILE = "model.pt"
ENCODER_FILE = "label_encoder.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "train_metrics.json"


class TrainError(ValueError):
    """Training cannot start or resume; the one-line message says why and what to do.

    Example:
        >>> raise TrainError("device 'cuda' requested but CUDA is not available")
        Traceback (most recent call last):
        ...
        reference_pipeline.train.TrainError: device 'cuda' requested but CUDA is not available
    """


@dataclass
class TrainResult:
    """What a training run produced.

    Example:
        >>> TrainResult(Path("a/checkpoint.pt"), 0.9, 3, 1.5, "cpu").finished
        True
    """

    # The last per-epoch checkpoint (resume from it).
    checkpoint: Path
    # Validation macro-F1 of the kept epoch (the weights saved in model.pt): the best
    # epoch's, or the last one's when fine-tuning keeps the last (model.finetune_keep).
    best_val_macro_f1: float
    # Epochs completed in total, counting those before a resume.
    epochs_run: int
    # Wall-clock seconds of this call (featurizing and training, not imports).
    seconds: float
    # The device trained on, e.g. "cpu" or "cuda:0".
    device: str
    # One dict per epoch: epoch, train_loss, val_loss, val_macro_f1, val_accuracy, seconds, ...
    history: list[dict[str, float]] = field(default_factory=list)
    # False when the run was stopped by ``stop_after`` before early stopping or the last epoch.
    finished: bool = True
    # Number of processes (DDP world size).
    world_size: int = 1
    # Epoch whose weights were kept (the best under train.monitor, or fine-tuning's last).
    best_epoch: int = 0
    # What the checkpoint records about the encoder ({"kind": "hashed"} or the pretrained one's).
    encoder: dict[str, Any] = field(default_factory=dict)
    # Pretrained frozen mode: texts the network encoded (the others came from the cache).
    encoded_texts: int | None = None


# --- devices and processes ---------------------------------------------------


def select_device(name: str = "auto") -> torch.device:
    """Pick the training device: ``auto`` is cuda, then mps, then cpu.

    Args:
        name: ``"auto"`` or a torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Raises:
        TrainError: The device is unknown or not available here.

    Example:
        >>> select_device("cpu")
        device(type='cpu')
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise TrainError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise TrainError(f"device {name!r} requested but MPS is not available; use cpu or auto")
    return device


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_distributed(device: torch.device) -> tuple[_Dist, torch.device]:
    """Join the process group torchrun set up (``WORLD_SIZE > 1``); else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return _Dist(rank, dist.get_world_size(), local_rank, owns), device


def _barrier(info: _Dist) -> None:
    if info.world_size > 1:
        import torch.distributed as dist

        dist.barrier()


# --- metrics -----------------------------------------------------------------


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Macro-averaged F1 over ``num_classes`` classes (a class absent from both counts 0).

    Example:
        >>> macro_f1(np.array([0, 1, 1]), np.array([0, 1, 0]), 2)
        0.6666666666666666
    """
    f1s = []
    for k in range(num_classes):
        tp = float(np.sum((y_pred == k) & (y_true == k)))
        fp = float(np.sum((y_pred == k) & (y_true != k)))
        fn = float(np.sum((y_pred != k) & (y_true == k)))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


# --- files -------------------------------------------------------------------


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file in the same folder, then ``os.replace``.

    Example:
        >>> atomic_torch_save({"x": torch.zeros(1)}, Path("ckpt.pt"))  # doctest: +SKIP
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rng_state() -> dict[str, Any]:
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --- progress and logging ----------------------------------------------------


class _Progress:
    """Rich progress bars on the main process of an interactive terminal; no-op otherwise."""

    def __init__(self, enabled: bool, total_epochs: int, start_epoch: int) -> None:
        self._bar: Any = None
        self._epoch_task: Any = None
        self._batch_task: Any = None
        if not (enabled and sys.stderr.isatty()):
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=Console(file=sys.stderr),
            transient=False,
        )
        self._bar.start()
        self._epoch_task = self._bar.add_task(
            "epochs", total=total_epochs, completed=start_epoch, info=""
        )

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._bar is None:
            return
        if self._batch_task is not None:
            self._bar.remove_task(self._batch_task)
        self._batch_task = self._bar.add_task(f"epoch {epoch}", total=steps, info="")

    def step(self, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(self._batch_task, advance=1, info=f"loss {loss:.4f}")

    def end_epoch(self, info: str) -> None:
        if self._bar is not None:
            self._bar.update(self._epoch_task, advance=1, info=info)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


class _Live:
    """DVCLive metrics and plots, when dvclive is installed and enabled; no-op otherwise."""

    def __init__(self, enabled: bool, out_dir: Path, resume: bool) -> None:
        self._live: Any = None
        if not enabled:
            return
        os.environ.setdefault("DVC_NO_ANALYTICS", "1")
        os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")
        os.environ.setdefault("DVCLIVE_OPEN", "false")
        try:
            from dvclive import Live  # type: ignore[attr-defined]
        except ImportError:  # pragma: no cover - dvclive is optional at run time
            return
        self._live = Live(
            dir=str(out_dir / "dvclive"),
            resume=resume,
            report=None,
            save_dvc_exp=False,
            dvcyaml=None,
        )

    def log_epoch(self, row: dict[str, float]) -> None:
        if self._live is None:
            return
        self._live.step = int(row["epoch"]) - 1
        for name in ("train_loss", "val_loss", "val_macro_f1", "val_accuracy"):
            self._live.log_metric(name, float(row[name]))
        self._live.next_step()

    def close(self, best: float, epochs: int) -> None:
        if self._live is None:
            return
        self._live.summary["best_val_macro_f1"] = best
        self._live.summary["epochs_run"] = epochs
        self._live.end()


# --- the loop ----------------------------------------------------------------


def _batches(
    n: int, batch_size: int, *, seed: int, epoch: int, rank: int, world_size: int
) -> list[torch.Tensor]:
    """This process's batches for an epoch, derived from ``(seed, epoch)`` only.

    Indices are padded (by wrapping) to a multiple of ``world_size`` so every
    process runs the same number of steps, as DistributedSampler does.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator)
    per_rank = -(-n // world_size)
    padded = torch.cat([order, order[: per_rank * world_size - n]])
    mine = padded[rank::world_size]
    return list(torch.split(mine, batch_size))


def _to_device(batch: Any, device: torch.device) -> Any:
    """Move a collated batch (a tuple of tensors, or a dict of them) to ``device``."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return tuple(t.to(device, non_blocking=True) for t in batch)


def _forward(model: nn.Module, batch: Any) -> torch.Tensor:
    """Call the model on a batch: a dict as keywords (``input_ids``, ``attention_mask``)."""
    out: torch.Tensor = model(**batch) if isinstance(batch, dict) else model(*batch)
    return out


def _evaluate(
    model: nn.Module,
    encoded: Sequence[Any],
    labels: torch.Tensor,
    num_classes: int,
    device: torch.device,
    batch_size: int = 512,
    collate_fn: Any = None,
) -> dict[str, float]:
    collate_fn = collate_fn or collate
    model.eval()
    preds: list[torch.Tensor] = []
    total_loss = 0.0
    with torch.inference_mode():
        for start in range(0, len(encoded), batch_size):
            batch = _to_device(collate_fn(encoded[start : start + batch_size]), device)
            logits = _forward(model, batch).float()
            target = labels[start : start + batch_size].to(device)
            total_loss += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
            preds.append(logits.argmax(dim=1).cpu())
    y_pred = torch.cat(preds).numpy()
    y_true = labels.numpy()
    return {
        "val_loss": total_loss / max(len(encoded), 1),
        "val_macro_f1": macro_f1(y_true, y_pred, num_classes),
        "val_accuracy": float(np.mean(y_true == y_pred)),
    }


def _autocast(device: torch.device, amp: bool) -> tuple[Any, torch.amp.GradScaler | None]:
    """Return (autocast context factory, GradScaler or None) for the device."""
    if amp and device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)), None
        return (lambda: torch.autocast("cuda", dtype=torch.float16)), torch.amp.GradScaler("cuda")
    return contextlib.nullcontext, None


def _learning_rate(cfg: TrainConfig, epoch: int, step: int, steps: int) -> float:
    """The learning rate of ``step`` (0-based) in ``epoch`` (1-based) under ``cfg.lr_schedule``.

    Example:
        >>> from reference_pipeline.config import TrainConfig
        >>> _learning_rate(TrainConfig(lr=1.0, epochs=2, lr_schedule="linear"), 2, 0, 4)
        0.5
    """
    return float(cfg.lr) * _lr_factor(cfg, epoch, step, steps)


def _lr_factor(cfg: TrainConfig, epoch: int, step: int, steps: int, warmup: float = 0.0) -> float:
    """The schedule's multiplier of each group's peak learning rate at ``step`` of ``epoch``.

    ``warmup`` is the fraction of all steps over which the rate first rises
    linearly to its peak; the schedule (constant, or a linear decay to 0) takes
    the steps after it.

    Example:
        >>> from reference_pipeline.config import TrainConfig
        >>> cfg = TrainConfig(epochs=1, lr_schedule="linear")
        >>> [round(_lr_factor(cfg, 1, s, 10, warmup=0.2), 3) for s in (0, 1, 2, 6)]
        [0.333, 0.667, 1.0, 0.5]
    """
    if cfg.lr_schedule not in ("constant", "linear"):
        raise TrainError(f"train.lr_schedule {cfg.lr_schedule!r}: use 'constant' or 'linear'")
    total = max(cfg.epochs * steps, 1)
    done = (epoch - 1) * steps + step
    warm = int(warmup * total)
    if done < warm:
        return (done + 1) / (warm + 1)
    if cfg.lr_schedule == "constant":
        return 1.0
    return max(0.0, (total - done) / (total - warm))


def _check_frame(df: pd.DataFrame, name: str) -> None:
    for column in ("text", "tag"):
        if column not in df.columns:
            raise TrainError(f"{name} data: missing column {column!r}; clean the data first")
    if df.empty:
        raise TrainError(f"{name} data is empty")


def train(
    params: Params,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    out_dir: str | Path,
    *,
    resume: bool = False,
    device: str | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train the classifier, keeping the weights of the best validation epoch.

    A fine-tuned encoder runs its ``model.finetune_epochs`` to the end and keeps
    the last (``model.finetune_keep: last``, the default) or the best epoch.

    Args:
        params: Resolved parameters (``model`` and ``train`` sections are used;
            ``data.lowercase`` is saved with the model for prediction).
        train_df: Training rows with cleaned ``text`` and ``tag``.
        val_df: Validation rows (early stopping and model selection).
        out_dir: Folder for ``checkpoint.pt``, ``model.pt``, ``label_encoder.json``,
            ``config.json``, ``train_metrics.json`` and ``dvclive/``.
        resume: Continue from ``out_dir/checkpoint.pt`` (starts fresh if there is none).
        device: Overrides ``params.train.device``.
        progress: Show rich progress bars (only on an interactive terminal).
        stop_after: Stop after this epoch as if interrupted: the checkpoint is
            written but no final artefacts (for tests of resuming).

    Returns:
        A :class:`TrainResult`.

    Raises:
        TrainError: Bad inputs (one tag only), an unavailable device, an output
            folder that cannot be written (checked before training; stale temp
            files of a killed run are removed from it), or a checkpoint that is
            unreadable or does not match the data or model settings.

    Example:
        >>> result = train(params, train_df, val_df, Path("artifacts"))  # doctest: +SKIP
        >>> result = train(params, train_df, val_df, "artifacts", resume=True)  # doctest: +SKIP
    """
    threads = torch.get_num_threads()
    if params.train.num_threads > 0:
        torch.set_num_threads(params.train.num_threads)
    try:
        return _train(
            params, train_df, val_df, Path(out_dir), resume, device, progress, stop_after, threads
        )
    finally:
        torch.set_num_threads(threads)


def _train(
    params: Params,
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    out: Path,
    resume: bool,
    device: str | None,
    progress: bool,
    stop_after: int | None,
    caller_threads: int,
) -> TrainResult:
    started = time.perf_counter()
    cfg, mcfg = params.train, params.model
    _check_frame(train_df, "train")
    _check_frame(val_df, "validation")
    if cfg.batch_size < 1 or cfg.epochs < 1 or cfg.patience < 1:
        raise TrainError("train.batch_size, train.epochs and train.patience must be >= 1")
    _learning_rate(cfg, 1, 0, 1)  # an unknown schedule fails before any work
    _monitored(cfg, {"val_loss": 0.0, "val_macro_f1": 0.0})  # so does an unknown monitor
    try:
        # Every process checks: a folder it cannot write would fail at the first checkpoint.
        check_output_dir(out)
    except DataError as exc:
        raise TrainError(str(exc)) from exc
    info, dev = _init_distributed(select_device(device or cfg.device))
    if info.is_main:
        # What a process killed mid-write left; never renamed, so never read.
        remove_stale_temp_files(out, _OUTPUT_FILES)

    # Phase 1: labels and features, encoded once (the pretrained encoder's
    # frozen vectors come from the on-disk cache where it has them).
    encoder = LabelEncoder().fit(train_df["tag"])
    if len(encoder) < 2:
        raise TrainError(
            f"train data: every row has the tag {encoder.classes[0]!r}; "
            "a classifier needs at least 2 tags"
        )
    unseen = sorted(set(val_df["tag"]) - set(encoder.classes))
    if unseen:
        raise TrainError(f"validation tags not in the training data: {', '.join(unseen)}")
    both = [
        train_df[["text", "tag"]].assign(split="train"),
        val_df[["text", "tag"]].assign(split="val"),
    ]
    the_hash = data_hash(pd.concat(both))
    train_texts = list(train_df["text"])
    try:
        tokenizer = make_featurizer(mcfg, dev, train_texts=train_texts)
    except ValueError as exc:  # EncoderError, an unknown model.encoder
        raise TrainError(str(exc)) from exc
    if getattr(tokenizer, "mode", None) == "finetune":
        # A whole encoder trains for a few epochs of small batches; train.epochs and
        # train.batch_size stay the hashed model's and the frozen head's. A transformer
        # also runs faster on every core than on the one thread that suits the small
        # models (train.num_threads): 63 s against 105 s on the stand-in, 2 cores.
        cfg = replace(cfg, epochs=mcfg.finetune_epochs, batch_size=mcfg.finetune_batch_size)
        torch.set_num_threads(mcfg.finetune_threads or caller_threads)
        warmup, keep_last = mcfg.finetune_warmup, mcfg.finetune_keep == "last"
    else:
        warmup, keep_last = 0.0, False
    x_train = tokenizer.encode_many(train_texts)
    y_train = torch.as_tensor(encoder.encode(train_df["tag"]))
    x_val = tokenizer.encode_many(list(val_df["text"]))
    y_val = torch.as_tensor(encoder.encode(val_df["tag"]))
    k = len(encoder)

    # Phase 2: model and optimiser, seeded; state from the checkpoint when resuming.
    _seed_everything(cfg.seed)
    model_args = model_args_for(mcfg, tokenizer, k)
    model = build_model(model_args).to(dev)
    optimizer = torch.optim.AdamW(
        param_groups(model, mcfg, cfg.lr), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    # Dropout masks differ per process; rank 0 of one process matches the plain run.
    torch.manual_seed(cfg.seed + info.rank)
    epoch, best, best_epoch, bad_epochs = 0, -float("inf"), 0, 0
    best_state = {n: t.detach().clone() for n, t in model.state_dict().items()}
    history: list[dict[str, float]] = []
    finished = False
    ckpt_path = out / CHECKPOINT
    autocast, scaler = _autocast(dev, cfg.amp)
    if resume and ckpt_path.is_file():
        ckpt = _load_checkpoint(ckpt_path)
        if ckpt["data_hash"] != the_hash:
            raise TrainError(
                f"{ckpt_path}: checkpoint was trained on different data; "
                "train without resume or restore the original splits"
            )
        if ckpt["model_args"] != model_args or ckpt["tokenizer"] != tokenizer.to_dict():
            raise TrainError(
                f"{ckpt_path}: checkpoint has different model settings "
                f"({ckpt['model_args']} vs {model_args}); train without resume"
            )
        changed = _changed_settings(ckpt.get("config", {}).get("train", {}), params)
        if changed:
            warnings.warn(
                f"{ckpt_path}: resuming with changed train settings ({', '.join(changed)}); "
                "the result will differ from an uninterrupted run",
                stacklevel=3,
            )
        model.load_state_dict(ckpt["model_state"])
        optimizer.load_state_dict(ckpt["optimizer_state"])
        if scaler is not None and ckpt.get("scaler_state"):
            scaler.load_state_dict(ckpt["scaler_state"])
        epoch, best, best_epoch = ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"]
        bad_epochs, history, finished = ckpt["bad_epochs"], ckpt["history"], ckpt["finished"]
        best_state = ckpt["best_state"]
        _set_rng_state(ckpt["rng"][min(info.rank, len(ckpt["rng"]) - 1)])
    net: nn.Module = model
    if info.world_size > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None
        )
    loss_fn = nn.CrossEntropyLoss()
    bar = _Progress(progress and info.is_main, cfg.epochs, epoch)
    live = _Live(cfg.dvclive and info.is_main, out, resume=resume and epoch > 0)

    # Phase 3: epochs, each ending in validation, early stopping and a checkpoint.
    try:
        while not finished and epoch < cfg.epochs:
            epoch += 1
            t0 = time.perf_counter()
            net.train()
            batches = _batches(
                len(x_train),
                cfg.batch_size,
                seed=cfg.seed,
                epoch=epoch,
                rank=info.rank,
                world_size=info.world_size,
            )
            bar.start_epoch(epoch, len(batches))
            loss_sum, seen = 0.0, 0
            for step, batch in enumerate(batches):
                factor = _lr_factor(cfg, epoch, step, len(batches), warmup)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                inputs = _to_device(tokenizer.collate([x_train[i] for i in batch.tolist()]), dev)
                target = y_train[batch].to(dev, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with autocast():
                    logits = _forward(net, inputs)
                    loss = loss_fn(logits.float(), target)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                value = float(loss.detach())
                loss_sum += value * len(batch)
                seen += len(batch)
                bar.step(value)
            train_seconds = time.perf_counter() - t0
            row = {
                "epoch": float(epoch),
                "train_loss": loss_sum / max(seen, 1),
                **_evaluate(model, x_val, y_val, k, dev, collate_fn=tokenizer.collate),
                "seconds": time.perf_counter() - t0,
                "samples_per_second": seen * info.world_size / max(train_seconds, 1e-9),
            }
            history.append(row)
            score = _monitored(cfg, row)
            if keep_last or score > best + cfg.min_delta:
                best, best_epoch, bad_epochs = score, epoch, 0
                best_state = {n: t.detach().cpu().clone() for n, t in model.state_dict().items()}
            else:
                bad_epochs += 1
            finished = bad_epochs >= cfg.patience or epoch >= cfg.epochs
            bar.end_epoch(f"val F1 {row['val_macro_f1']:.4f} (kept epoch {best_epoch})")
            live.log_epoch(row)
            rng = _gather_rng(info)
            if info.is_main:
                atomic_torch_save(
                    {
                        "model_args": model_args,
                        "tokenizer": tokenizer.to_dict(),
                        "model_state": {n: t.cpu() for n, t in model.state_dict().items()},
                        "optimizer_state": optimizer.state_dict(),
                        "scaler_state": scaler.state_dict() if scaler is not None else None,
                        "epoch": epoch,
                        "best_metric": best,
                        "best_epoch": best_epoch,
                        "bad_epochs": bad_epochs,
                        "best_state": best_state,
                        "finished": finished,
                        "history": history,
                        "rng": rng,
                        "config": params.to_dict(),
                        "label_encoder": encoder.to_dict(),
                        "data_hash": the_hash,
                    },
                    ckpt_path,
                )
            _barrier(info)
            if stop_after is not None and epoch >= stop_after and not finished:
                break
    finally:
        bar.close()
        live.close(_best_f1(history, best_epoch), epoch)

    # Phase 4: the final artefacts, from the best epoch's weights.
    if finished and info.is_main:
        atomic_torch_save(
            {
                "model_args": model_args,
                "state_dict": best_state,
                "tokenizer": tokenizer.to_dict(),
                "encoder": encoder_record(tokenizer),
                "preprocess": {"lowercase": params.data.lowercase},
                "classes": encoder.classes,
                "config": params.to_dict(),
            },
            out / MODEL_FILE,
        )
        encoder.save(out / ENCODER_FILE)
        atomic_write_text(out / CONFIG_FILE, json.dumps(params.to_dict(), indent=2) + "\n")
        metrics = {
            "best_val_macro_f1": _best_f1(history, best_epoch),
            "best_epoch": best_epoch,
            "monitor": cfg.monitor,
            "epochs_run": epoch,
            "device": str(dev),
            "world_size": info.world_size,
        }
        atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    _barrier(info)
    if info.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()
    return TrainResult(
        checkpoint=ckpt_path,
        best_val_macro_f1=_best_f1(history, best_epoch),
        epochs_run=epoch,
        seconds=time.perf_counter() - started,
        device=str(dev),
        history=history,
        finished=finished,
        world_size=info.world_size,
        best_epoch=best_epoch,
        encoder=encoder_record(tokenizer),
        encoded_texts=getattr(tokenizer, "encoded", None),
    )


#: Files :func:`train` writes into its output folder (their stale temp files are removed).
_OUTPUT_FILES = (CHECKPOINT, MODEL_FILE, ENCODER_FILE, CONFIG_FILE, METRICS_FILE)

#: What a checkpoint holds; a file without these keys is not one of ours.
_CHECKPOINT_KEYS = frozenset(
    {
        "model_args",
        "tokenizer",
        "model_state",
        "optimizer_state",
        "epoch",
        "best_metric",
        "best_epoch",
        "bad_epochs",
        "best_state",
        "finished",
        "history",
        "rng",
        "data_hash",
    }
)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """Read ``checkpoint.pt`` (``weights_only=True``), or say in one line that it is not one."""
    message = (
        f"{path}: not a valid checkpoint of this pipeline; "
        "train without --resume to start over (that replaces it)"
    )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # Random bytes, a truncated file, a foreign pickle. Not torch's text: it
        # advises weights_only=False, the wrong advice for a file we cannot trust.
        raise TrainError(message) from exc
    if not isinstance(ckpt, dict) or not ckpt.keys() >= _CHECKPOINT_KEYS:
        raise TrainError(message)  # e.g. a model.pt copied over it
    return ckpt


def _monitored(cfg: TrainConfig, row: dict[str, float]) -> float:
    """The epoch's score under ``train.monitor`` (higher is better).

    Example:
        >>> from reference_pipeline.config import TrainConfig
        >>> _monitored(TrainConfig(monitor="val_loss"), {"val_loss": 0.5, "val_macro_f1": 0.9})
        -0.5
    """
    if cfg.monitor == "val_macro_f1":
        return float(row["val_macro_f1"])
    if cfg.monitor == "val_loss":
        return -float(row["val_loss"])
    raise TrainError(f"train.monitor {cfg.monitor!r}: use 'val_macro_f1' or 'val_loss'")


def _best_f1(history: list[dict[str, float]], best_epoch: int) -> float:
    """Validation macro-F1 of the kept epoch (-1.0 before any epoch)."""
    for row in history:
        if int(row["epoch"]) == best_epoch:
            return float(row["val_macro_f1"])
    return -1.0


#: Train settings that may change between a run and its resume without changing the result.
_RESUME_NEUTRAL = frozenset({"device", "dvclive", "num_threads"})


def _changed_settings(saved: dict[str, Any], params: Params) -> list[str]:
    """``train.*`` settings that differ from the checkpoint's, as ``key: old -> new``."""
    current = params.to_dict()["train"]
    return [
        f"train.{key}: {saved[key]!r} -> {value!r}"
        for key, value in current.items()
        if key in saved and saved[key] != value and key not in _RESUME_NEUTRAL
    ]


def _gather_rng(info: _Dist) -> list[dict[str, Any]]:
    """Every process's RNG state, rank order (one entry without DDP)."""
    state = _rng_state()
    if info.world_size == 1:
        return [state]
    import torch.distributed as dist

    gathered: list[Any] = [None] * info.world_size
    dist.all_gather_object(gathered, state)
    return gathered


# --- command line ------------------------------------------------------------


def _parse_sets(values: Sequence[str]) -> dict[str, object]:
    overrides: dict[str, object] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise TrainError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=0.01")
        overrides[key.strip()] = value
    return overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Train from prepared splits; the entry point ``torchrun`` launches.

    Example:
        >>> main(["--data-dir", "data/prepared", "--out", "artifacts"])  # doctest: +SKIP
        0
    """
    parser = argparse.ArgumentParser(
        prog="python -m reference_pipeline.train", description="Train the text classifier."
    )
    parser.add_argument("--params", default="params.yaml", help="params file")
    parser.add_argument("--data-dir", default="data/prepared", help="folder with train/val.csv")
    parser.add_argument("--out", default="artifacts", help="output folder")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    from reference_pipeline.config import ConfigError
    from reference_pipeline.data import DataError

    try:
        # No params.yaml in the working folder: the dataclass defaults (a named file must exist).
        missing_default = args.params == "params.yaml" and not Path(args.params).is_file()
        params = load_params(None if missing_default else args.params, _parse_sets(args.set))
        data_dir = Path(args.data_dir)
        result = train(
            params,
            read_split(data_dir / "train.csv"),
            read_split(data_dir / "val.csv"),
            Path(args.out),
            resume=args.resume,
            device=args.device,
            progress=not args.no_progress,
        )
    except (ConfigError, DataError, TrainError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {
            "best_val_macro_f1": result.best_val_macro_f1,
            "epochs_run": result.epochs_run,
            "seconds": round(result.seconds, 3),
            "device": result.device,
            "world_size": result.world_size,
        }
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    raise SystemExit(main())
