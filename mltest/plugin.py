"""The pytest plugin: options, markers, hooks and fixtures, nothing else.

Registered through the ``pytest11`` entry point as ``mltest`` (turn it off with
``-p no:mltest``). Importing this module imports no torch, numpy, pandas or
Great Expectations; every capability is imported where it is used.

Order of this file: option names and value parsers, ``pytest_addoption``,
configuration, collection hooks, run hooks, reporting hooks, fixtures.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mltest import devices as _devices
from mltest import markers as _markers
from mltest import report as _report
from mltest import repro as _repro

if TYPE_CHECKING:
    from mltest.baselines import MetricBaseline

# Option names, importable by tests (as in hypothesis' plugin).
OPT_ML = "--ml"
OPT_DEVICE = "--ml-device"
OPT_SEED = "--ml-seed"
OPT_REPORT = "--ml-report"
OPT_UPDATE_BASELINES = "--ml-update-baselines"

CACHE_SEED_KEY = "mltest/seed"
SKIP_REASON_NO_ML = "needs --ml"
DEFAULT_BASELINE_DIR = "tests/baselines"


# ---------------------------------------------------------------------------
# Value parsers: each raises argparse.ArgumentTypeError, which pytest turns
# into a usage error naming the option.
# ---------------------------------------------------------------------------


def _device_arg(value: str) -> list[str]:
    try:
        return _devices.parse_devices(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed_arg(value: str) -> int | str:
    text = value.strip().lower()
    if text == "last":
        return "last"
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a seed: give an integer in [0, 2**32) or 'last'"
        ) from None
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(f"seed {seed} is out of range: use [0, 2**32)")
    return seed


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register mltest's options; each is a CLI flag and an ini key, CLI wins."""
    group = parser.getgroup("mltest", "mltest: testing ML code, data and models")
    group.addoption(
        OPT_ML,
        action="store_const",
        const=True,
        default=None,
        dest="ml",
        help="run the ML tests (markers ml, data, model, behavioral); "
        "without it they are skipped. ini: ml = true",
    )
    group.addoption(
        OPT_DEVICE,
        action="append",
        type=_device_arg,
        default=None,
        dest="ml_device",
        metavar="DEVICES",
        help="devices for the device fixture, a comma list or repeated: auto, cpu, cuda, "
        "cuda:N, mps, xpu. auto (default) = cpu plus every available accelerator. "
        "ini: ml_device",
    )
    group.addoption(
        OPT_SEED,
        type=_seed_arg,
        default=None,
        dest="ml_seed",
        metavar="N|last",
        help="session seed (each test is seeded from it and its node id); 'last' "
        "replays the previous run's seed. Default: random, printed in the header. "
        "ini: ml_seed",
    )
    group.addoption(
        OPT_REPORT,
        default=None,
        dest="ml_report",
        metavar="PATH",
        help="write the JSON report (environment, seeds, ML checks and records) to PATH. "
        "ini: ml_report",
    )
    group.addoption(
        OPT_UPDATE_BASELINES,
        action="store_const",
        const=True,
        default=None,
        dest="ml_update_baselines",
        help="store current metric values as baselines instead of comparing. "
        "ini: ml_update_baselines",
    )
    parser.addini("ml", type="bool", default=False, help="run the ML tests (as --ml)")
    parser.addini("ml_device", default="auto", help="devices for the device fixture")
    parser.addini("ml_seed", default="", help="session seed, an integer or 'last'")
    parser.addini("ml_report", default="", help="path of the JSON report")
    parser.addini("ml_update_baselines", type="bool", default=False, help="store metric baselines")
    parser.addini(
        "ml_baseline_dir",
        default=DEFAULT_BASELINE_DIR,
        help=f"folder of metric baselines, relative to the rootdir ({DEFAULT_BASELINE_DIR})",
    )


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclass
class _Settings:
    """Resolved options (CLI over ini), validated."""

    ml: bool
    devices: list[str]
    seed: int
    report_path: Path | None
    update_baselines: bool
    baseline_dir: Path
    is_worker: bool
    session: _report.SessionReport


_settings_key = pytest.StashKey[_Settings]()
_record_key = pytest.StashKey[_report.TestRecord]()


