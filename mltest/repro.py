"""Reproducibility: seeds, deterministic mode and environment capture.

Nothing here imports torch or numpy unless the caller's process already did
(seeding) or the caller asks for torch explicitly (deterministic mode).

Example:
    >>> seed = derive_seed(1234, "tests/test_model.py::test_overfit")
    >>> seed == derive_seed(1234, "tests/test_model.py::test_overfit")
    True
    >>> _ = seed_everything(seed)  # random, and numpy/torch if already imported
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "PACKAGES",
    "capture_environment",
    "derive_seed",
    "deterministic_mode",
    "device_info",
    "environment_header",
    "new_session_seed",
    "seed_everything",
]

#: Distributions whose versions go into the environment record.
PACKAGES: tuple[str, ...] = (
    "pytest",
    "pytest-mltest",
    "torch",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "great-expectations",
    "bentoml",
    "dvc",
    "dvclive",
    "optuna",
    "pytest-xdist",
    "pytest-memray",
    "hypothesis",
)

_SEED_SPACE = 2**32


def new_session_seed() -> int:
    """Return a fresh random session seed in ``[0, 2**32)``.

    Example:
        >>> 0 <= new_session_seed() < 2**32
        True
    """
    return random.SystemRandom().randrange(_SEED_SPACE)


def derive_seed(session_seed: int, nodeid: str) -> int:
    """Derive a test's seed from the session seed and its node id.

    Stable across processes and platforms (SHA-256, not ``hash()``), so a
    serial run and an xdist run give every test the same seed.

    Example:
        >>> derive_seed(0, "t.py::a") != derive_seed(0, "t.py::b")
        True
    """
    digest = hashlib.sha256(f"{session_seed}:{nodeid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _SEED_SPACE


def seed_everything(seed: int, *, import_missing: bool = False) -> list[str]:
    """Seed Python's ``random``, and numpy and torch (with CUDA).

    By default numpy and torch are seeded only if already imported, so seeding
    never pays their import cost for a test that does not use them.

    Args:
        seed: The seed, in ``[0, 2**32)``.
        import_missing: Import numpy and torch to seed them even if not loaded.

    Returns:
        The names of the generators seeded.

    Example:
        >>> seed_everything(7)[0]
        'random'
    """
    random.seed(seed)
    seeded = ["random"]
    if import_missing or "numpy" in sys.modules:
        try:
            import numpy as np
        except ImportError:
            pass
        else:
            np.random.seed(seed)
            seeded.append("numpy")
    if import_missing or "torch" in sys.modules:
        try:
            import torch
        except ImportError:
            pass
        else:
            # manual_seed seeds every CUDA device too (lazily, without initialising CUDA).
            torch.manual_seed(seed)
            seeded.append("torch")
    return seeded


@contextmanager
def deterministic_mode(*, warn_only: bool = False) -> Iterator[None]:
    """Switch torch to deterministic algorithms, restoring the previous state after.

    Sets ``torch.use_deterministic_algorithms(True)``, cuDNN deterministic and
    not benchmarking, and ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (needed for
    deterministic cuBLAS on CUDA >= 10.2).

    Args:
        warn_only: Warn instead of raising when an op has no deterministic version.

    Example:
        >>> with deterministic_mode():  # doctest: +SKIP
        ...     loss = train_steps(model, batch)
    """
    from mltest.errors import require

    torch = require("torch", "torch", purpose="deterministic mode")
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        enabled, was_warn_only, cudnn_det, cudnn_bench, cublas = previous
        torch.use_deterministic_algorithms(enabled, warn_only=was_warn_only)
        torch.backends.cudnn.deterministic = cudnn_det
        torch.backends.cudnn.benchmark = cudnn_bench
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


# --------------------------------------------------------------------------
# Environment capture
# --------------------------------------------------------------------------


def _versions(names: tuple[str, ...]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _git(root: Path) -> dict[str, Any] | None:
    """Git SHA and working-tree state of the checkout holding ``root``, or None.

    ``dirty`` is True when anything differs from the commit: changed tracked
    files (``modified``, what ``git describe --dirty`` looks at) or files git
    does not track and does not ignore (``untracked``, a count), since a new
    module or data file changes a run as much as an edit does.
    """
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=normal"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    entries = [line for line in status.splitlines() if line.strip()]
    untracked = sum(1 for line in entries if line.startswith("??"))
    modified = len(entries) > untracked
    return {
        "sha": sha,
        "dirty": modified or untracked > 0,
        "modified": modified,
        "untracked": untracked,
    }


_LOCK_ENTRY = re.compile(r"^\s*-?\s*(path|md5):\s*(\S+)\s*$")


def dvc_lock_hashes(lock: Path) -> dict[str, str]:
    r"""Map each output path in a ``dvc.lock`` to its md5, without a YAML library.

    dvc.lock lists, per stage, ``deps`` and ``outs`` entries of the form
    ``- path: X`` followed by ``md5: Y``. Only ``outs`` are kept: they are the
    data and models a result depends on.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "dvc.lock"
        >>> _ = p.write_text("stages:\\n  train:\\n    outs:\\n    - path: model.pt\\n"
        ...                  "      md5: abc\\n")
        >>> dvc_lock_hashes(p)
        {'model.pt': 'abc'}
    """
    hashes: dict[str, str] = {}
    section = ""
    path: str | None = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.endswith(":") and " " not in stripped:
            section = stripped[:-1]
            path = None
            continue
        match = _LOCK_ENTRY.match(line)
        if not match:
            continue
        key, value = match.groups()
        if key == "path":
            path = value
        elif path is not None and section == "outs":
            hashes[path] = value
            path = None
    return hashes


def device_info() -> dict[str, Any]:
    """What accelerators torch sees, only if torch is already imported.

    Example:
        >>> sorted(device_info())[-1]
        'torch_loaded'
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {"torch_loaded": False}
    info: dict[str, Any] = {"torch_loaded": True, "cuda_available": False}
    try:
        if torch.cuda.is_available():
            info["cuda_available"] = True
            info["cuda_version"] = torch.version.cuda
            info["cuda_devices"] = [
                {
                    "name": torch.cuda.get_device_name(i),
                    "capability": ".".join(map(str, torch.cuda.get_device_capability(i))),
                }
                for i in range(torch.cuda.device_count())
            ]
        mps = getattr(torch.backends, "mps", None)
        info["mps_available"] = bool(mps is not None and mps.is_available())
    except Exception as exc:  # a broken driver must not break the report
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def capture_environment(root: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """Capture what a result depends on: Python, platform, packages, git, DVC, devices.

    Package versions are read with ``importlib.metadata``: nothing is imported.

    Args:
        root: The project root (git and ``dvc.lock`` are looked up there).

    Example:
        >>> env = capture_environment()
        >>> sorted(env)[:3]
        ['devices', 'dvc', 'git']
    """
    base = Path(root)
    lock = base / "dvc.lock"
    dvc: dict[str, str] | None = None
    if lock.is_file():
        try:
            dvc = dvc_lock_hashes(lock)
        except (OSError, UnicodeDecodeError):
            dvc = None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": _versions(PACKAGES),
        "git": _git(base),
        "dvc": dvc,
        "devices": device_info(),
    }


