"""With ``CI=true`` nothing skips: a skipped test or module is reported as a failure.

A test that may legitimately skip on a user's machine (no chromium, no C++ toolchain,
a missing optional import) must still run in CI, where scripts/test installs all it
needs; a skip there would let the run go green without it. Covers ``pytest.skip`` in a
test or fixture, ``skip``/``skipif`` marks (on a test or a module's ``pytestmark``) and
module-level ``importorskip`` / ``pytest.skip(allow_module_level=True)``. Expected
failures (xfail) are left alone.

Loaded by tests/conftest.py; usable alone with ``-p ci_noskip``.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true``, as CI services set)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _reason(longrepr: object) -> str:
    # a skip's longrepr is (path, line, "Skipped: reason")
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport) -> None:
    report.longrepr = f"skipped in CI (CI=true: nothing may skip): {_reason(report.longrepr)}"
    report.outcome = "failed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        _fail(report)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped:
        _fail(report)


def pytest_report_header(config: pytest.Config) -> str | None:
    return "CI=true: a skip is a failure" if in_ci() else None