def _resolve_seed(config: pytest.Config, value: int | str | None) -> int:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "mltest_seed" in workerinput:
        return int(workerinput["mltest_seed"])
    if value is None:
        ini = str(config.getini("ml_seed")).strip()
        if ini:
            try:
                value = _seed_arg(ini)
            except argparse.ArgumentTypeError as exc:
                raise pytest.UsageError(f"ini ml_seed: {exc}") from None
    if value == "last":
        cache = getattr(config, "cache", None)
        last = cache.get(CACHE_SEED_KEY, None) if cache is not None else None
        if not isinstance(last, int):
            raise pytest.UsageError(
                f"{OPT_SEED} last: no seed from a previous run in the pytest cache; "
                "run once without it (or give the seed printed in the header)"
            )
        return last
    if isinstance(value, int):
        return value
    return _repro.new_session_seed()


def pytest_configure(config: pytest.Config) -> None:
    """Resolve options, register markers, pick the seed, set up xdist hooks."""
    for name, help_text in _markers.MARKERS.items():
        config.addinivalue_line("markers", help_text if ":" in help_text else name)

    option = config.option
    ml = option.ml if option.ml is not None else bool(config.getini("ml"))
    if option.ml_device is not None:
        device_names = _devices.parse_devices([n for chunk in option.ml_device for n in chunk])
    else:
        try:
            device_names = _devices.parse_devices(str(config.getini("ml_device")))
        except ValueError as exc:
            raise pytest.UsageError(f"ini ml_device: {exc}") from None
    report = option.ml_report or str(config.getini("ml_report")).strip() or None
    update = (
        option.ml_update_baselines
        if option.ml_update_baselines is not None
        else bool(config.getini("ml_update_baselines"))
    )
    seed = _resolve_seed(config, option.ml_seed)
    is_worker = hasattr(config, "workerinput")

    if not is_worker:
        cache = getattr(config, "cache", None)
        if cache is not None:
            cache.set(CACHE_SEED_KEY, seed)
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(seed), "mltest-xdist")

    settings = config.stash[_settings_key] = _Settings(
        ml=ml,
        devices=device_names,
        seed=seed,
        report_path=Path(report) if report else None,
        update_baselines=update,
        baseline_dir=config.rootpath / str(config.getini("ml_baseline_dir")),
        is_worker=is_worker,
        session=_report.SessionReport(seed=seed, devices=device_names, ml_enabled=ml),
    )
    if not is_worker:
        config.pluginmanager.register(_ResultCollector(settings.session), "mltest-results")


