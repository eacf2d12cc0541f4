"""Small file checks behind mltest's pre-commit hooks (standard library only).

Usage::

    python -m mltest._precommit yaml FILE...
    python -m mltest._precommit toml FILE...
    python -m mltest._precommit artefacts [--max-kb N] FILE...

Each prints one line per bad file (``path: problem``) and exits 1 when any
file is bad, 2 on bad usage, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ARTEFACT_SUFFIXES", "check_artefacts", "check_toml", "check_yaml", "main"]

#: Suffixes of model weights and binary data that belong in DVC, not git.
ARTEFACT_SUFFIXES = frozenset(
    {
        ".pt",
        ".pth",
        ".ckpt",
        ".safetensors",
        ".onnx",
        ".pkl",
        ".pickle",
        ".joblib",
        ".h5",
        ".npy",
        ".npz",
        ".parquet",
        ".bin",
        ".tflite",
    }
)


def check_yaml(path: Path) -> str | None:
    """Return why ``path`` is not valid YAML, or None.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.yaml"
        >>> _ = p.write_text("a: [1, 2")
        >>> check_yaml(p).startswith("invalid YAML")
        True
    """
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml comes with the dev extra
        return "cannot check YAML: pip install pyyaml"
    try:
        with path.open(encoding="utf-8") as fh:
            for _ in yaml.safe_load_all(fh):
                pass
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()
        return "invalid YAML: " + " ".join(line.strip() for line in first[:3])
    return None


def check_toml(path: Path) -> str | None:
    """Return why ``path`` is not valid TOML, or None.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.toml"
        >>> _ = p.write_text("a = ")
        >>> check_toml(p).startswith("invalid TOML")
        True
    """
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return f"invalid TOML: {exc}"
    return None


def check_artefacts(path: Path, max_kb: int) -> str | None:
    """Return why ``path`` should not be committed to git, or None.

    Example:
        >>> check_artefacts(Path("model.pt"), 1024)
        'model artefact (.pt): track it with DVC (dvc add model.pt)'
    """
    suffix = path.suffix.lower()
    if suffix in ARTEFACT_SUFFIXES:
        kind = "model artefact" if suffix in {".pt", ".pth", ".ckpt", ".safetensors"} else "binary"
        return f"{kind} ({suffix}): track it with DVC (dvc add {path})"
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if size > max_kb * 1024:
        return (
            f"{size // 1024} KiB is over the {max_kb} KiB limit: track it with DVC (dvc add {path})"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one check over files; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m mltest._precommit")
    parser.add_argument("check", choices=["yaml", "toml", "artefacts"])
    parser.add_argument("--max-kb", type=int, default=1024)
    parser.add_argument("files", nargs="*", type=Path)
    args = parser.parse_intermixed_args(argv)  # options may come before the files
    bad = 0
    for path in args.files:
        if args.check == "yaml":
            problem = check_yaml(path)
        elif args.check == "toml":
            problem = check_toml(path)
        else:
            problem = check_artefacts(path, args.max_kb)
        if problem:
            print(f"{path}: {problem}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