def _git_state(git: dict[str, Any]) -> str:
    """`` (dirty)``, `` (3 untracked)``, `` (dirty, 3 untracked)`` or ``""``."""
    untracked = int(git.get("untracked") or 0)
    modified = git.get("modified", git.get("dirty") and not untracked)
    words = (["dirty"] if modified else []) + ([f"{untracked} untracked"] if untracked else [])
    return f" ({', '.join(words)})" if words else ""


def environment_header(env: dict[str, Any]) -> str:
    """One terminal line summarising an environment record.

    Example:
        >>> environment_header({"python": "3.11.7", "packages": {"torch": "2.13.0",
        ...     "numpy": None}, "git": {"sha": "0123456789ab", "dirty": True}, "dvc": None})
        'mltest env: python 3.11.7, torch 2.13.0, git 01234567 (dirty)'
    """
    parts = [f"python {env['python']}"]
    for name in ("torch", "numpy", "pandas", "great-expectations", "scikit-learn"):
        version = env["packages"].get(name)
        if version:
            parts.append(f"{name} {version}")
    git = env.get("git")
    if git:
        parts.append(f"git {git['sha'][:8]}{_git_state(git)}")
    dvc = env.get("dvc")
    if dvc:
        parts.append(f"dvc outs {len(dvc)}")
    return "mltest env: " + ", ".join(parts)
