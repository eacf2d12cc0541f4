"""Every option: help text, CLI and ini forms, validation errors."""

from __future__ import annotations

import pytest

from mltest.plugin import OPT_DEVICE, OPT_ML, OPT_REPORT, OPT_SEED, OPT_UPDATE_BASELINES


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "mltest: testing ML code, data and models:",
            f"  {OPT_ML} *run the ML tests (markers ml, data, model, behavioral);*",
            f"  {OPT_DEVICE}=DEVICES*",
            f"  {OPT_SEED}=N|last*",
            f"  {OPT_REPORT}=PATH*",
            f"  {OPT_UPDATE_BASELINES}*",
        ]
    )
    result.stdout.fnmatch_lines(["  ml (bool):*run the ML tests (as --ml)*"])
    result.stdout.fnmatch_lines(
        ["  ml_baseline_dir (string):", "*folder of metric baselines, relative to the rootdir*"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--ml-device", "tpu"],
            "*argument --ml-device: unknown device 'tpu': use auto, cpu, cuda, cuda:N, mps or xpu",
        ),
        (["--ml-device", "cpu:1"], "*unknown device 'cpu:1'*"),
        (["--ml-device", ","], "*argument --ml-device: no device given*"),
        (
            ["--ml-seed", "abc"],
            "*argument --ml-seed: 'abc' is not a seed: give an integer in [[]0, 2**32) or 'last'",
        ),
        (["--ml-seed", "-1"], "*argument --ml-seed: seed -1 is out of range: use [[]0, 2**32)"),
        (["--ml-seed", str(2**32)], "*seed 4294967296 is out of range*"),
    ],
)
def test_bad_cli_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("ml_device = gpu", "ERROR: ini ml_device: unknown device 'gpu'*"),
        ("ml_seed = soon", "ERROR: ini ml_seed: 'soon' is not a seed*"),
    ],
)
def test_bad_ini_values_are_usage_errors(pytester: pytest.Pytester, ini: str, message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_ini_turns_ml_on_and_cli_seed_wins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nml = true\nml_seed = 11\nml_device = cpu\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.ml
        def test_ml(): pass
        """
    )
    result = pytester.runpytest("--ml-seed", "12")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["mltest: seed 12 (replay with --ml-seed 12), ML tests on, devices cpu"]
    )


def test_ini_seed_used_when_no_cli_seed(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nml_seed = 11\n")
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["mltest: seed 11 (replay with --ml-seed 11), ML tests off*"])


def test_device_option_repeats_and_merges(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--ml-device", "cpu", "--ml-device", "cuda,cpu")
    result.stdout.fnmatch_lines(["mltest: seed *, devices cpu,cuda"])


def test_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("-p", "no:mltest")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("mltest: seed*")
