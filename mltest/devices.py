"""Device names for ``--ml-device`` and whether each is available.

Parsing never imports torch; checking availability does, and only when a test
asks for a device.

Example:
    >>> parse_devices("cpu,cuda:1")
    ['cpu', 'cuda:1']
    >>> parse_devices("tpu")
    Traceback (most recent call last):
    ...
    ValueError: unknown device 'tpu': use auto, cpu, cuda, cuda:N, mps or xpu
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

__all__ = [
    "ACCELERATORS",
    "expand_auto",
    "format_size",
    "parse_devices",
    "parse_size",
    "unavailable_reason",
]

#: Accelerator types we know how to probe, in the order ``auto`` lists them.
ACCELERATORS: tuple[str, ...] = ("cuda", "mps", "xpu")

_NAME = re.compile(r"^(auto|cpu|cuda|mps|xpu)(?::(\d+))?$")


def parse_devices(value: str | Iterable[str]) -> list[str]:
    """Parse a comma list (or several) of device names, keeping order, no repeats.

    Raises:
        ValueError: On an unknown name, with the names that are accepted.
    """
    chunks = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for chunk in chunks:
        for raw in chunk.split(","):
            name = raw.strip().lower()
            if not name:
                continue
            match = _NAME.match(name)
            if not match or (match.group(1) in ("auto", "cpu") and match.group(2)):
                raise ValueError(
                    f"unknown device {raw.strip()!r}: use auto, cpu, cuda, cuda:N, mps or xpu"
                )
            if name not in names:
                names.append(name)
    if not names:
        raise ValueError("no device given: use auto, cpu, cuda, cuda:N, mps or xpu")
    return names


def _torch_available() -> bool:
    if "torch" in sys.modules:
        return True
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def unavailable_reason(name: str) -> str | None:
    """Why device ``name`` cannot be used here, or None when it can.

    Imports torch (the caller is about to use the device anyway).

    Example:
        >>> unavailable_reason("cpu") is None  # doctest: +SKIP
        True
    """
    if not _torch_available():
        return f"device {name} needs torch: pip install 'pytest-mltest[torch]'"
    import torch

    kind, _, index = name.partition(":")
    if kind == "cpu":
        return None
    if kind == "cuda":
        if not torch.cuda.is_available():
            return "device cuda is not available (torch.cuda.is_available() is False)"
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"device {name} is not available: this machine has {count} CUDA device(s)"
        return None
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            return "device mps is not available (torch.backends.mps.is_available() is False)"
        return None
    xpu = getattr(torch, "xpu", None)
    if xpu is None or not xpu.is_available():
        return "device xpu is not available (torch.xpu.is_available() is False)"
    return None


def expand_auto(names: list[str]) -> list[str]:
    """Replace ``auto`` by cpu plus every accelerator available here.

    Probing accelerators imports torch; without torch, ``auto`` means cpu.

    Example:
        >>> expand_auto(["cpu"])
        ['cpu']
    """
    if "auto" not in names:
        return names
    found = ["cpu"]
    if _torch_available():
        for kind in ACCELERATORS:
            if unavailable_reason(kind) is None:
                found.append(kind)
    expanded: list[str] = []
    for name in names:
        for item in found if name == "auto" else [name]:
            if item not in expanded:
                expanded.append(item)
    return expanded


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
}


def parse_size(value: str | int | float) -> int:
    """Parse a memory size such as ``"2 GB"``, ``"512MiB"`` or ``1024`` into bytes.

    Decimal units (KB, MB, GB) are powers of 1000, binary ones (KiB, MiB, GiB)
    powers of 1024, as pytest-memray reads them.

    Raises:
        ValueError: When the text is not a size.

    Example:
        >>> parse_size("2 GB"), parse_size("1.5KiB"), parse_size(10)
        (2000000000, 1536, 10)
    """
    if isinstance(value, bool):
        raise ValueError(f"not a memory size: {value!r} (write e.g. '2 GB' or '512 MiB')")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"memory size must be positive, got {value!r}")
        return int(value)
    match = _SIZE.match(value)
    unit = (match.group(2) or "").lower() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(f"not a memory size: {value!r} (write e.g. '2 GB' or '512 MiB')")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"memory size must be positive, got {value!r}")
    return size


def format_size(size: float) -> str:
    """Format bytes for a message: ``format_size(1536) == '1.5 KiB'``.

    Example:
        >>> format_size(3 * 2**30)
        '3.0 GiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"
