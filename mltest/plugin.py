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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mltest import devices as _devices
from mltest import markers as _markers
from mltest import report as _report
from mltest import repro as _repro

if TYPE_CHECKING:
    from _pytest.nodes import Node as _Node

    from mltest.baselines import MetricBaseline

# Option names, importable by tests (as in hypothesis' plugin).
OPT_ML = "--ml"
OPT_DEVICE = "--ml-device"
OPT_SEED = "--ml-seed"
OPT_REPORT = "--ml-report"
OPT_REPORT_HTML = "--ml-report-html"
OPT_UPDATE_BASELINES = "--ml-update-baselines"

CACHE_SEED_KEY = "mltest/seed"
SKIP_REASON_NO_ML = "needs --ml"
DEFAULT_BASELINE_DIR = ""  # empty: beside each test, in a folder named after its module


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
        OPT_REPORT_HTML,
        default=None,
        dest="ml_report_html",
        metavar="PATH",
        help="write the HTML report (one self-contained file: tests, checks, failing "
        "examples, figures) to PATH. ini: ml_report_html",
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
    parser.addini("ml_report_html", default="", help="path of the HTML report")
    parser.addini("ml_update_baselines", type="bool", default=False, help="store metric baselines")
    parser.addini(
        "ml_baseline_dir",
        default=DEFAULT_BASELINE_DIR,
        help="folder of metric baselines, relative to the rootdir (default: beside each "
        "test, in a folder named after its module)",
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
    html_path: Path | None
    update_baselines: bool
    baseline_dir: Path | None  # None: beside each test
    is_worker: bool
    session: _report.SessionReport
    messages: list[str] = field(default_factory=list)  # for the summary: reports written


_settings_key = pytest.StashKey[_Settings]()
_names_key = pytest.StashKey[set[str]]()  # the test's marker names, for the report
_is_ml_key = pytest.StashKey[bool]()  # ML kind marker, or uses the device fixture
_cuda_limit_key = pytest.StashKey[int]()  # bytes, from limit_cuda_memory
_records_key = pytest.StashKey["_TestRecords"]()
_seed_key = pytest.StashKey[int]()


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


def _ini_bool(config: pytest.Config, name: str) -> bool:
    try:
        return bool(config.getini(name))
    except (ValueError, pytest.UsageError) as exc:  # pytest >= 9 raises UsageError itself
        raise pytest.UsageError(f"ini {name}: {exc} (use true/false)") from None


def _report_path(
    config: pytest.Config, option: str, value: str | None, ini: str, is_worker: bool
) -> Path | None:
    """The report path from the CLI or ini, made absolute.

    A path that cannot be written is a usage error, checked on the
    controller (which writes the reports) before any test runs.
    """
    text = value or str(config.getini(ini)).strip()
    if not text:
        return None
    path = config.invocation_params.dir / text
    problem = None if is_worker else _report.output_path_problem(path)
    if problem is not None:
        source = option if value else f"ini {ini}"
        raise pytest.UsageError(f"{source} {text}: {problem}")
    return path


def _baseline_dir(config: pytest.Config) -> Path | None:
    value = str(config.getini("ml_baseline_dir"))
    if not value.strip():
        return None
    from mltest.baselines import resolve_baseline_dir

    try:
        return resolve_baseline_dir(config.rootpath, value)
    except ValueError as exc:
        raise pytest.UsageError(f"ini ml_baseline_dir: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    """Resolve options, register markers, pick the seed, set up xdist hooks."""
    for name, help_text in _markers.MARKERS.items():
        config.addinivalue_line("markers", help_text if ":" in help_text else name)

    option = config.option
    ml = option.ml if option.ml is not None else _ini_bool(config, "ml")
    if option.ml_device is not None:
        device_names = _devices.parse_devices([n for chunk in option.ml_device for n in chunk])
    else:
        try:
            device_names = _devices.parse_devices(str(config.getini("ml_device")))
        except ValueError as exc:
            raise pytest.UsageError(f"ini ml_device: {exc}") from None
    is_worker = hasattr(config, "workerinput")
    report = _report_path(config, OPT_REPORT, option.ml_report, "ml_report", is_worker)
    html = _report_path(config, OPT_REPORT_HTML, option.ml_report_html, "ml_report_html", is_worker)
    update = (
        option.ml_update_baselines
        if option.ml_update_baselines is not None
        else _ini_bool(config, "ml_update_baselines")
    )
    seed = _resolve_seed(config, option.ml_seed)

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
        report_path=report,
        html_path=html,
        update_baselines=update,
        baseline_dir=_baseline_dir(config),
        is_worker=is_worker,
        session=_report.SessionReport(seed=seed, devices=device_names, ml_enabled=ml),
    )
    eager = (
        settings.report_path is not None
        or settings.html_path is not None
        or bool(os.environ.get("GITHUB_STEP_SUMMARY"))
    )
    records = _TestRecords(settings, eager=eager)
    config.stash[_records_key] = records
    config.pluginmanager.register(records, "mltest-records")


class _TestRecords:
    """One per config: the records of the tests this process runs.

    On the controller, finished records go into the session report. A plugin
    object rather than module-level hooks and globals, so that a pytest run
    started in-process (pytester) keeps its results apart from the outer run.

    Records cost time per test, so a test gets one only when it is needed:
    at setup for ML tests when a JSON or Markdown report is being written
    (they are all listed there), otherwise the first time the test records
    something. Phases that did not pass before then are kept aside so the
    outcome is still right.
    """

    def __init__(self, settings: _Settings, *, eager: bool) -> None:
        self.settings = settings
        self.eager = eager
        self.running: dict[str, _report.TestRecord] = {}
        self.started: set[str] = set()
        self.early: dict[str, list[tuple[str | None, float, str | None]]] = {}

    def open(self, item: pytest.Item) -> _report.TestRecord:
        """The record of ``item``, created on first use."""
        record = self.running.get(item.nodeid)
        if record is None:
            record = self.running[item.nodeid] = _report.TestRecord(
                nodeid=item.nodeid,
                seed=item.stash.get(_seed_key, None),
                markers=sorted(item.stash.get(_names_key, set()) - _NOT_REPORTED),
                is_ml=item.stash.get(_is_ml_key, False),
            )
            for phase in self.early.pop(item.nodeid, ()):
                record.add_phase(*phase)
        return record

    def start(self, item: pytest.Item) -> None:
        """Setup: make the test current in mltest.report, with or without a record."""
        self.started.add(item.nodeid)
        if self.eager and item.stash.get(_is_ml_key, False):
            _report._push(self.open(item))
        else:
            _report._push(None, lambda: self.open(item))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Fold each phase into the test's record; ship it with the teardown report.

        tryfirst: under xdist the worker serialises the report in its own
        logreport hook, so the record must be attached before that. The record
        travels as a plain dict attribute, which xdist carries to the
        controller.
        """
        nodeid = report.nodeid
        record = self.running.get(nodeid)
        when = report.when
        if (
            record is None
            and when != "teardown"
            and report.outcome == "passed"
            and not hasattr(report, "wasxfail")
        ):
            return  # the common case: nothing recorded yet, nothing to remember
        outcome = None
        if report.outcome != "passed" or when == "call" or hasattr(report, "wasxfail"):
            outcome = _phase_outcome(report)
        skip_reason = None
        if report.skipped and isinstance(report.longrepr, tuple):
            skip_reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        if record is not None:
            record.add_phase(outcome, report.duration, skip_reason)
        elif outcome not in (None, "passed"):
            self.early.setdefault(nodeid, []).append((outcome, report.duration, skip_reason))
        if when != "teardown":
            return
        if nodeid in self.started:
            self.started.discard(nodeid)
            _report._pop()
        self.early.pop(nodeid, None)
        if record is not None:
            del self.running[nodeid]
            if record.has_content() or (self.eager and record.is_ml):
                report.mltest = record.to_dict()  # type: ignore[attr-defined]
        if not self.settings.is_worker:
            test = getattr(report, "mltest", None)
            if test is not None:
                self.settings.session.add(test)


class _CudaMemoryLimit:
    """Registered only when a collected test carries ``limit_cuda_memory``."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        """Fail the test when its peak CUDA memory exceeds the mark's limit."""
        limit = item.stash.get(_cuda_limit_key, None)
        result = yield
        if limit is not None:
            import torch

            peak = int(torch.cuda.max_memory_allocated())
            _report.record_metric("cuda_peak_bytes", peak)
            if peak > limit:
                pytest.fail(
                    f"peak CUDA memory {_devices.format_size(peak)} exceeds the limit of "
                    f"{_devices.format_size(limit)} "
                    f"[torch.cuda.max_memory_allocated() = {peak} bytes]",
                    pytrace=False,
                )
        return result


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
    inherited: dict[_Node, frozenset[str]] = {}
    for item in items:
        names = {m.name for m in item.own_markers}
        if item.parent is not None:
            names |= _marker_names(item.parent, inherited)
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
                names.add(kind)
        is_ml = bool(names.intersection(_markers.ML_KINDS))
        if not settings.ml and is_ml:
            item.add_marker(skip_ml)
        if is_ml or "device" in getattr(item, "fixturenames", ()):
            item.stash[_is_ml_key] = True
        item.stash[_names_key] = names
        if "limit_cuda_memory" in names:
            mark = item.get_closest_marker("limit_cuda_memory")
            assert mark is not None
            item.stash[_cuda_limit_key] = _cuda_memory_limit(item, mark)  # fails fast if bad
            if not config.pluginmanager.has_plugin("mltest-cuda-memory"):
                config.pluginmanager.register(_CudaMemoryLimit(), "mltest-cuda-memory")
        for device_name in names.intersection(_markers.DEVICE_MARKERS):
            if device_name not in absent:  # probing imports torch: once per device
                absent[device_name] = _devices.unavailable_reason(device_name)
            reason = absent[device_name]
            if reason is not None:
                item.add_marker(pytest.mark.skip(reason=reason))


def _marker_names(node: _Node, cache: dict[_Node, frozenset[str]]) -> frozenset[str]:
    """Names of the markers on ``node`` and its parents (``iter_markers``, cached per node).

    Thousands of tests share a few modules and classes: walking each test's
    chain of parents again, as ``iter_markers`` does, is most of the plugin's
    collection cost.
    """
    names = cache.get(node)
    if names is None:
        own = frozenset(m.name for m in node.own_markers)
        names = own if node.parent is None else own | _marker_names(node.parent, cache)
        cache[node] = names
    return names


# Markers that say how a test is run, not what it is: left out of the report.
_NOT_REPORTED = frozenset({"parametrize", "usefixtures", "filterwarnings", "skip", "skipif"})

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


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A folder named like a suite file is a collection error, not a silent "no tests ran"."""
    if path.name.endswith(DATA_SUITE_SUFFIXES + BEHAVIORAL_SUITE_SUFFIXES):
        from mltest.data.suites import collect_directory

        return collect_directory(parent, path)
    return None


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Seed the test, open its record, and skip it when its device is absent."""
    settings = item.config.stash[_settings_key]
    seed = item.stash[_seed_key] = _repro.derive_seed(settings.seed, item.nodeid)
    item.config.stash[_records_key].start(item)
    _repro.seed_everything(seed)
    if _cuda_limit_key in item.stash:
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
    """Controller: write the JSON and HTML reports and the GitHub step summary.

    A report that cannot be written is one line in the summary; the run's
    exit status stays the tests' outcome.
    """
    settings = session.config.stash.get(_settings_key, None)
    if settings is None or settings.is_worker:
        return
    report = settings.session
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if settings.report_path is not None or settings.html_path is not None or summary:
        if report.environment:
            # torch may have been imported since the header: look at devices again.
            report.environment["devices"] = _repro.device_info()
        else:
            report.environment = _repro.capture_environment(session.config.rootpath)
    written: list[tuple[str, Path, Any]] = []
    if settings.report_path is not None:
        written.append(("JSON report", settings.report_path, report.write_json))
    if settings.html_path is not None:
        written.append(("HTML report", settings.html_path, report.write_html))
    for what, path, write in written:
        try:
            write(path)
            settings.messages.append(f"{what} written to {path}")
        except OSError as exc:
            settings.messages.append(_report.write_problem(what, path, exc))
    if summary and report.tests:
        html = settings.html_path
        try:
            with open(summary, "a", encoding="utf-8") as fh:
                fh.write(report.markdown(html_report=_report.html_mention(html) if html else None))
        except OSError as exc:
            problem = _report.write_problem("GitHub step summary", Path(summary), exc)
            settings.messages.append(problem)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the "mltest" section when there is something to say (not on workers)."""
    settings = config.stash.get(_settings_key, None)
    if settings is None or settings.is_worker:
        return
    lines = settings.session.summary_lines(verbose=config.get_verbosity() > 0)
    lines.extend(settings.messages)
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
    seed: int | None = request.node.stash.get(_seed_key, None)
    if seed is None:  # pragma: no cover - setup always sets it
        seed = _repro.derive_seed(request.config.stash[_settings_key].seed, request.node.nodeid)
    return seed


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
    return _report.Recorder(request.config.stash[_records_key].open(request.node))


@pytest.fixture
def metric_baseline(request: pytest.FixtureRequest) -> Iterator[MetricBaseline]:
    """Compare metrics against stored baselines: they may improve, not regress.

    Baselines live beside the test, one JSON file per test
    (``tests/test_m.py::test_f1`` -> ``tests/test_m/test_f1.json``; ini
    ``ml_baseline_dir`` moves them under one folder); ``--ml-update-baselines``
    stores the current values. A missing baseline fails with the command to run.

    Example:
        >>> def test_f1_holds(metric_baseline):  # doctest: +SKIP
        ...     metric_baseline.check("macro_f1", evaluate(model), tolerance=0.01)
        ...     metric_baseline.check("ece", ece, tolerance=0.01, higher_is_better=False)
    """
    from mltest.baselines import MetricBaseline, baseline_file

    settings = request.config.stash[_settings_key]
    baseline = MetricBaseline(
        baseline_file(
            Path(request.node.path),
            request.node.nodeid,
            rootpath=request.config.rootpath,
            directory=settings.baseline_dir,
        ),
        update=settings.update_baselines,
    )
    yield baseline
    baseline.save()


# --- fixtures: model checks (issue 3) ---------------------------------------


@pytest.fixture
def model_checker(request: pytest.FixtureRequest, ml_seed: int) -> Any:
    """``mltest.model.check_model`` bound to the test's seed and ``--ml-device`` devices.

    Call it with the model, a batch, the loss and an optimizer factory; it runs
    every applicable model check and fails the test once, listing each failed
    check with its diagnosis. Device parity compares the model's device with
    every other selected device that is available. Pass ``loss_fn=None`` for
    a model that computes its loss from the batch's labels (Hugging Face
    style), and ``causal=True`` / ``pad_id=`` for the sequence checks; see
    docs/model-checks.md.

    Example:
        >>> def test_classifier_trains(model_checker):  # doctest: +SKIP
        ...     model_checker(Net(), (x, y), nn.CrossEntropyLoss(),
        ...                   lambda m: torch.optim.Adam(m.parameters(), lr=1e-2))
    """
    from mltest.model import ModelChecker

    settings = request.config.stash[_settings_key]
    return ModelChecker(seed=ml_seed, devices=_devices.expand_auto(settings.devices))


# --- fixtures: data checks (issue 4) ----------------------------------------

# --- fixtures: behavioural tests (issue 5) ----------------------------------

# --- fixtures: served-model test kit (issue 10) -----------------------------


@pytest.fixture
def ml_server(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start server processes for one test; every one is stopped when the test ends.

    Call it with a command line (``{host}`` and ``{port}`` are filled in with
    127.0.0.1 and a free port) and the options of ``mltest.serving.start_server``
    (``ready_path``, ``timeout``, ``env``, ``grace``...). It returns a
    ``RunningServer`` once ``GET ready_path`` answers 200: ``base_url`` and an
    ``httpx`` ``client``. A failing test's report shows the server's log tail;
    the latency of the client's calls goes into the mltest report.

    Example:
        >>> def test_health(ml_server):  # doctest: +SKIP
        ...     server = ml_server(["uvicorn", "app:app", "--port", "{port}"], ready_path="/health")
        ...     assert server.client.get("/health").status_code == 200
    """
    from mltest import serving

    serving.install_log_reporter(request.config)
    factory = serving.ServerFactory()
    try:
        yield factory.start
    finally:
        latencies = [ms for server in factory.servers for ms in server.latencies_ms]
        factory.close()
        if latencies:
            serving.record_latency("ml_server", latencies)


@pytest.fixture(scope="session")
def ml_server_factory(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A ``mltest.serving.ServerFactory`` for module- or session-scoped servers.

    Servers it starts are stopped when their ``with factory.serve(...)`` block
    ends, and at the end of the session at the latest.

    Example:
        >>> @pytest.fixture(scope="module")  # doctest: +SKIP
        ... def server(ml_server_factory):
        ...     with ml_server_factory.serve(["bentoml", "serve", "svc:Svc",
        ...                                   "--port", "{port}"]) as running:
        ...         yield running
    """
    from mltest import serving

    serving.install_log_reporter(request.config)
    factory = serving.ServerFactory()
    try:
        yield factory
    finally:
        factory.close()
