"""tests/ci_noskip.py: with CI=true every kind of skip fails the run; without, it skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPPING = {
    "test_runtime.py": "import pytest\n\ndef test_skips():\n    pytest.skip('no tool')\n",
    "test_fixture.py": (
        "import pytest\n\n@pytest.fixture\ndef tool():\n    pytest.skip('no tool')\n\n"
        "def test_uses(tool):\n    pass\n"
    ),
    "test_mark.py": (
        "import pytest\n\n@pytest.mark.skipif(True, reason='no tool')\ndef test_marked():\n"
        "    pass\n\n@pytest.mark.skip(reason='later')\ndef test_skip_mark():\n    pass\n"
    ),
    "test_module_mark.py": (
        "import pytest\n\npytestmark = pytest.mark.skipif(True, reason='no tool')\n\n"
        "def test_in_module():\n    pass\n"
    ),
    "test_importorskip.py": (
        "import pytest\n\npytest.importorskip('no_such_module_tfaas')\n\n"
        "def test_never():\n    pass\n"
    ),
    "test_module_skip.py": (
        "import pytest\n\npytest.skip('not here', allow_module_level=True)\n\n"
        "def test_never():\n    pass\n"
    ),
}
PASSING = {
    "test_fine.py": (
        "import pytest\n\ndef test_ok():\n    pass\n\n"
        "@pytest.mark.xfail(reason='known', strict=True)\ndef test_xfail():\n"
        "    assert False\n"
    ),
}


def run_pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # only ci_noskip: quick and isolated
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci_noskip", "-p", "no:cacheprovider",
         "-rfEs", "--continue-on-collection-errors", "-W", "ignore::DeprecationWarning",
         "--rootdir", str(folder), "-c", str(folder / "pytest.ini"), str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name, text in {**SKIPPING, **PASSING}.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_without_ci_skips_are_skips(project: Path) -> None:
    result = run_pytest(project, None)
    assert result.returncode == 0, result.stdout + result.stderr
    # 5 skipped tests, 2 skipped modules, 1 passed, 1 xfailed
    assert "1 passed, 7 skipped, 1 xfailed" in result.stdout, result.stdout
    assert "skipped in CI" not in result.stdout


def test_with_ci_every_skip_fails(project: Path) -> None:
    result = run_pytest(project, "true")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "CI=true: a skip is a failure" in out
    # a skip in the test fails it; a skip in setup (marks, fixtures) or collection (a
    # module's importorskip) is an error
    assert "1 failed, 1 passed, 1 xfailed, 6 errors" in out, out
    assert "FAILED test_runtime.py::test_skips" in out, out
    for test in ("test_fixture.py::test_uses", "test_mark.py::test_marked",
                 "test_mark.py::test_skip_mark", "test_module_mark.py::test_in_module",
                 "test_importorskip.py", "test_module_skip.py"):
        assert f"ERROR {test} - skipped in CI" in out, (test, out)
    # (a skipping module stops a plain run at collection: pytest exits with 2)
    assert run_pytest_plain_exit(project) == 2


def run_pytest_plain_exit(folder: Path) -> int:
    env = {**os.environ, "CI": "true", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "ci_noskip", "-p", "no:cacheprovider", "-q",
         "-c", str(folder / "pytest.ini"), str(folder)],
        cwd=folder, env=env, capture_output=True, timeout=120,
    ).returncode


def test_ci_false_is_not_ci(project: Path) -> None:
    assert run_pytest(project, "false").returncode == 0
