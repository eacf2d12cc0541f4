"""Nox sessions: lint, typecheck, tests (fast, no --ml), ml per device, coverage.

Run ``nox -l`` to list them, ``nox -s ml`` for the device matrix. Every
session installs torch==2.13.0 first: a looser requirement pulls a multi-GB
CUDA build (see the README).
"""

from __future__ import annotations

import os

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests"]

PYTHON = "3.11"
TORCH = "torch==2.13.0"
QUIET_ENV = {
    "BENTOML_DO_NOT_TRACK": "true",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
}


def _install(session: nox.Session, extras: str = "all") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the plugin package."""
    _install(session)
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The fast suite: everything that does not need --ml."""
    _install(session)
    session.run("pytest", "-q", *session.posargs, env=QUIET_ENV)


@nox.session(python=PYTHON)
@nox.parametrize("device", ["cpu", "cuda"])
def ml(session: nox.Session, device: str) -> None:
    """The ML suite on one device; the cuda variant skips cleanly without a GPU."""
    _install(session)
    if device == "cuda":
        probe = "import torch; print(torch.cuda.is_available())"
        if "True" not in str(session.run("python", "-c", probe, silent=True)):
            session.skip("no CUDA device on this machine (torch.cuda.is_available() is False)")
    session.run(
        "pytest",
        "--ml",
        f"--ml-device={device}",
        "-q",
        *session.posargs,
        env=QUIET_ENV,
    )


@nox.session(python=PYTHON)
def coverage(session: nox.Session) -> None:
    """The full suite under coverage.py (branch coverage), with the report."""
    _install(session)
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", "--ml", "-q", *session.posargs, env=QUIET_ENV)
    session.run("coverage", "combine", "--quiet")
    session.run("coverage", "report")
    if os.environ.get("CI"):
        session.run("coverage", "xml")


# --- behavioural tests: CheckList bridge (issue 5) ---------------------------


@nox.session(python=PYTHON)
def checklist(session: nox.Session) -> None:
    """The CheckList bridge against real CheckList 0.0.11 (not a dependency; see NOTES.md).

    CheckList's setup.py runs pip during the build and needs notebook<7, so
    its wheel is built once without build isolation and installed without its
    heavy dependencies (transformers, pattern): the bridge only needs
    ``checklist.test_types``, which imports dill, munch, ipywidgets and spacy
    (the tokenizer only, no model download) and works with ipython<9;
    iso-639 lets ``checklist.perturb`` import for ``benchmarks/behavioral.py``
    (``.nox/checklist/bin/python benchmarks/behavioral.py`` gives checklist_ratio).
    """
    _install(session, "behavioral,dev")
    session.install(
        "jupyter", "notebook<7", "ipython<9", "ipywidgets", "setuptools", "wheel", "dill", "munch",
        "spacy", "iso-639",
    )  # fmt: skip
    wheels = os.path.join(session.create_tmp(), "wheels")
    session.run(
        "pip", "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", wheels,
        "checklist==0.0.11",
    )  # fmt: skip
    session.install("--no-deps", "--find-links", wheels, "checklist==0.0.11")
    session.run(
        "pytest", "-q", "-rs", "tests/mltest/behavioral/test_behavioral_checklist.py",
        *session.posargs,
        env={**QUIET_ENV, "MLTEST_REQUIRE_CHECKLIST": "1"},
    )  # fmt: skip


@nox.session(python=PYTHON)
def evidently(session: nox.Session) -> None:
    """Drift: our monitor against evidently 0.7 on the same windows (never a dependency of ours).

    Phase 1 runs in the project's own interpreter (the one running nox, or
    ``$MLTEST_PYTHON``: it has torch and the trained model's code) and writes
    the windows; phase 2 runs in this session's venv, which holds only
    evidently 0.7 and pandas. Pass ``-- --model-dir DIR --data-dir DIR`` to
    use another run than ``artifacts/``.
    """
    import sys

    project_python = os.environ.get("MLTEST_PYTHON", sys.executable)
    windows = os.path.join(session.create_tmp(), "drift-windows.json")
    session.run(
        project_python, "benchmarks/drift_evidently.py", "prepare", "--out", windows,
        *session.posargs,
        external=True, env=QUIET_ENV,
    )  # fmt: skip
    session.install("evidently>=0.7,<0.8", "pandas<3")  # evidently 0.7 imports pandas 2 internals
    session.run(
        "python", "benchmarks/drift_evidently.py", "evidently", "--windows", windows,
        env={**QUIET_ENV, "DO_NOT_TRACK": "1"},
    )  # fmt: skip