class _ResultCollector:
    """Controller side: feeds every test report into the session report.

    A plugin object rather than a module-level hook, so that a pytest run
    started in-process (pytester) keeps its results apart from the outer run.
    """

    def __init__(self, session: _report.SessionReport) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Gather each test's phases; workers' reports arrive here too under xdist."""
        skip_reason = None
        if report.skipped and isinstance(report.longrepr, tuple):
            skip_reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        self.session.log_phase(
            report.nodeid,
            report.when or "",
            _phase_outcome(report),
            report.duration,
            skip_reason=skip_reason,
            info=getattr(report, "mltest", None),
        )


class _XdistHooks:
    """Hooks that exist only when pytest-xdist is loaded (controller side)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """Hand the controller's session seed to each worker."""
        node.workerinput["mltest_seed"] = self.seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Print the seed (and, for ML runs, the environment) in the header."""
    settings = config.stash[_settings_key]
    lines = [
        f"mltest: seed {settings.seed} (replay with {OPT_SEED} {settings.seed}), "
        f"ML tests {'on' if settings.ml else 'off (--ml to run them)'}, "
        f"devices {','.join(settings.devices)}"
    ]
    if settings.ml or settings.report_path is not None:
        env = _repro.capture_environment(config.rootpath)
        settings.session.environment = env
        lines.append(_repro.environment_header(env))
    return lines


# ---------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize tests that use the ``device`` fixture over the selected devices."""
    if "device" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "device" in (names.split(",") if isinstance(names, str) else names):
            return  # the test chose its own devices
    settings = metafunc.config.stash[_settings_key]
    names = _devices.expand_auto(settings.devices)
    metafunc.parametrize("device", names, indirect=True, ids=names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Infer taxonomy markers from paths; skip ML tests unless ``--ml``."""
    settings = config.stash[_settings_key]
    rootpath = config.rootpath
    skip_ml = pytest.mark.skip(reason=SKIP_REASON_NO_ML)
    inferred: dict[Path, str | None] = {}
    absent: dict[str, str | None] = {}
    for item in items:
        names = {m.name for m in item.iter_markers()}
        if not names.intersection(_markers.TAXONOMY):
            path = item.path
            if path not in inferred:
                try:
                    parts = path.relative_to(rootpath).parts
                except ValueError:
                    parts = path.parts
                inferred[path] = _markers.infer_taxonomy(parts)
            kind = inferred[path]
            if kind is not None:
                item.add_marker(kind)
        if not settings.ml and names.intersection(_markers.ML_KINDS):
            item.add_marker(skip_ml)
        cuda_limit = item.get_closest_marker("limit_cuda_memory")
        if cuda_limit is not None:
            _cuda_memory_limit(item, cuda_limit)  # fail fast on a bad mark
        for device_name in names.intersection(_markers.DEVICE_MARKERS):
            if device_name not in absent:  # probing imports torch: once per device
                absent[device_name] = _devices.unavailable_reason(device_name)
            reason = absent[device_name]
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


#: Suite files collected as test items, by name suffix.
DATA_SUITE_SUFFIXES = (".expectations.yaml", ".expectations.yml", ".expectations.json")
BEHAVIORAL_SUITE_SUFFIXES = (".behavioral.yaml", ".behavioral.yml")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect expectation suites and behavioural suites as test files."""
    name = file_path.name
    if name.endswith(DATA_SUITE_SUFFIXES):
        from mltest.data.suites import collect_file as collect_data_suite

        collected: pytest.Collector | None = collect_data_suite(parent, file_path)
        return collected
    if name.endswith(BEHAVIORAL_SUITE_SUFFIXES):
        from mltest.behavioral.suites import collect_file as collect_behavioral_suite

        collected = collect_behavioral_suite(parent, file_path)
        return collected
    return None


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Seed the test, open its record, and skip it when its device is absent."""
    settings = item.config.stash[_settings_key]
    seed = _repro.derive_seed(settings.seed, item.nodeid)
    record = _report.TestRecord(nodeid=item.nodeid, seed=seed)
    item.stash[_record_key] = record
    _report._push(record)
    _repro.seed_everything(seed)
    if item.get_closest_marker("limit_cuda_memory") is not None:
        reason = _devices.unavailable_reason("cuda")
        if reason is not None:
            pytest.skip(f"limit_cuda_memory: {reason}")
        import torch

        torch.cuda.reset_peak_memory_stats()


def _cuda_memory_limit(item: pytest.Item, mark: pytest.Mark) -> int:
    """The byte limit of a ``limit_cuda_memory`` mark; a bad mark is a usage error."""
    args = mark.args or tuple(mark.kwargs.values())
    try:
        if len(args) != 1:
            raise ValueError("takes one argument, e.g. limit_cuda_memory('2 GB')")
        return _devices.parse_size(args[0])
    except ValueError as exc:
        raise pytest.UsageError(f"{item.nodeid}: limit_cuda_memory: {exc}") from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """Enforce ``limit_cuda_memory`` around the test body."""
    mark = item.get_closest_marker("limit_cuda_memory")
    result = yield
    if mark is not None:
        import torch

        limit = _cuda_memory_limit(item, mark)
        peak = int(torch.cuda.max_memory_allocated())
        _report.record_metric("cuda_peak_bytes", peak)
        if peak > limit:
            pytest.fail(
                f"peak CUDA memory {_devices.format_size(peak)} exceeds the limit of "
                f"{_devices.format_size(limit)} ({mark.args[0]!r}) "
                f"[torch.cuda.max_memory_allocated() = {peak} bytes]",
                pytrace=False,
            )
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Ship the test's record with its final (teardown) report.

    The record travels as a plain dict attribute, which pytest-xdist
    serialises with the report, so the controller sees workers' records.
    """
    rep = yield
    if call.when == "teardown":
        record = item.stash.get(_record_key, None)
        if record is not None:
            _report._pop(record)
        markers = sorted({m.name for m in item.iter_markers()} - {"parametrize", "usefixtures"})
        is_ml = bool(set(markers).intersection(_markers.ML_KINDS)) or (
            "device" in getattr(item, "fixturenames", ())
        )
        rep.mltest = {  # type: ignore[attr-defined]
            "markers": markers,
            "ml": is_ml,
            "record": record.to_dict() if record is not None else None,
        }
    return rep


def _phase_outcome(report: pytest.TestReport) -> str | None:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when == "call":
        return report.outcome
    if report.failed:
        return "error"
    if report.skipped:
        return "skipped"
    return None


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Controller: write the JSON report and the GitHub step summary."""
    settings = session.config.stash.get(_settings_key, None)
    if settings is None or settings.is_worker:
        return
    report = settings.session
    if settings.report_path is not None or os.environ.get("GITHUB_STEP_SUMMARY"):
        env = report.environment or _repro.capture_environment(session.config.rootpath)
        env["devices"] = _repro.capture_environment(session.config.rootpath)["devices"]
        report.environment = env
    if settings.report_path is not None:
        path = settings.report_path
        if not path.is_absolute():
            path = session.config.invocation_params.dir / path
        report.write_json(path)
        settings.report_path = path
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary and (report.outcomes or report.has_content()):
        with open(summary, "a", encoding="utf-8") as fh:
            fh.write(report.markdown())


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the "mltest" section when there is something to say (not on workers)."""
    settings = config.stash.get(_settings_key, None)
    if settings is None or settings.is_worker:
        return
    lines = settings.session.summary_lines(verbose=config.get_verbosity() > 0)
    if settings.report_path is not None:
        lines.append(f"report written to {settings.report_path}")
    if not lines:
        return
    terminalreporter.write_sep("=", "mltest")
    for line in lines:
        terminalreporter.write_line(line)


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def ml_seed(request: pytest.FixtureRequest) -> int:
    """The test's seed, derived from the session seed and the node id.

    random, numpy and torch are already seeded with it when the test starts;
    use it to seed anything else (a DataLoader generator, a sampler).

    Example:
        >>> def test_split_is_stable(ml_seed):  # doctest: +SKIP
        ...     a = split(df, seed=ml_seed)
        ...     assert a.equals(split(df, seed=ml_seed))
    """
    record: _report.TestRecord | None = request.node.stash.get(_record_key, None)
    if record is None or record.seed is None:  # pragma: no cover - setup always sets it
        return _repro.derive_seed(request.config.stash[_settings_key].seed, request.node.nodeid)
    return record.seed


@pytest.fixture
def deterministic() -> Iterator[None]:
    """Run the test with torch's deterministic algorithms, then restore the old state.

    Sets ``torch.use_deterministic_algorithms(True)``, cuDNN deterministic mode
    and ``CUBLAS_WORKSPACE_CONFIG``.

    Example:
        >>> def test_two_runs_match(deterministic, ml_seed):  # doctest: +SKIP
        ...     assert torch.equal(train(ml_seed), train(ml_seed))
    """
    with _repro.deterministic_mode():
        yield


@pytest.fixture
def device(request: pytest.FixtureRequest) -> Any:
    """A ``torch.device``, once per device selected with ``--ml-device``.

    Test ids end in ``[cpu]``, ``[cuda]``...; a selected device that is absent
    here skips its test with the reason.

    Example:
        >>> def test_forward(device):  # doctest: +SKIP
        ...     model = Net().to(device)
        ...     assert model(torch.zeros(2, 8, device=device)).shape == (2, 3)
    """
    name = getattr(request, "param", "cpu")
    reason = _devices.unavailable_reason(name)
    if reason is not None:
        pytest.skip(reason)
    import torch

    return torch.device(name)


@pytest.fixture
def ml_record(request: pytest.FixtureRequest) -> _report.Recorder:
    """Attach metrics, artefact paths and data to the test's entry in the report.

    Example:
        >>> def test_eval(ml_record):  # doctest: +SKIP
        ...     ml_record.metric("macro_f1", 0.973)
        ...     ml_record.artifact("confusion", "artifacts/confusion.png")
    """
    record = request.node.stash.get(_record_key, None)
    if record is None:  # pragma: no cover - setup always sets it
        record = _report.TestRecord(nodeid=request.node.nodeid)
    return _report.Recorder(record)


@pytest.fixture
def metric_baseline(request: pytest.FixtureRequest) -> Iterator[MetricBaseline]:
    """Compare metrics against stored baselines: they may improve, not regress.

    Baselines live in ``tests/baselines/`` (ini ``ml_baseline_dir``), one JSON
    file per test; ``--ml-update-baselines`` stores the current values.

    Example:
        >>> def test_f1_holds(metric_baseline):  # doctest: +SKIP
        ...     metric_baseline.check("macro_f1", evaluate(model), tolerance=0.01)
    """
    from mltest.baselines import MetricBaseline, baseline_path

    settings = request.config.stash[_settings_key]
    baseline = MetricBaseline(
        baseline_path(settings.baseline_dir, request.node.nodeid),
        update=settings.update_baselines,
    )
    yield baseline
    baseline.save()


# --- fixtures: model checks (issue 3) ---------------------------------------

# --- fixtures: data checks (issue 4) ----------------------------------------

# --- fixtures: behavioural tests (issue 5) ----------------------------------
