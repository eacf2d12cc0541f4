"""The device fixture and --ml-device selection."""

from __future__ import annotations

import pytest

from mltest.devices import expand_auto, format_size, parse_devices, parse_size

DEVICE_TEST = """
def test_forward(device):
    import torch
    assert isinstance(device, torch.device)
    assert torch.zeros(1, device=device).device.type == device.type
"""


@pytest.fixture
def cpu_only() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        pytest.skip("checks CPU-only behaviour")


def test_cpu_device_runs(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest("--ml-device", "cpu", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_forward[[]cpu] PASSED*"])


def test_auto_is_cpu_plus_available_accelerators(pytester: pytest.Pytester, cpu_only: None) -> None:
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_forward[[]cpu] PASSED*"])


def test_absent_device_skips_with_reason(pytester: pytest.Pytester, cpu_only: None) -> None:
    pytester.makepyfile(DEVICE_TEST)
    result = pytester.runpytest("--ml-device", "cpu,cuda", "-v", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*test_forward[[]cuda] SKIPPED*",
            "SKIPPED [[]1] test_absent_device_skips_with_reason.py:1: device cuda is not "
            "available (torch.cuda.is_available() is False)",
        ]
    )


def test_test_may_choose_its_own_devices(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("device", ["cpu"], indirect=True)
        def test_forward(device):
            assert device.type == "cpu"
        """
    )
    pytester.runpytest("--ml-device", "cpu,cuda").assert_outcomes(passed=1)


def test_parse_devices() -> None:
    assert parse_devices(["cpu", "CUDA:0, cpu"]) == ["cpu", "cuda:0"]
    with pytest.raises(ValueError, match="unknown device 'auto:1'"):
        parse_devices("auto:1")


def test_expand_auto_keeps_order_without_repeats(cpu_only: None) -> None:
    assert expand_auto(["cuda", "auto"]) == ["cuda", "cpu"]
    assert expand_auto(["cpu", "cuda"]) == ["cpu", "cuda"]


@pytest.mark.parametrize(
    ("text", "size"),
    [("2 GB", 2 * 10**9), ("512MiB", 512 * 2**20), ("1.5 kib", 1536), (4096, 4096), ("7", 7)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["2 GX", "", "-1 GB", 0, "lots", True])
def test_parse_size_rejects(text: str | int) -> None:
    with pytest.raises(ValueError, match=r"memory size"):
        parse_size(text)


def test_format_size() -> None:
    assert [format_size(n) for n in (10, 1536, 3 * 2**30, 2**41)] == [
        "10 B",
        "1.5 KiB",
        "3.0 GiB",
        "2.0 TiB",
    ]


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ('"lots"', "not a memory size: 'lots' (write e.g. '2 GB' or '512 MiB')"),
        ("", "takes one argument, e.g. limit_cuda_memory('2 GB')"),
    ],
)
def test_limit_cuda_memory_bad_mark_is_a_usage_error(
    pytester: pytest.Pytester, mark: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.limit_cuda_memory({mark})
        def test_a(): pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: *::test_a: limit_cuda_memory: {message}"])


def test_limit_cuda_memory_skips_without_cuda(pytester: pytest.Pytester, cpu_only: None) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.limit_cuda_memory("2 GB")
        def test_a(): pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED*limit_cuda_memory: device cuda is not available (torch.cuda.is_available()*"]
    )


@pytest.mark.cuda
def test_limit_cuda_memory_fails_over_the_limit(
    pytester: pytest.Pytester,
) -> None:  # pragma: no cover
    pytester.makepyfile(
        """
        import pytest
        import torch

        @pytest.mark.limit_cuda_memory("1 MB")
        def test_big():
            x = torch.empty(4 * 2**20, dtype=torch.uint8, device="cuda")
            del x

        @pytest.mark.limit_cuda_memory("64 MB")
        def test_small():
            x = torch.empty(2**20, dtype=torch.uint8, device="cuda")
            del x
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*peak CUDA memory 4.0 MiB exceeds the limit of 976.6 KiB "
            "[[]torch.cuda.max_memory_allocated() = 4194304 bytes]"
        ]
    )
