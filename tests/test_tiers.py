"""Each test's tier comes from what it uses (tests/tiers.py): a check on tests whose
tier is known, through pytest's own selection by marker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

FILES = ["tests/test_codecs.py", "tests/test_metrics.py", "tests/test_lab.py",
         "tests/test_hub.py", "tests/test_server.py", "tests/test_explorer_page.py",
         "tests/test_quiet_kernels.py"]


#: collects FILES in a fresh pytest and prints each test's tier markers as JSON
COLLECT = """
import json, sys, pytest
TIERS = {"unit", "server", "browser", "hub", "slow"}
class Report:
    def pytest_collection_finish(self, session):
        found = {item.name.split("[")[0]: sorted({m.name for m in item.iter_markers()} & TIERS)
                 for item in session.items}
        print("TIERS " + json.dumps(found))
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *sys.argv[1:]],
                     plugins=[Report()]))
"""


def tiers_of_tests() -> dict[str, set[str]]:
    listing = subprocess.run([sys.executable, "-c", COLLECT, *FILES], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    (line,) = [ln for ln in listing.stdout.splitlines() if ln.startswith("TIERS ")]
    return {name: set(marks) for name, marks in json.loads(line[6:]).items()}


@pytest.mark.timeout(600)
def test_tiers_follow_what_a_test_uses() -> None:
    tiers = tiers_of_tests()
    unit, server, slow, browser, hub = (
        {name for name, marks in tiers.items() if tier in marks}
        for tier in ("unit", "server", "slow", "browser", "hub"))
    assert all(tiers.values()), tiers  # every test has a tier
    # pure functions: unit
    assert "test_render_escapes_labels_and_keeps_histograms_cumulative" in unit
    # the in-process server (jp_fetch needs jp_serverapp), no model: server, not slow
    page = "test_the_page_on_the_whole_api_and_on_a_model"
    assert page in server and page not in slow
    # an uploaded model starts the server's TensorFlow worker: server and slow
    assert "test_metrics_endpoint" in server & slow
    # a child Python that imports TensorFlow (the code is a string the test runs)
    assert "test_real_tensorflow_imports_and_trains_without_a_line_on_stderr" in slow
    # a subprocess server, through a helper of the test's own module
    assert {"test_models_survive_a_restart_under_a_hub_base_url"} <= server & slow
    # a wheel and a venv
    assert "test_wheel_installs_and_enables_the_extension" in slow
    # Playwright in Chromium; the hub through the jupyterhub helper
    assert "test_the_panel_in_jupyter_lab" in browser & slow
    assert "test_a_real_jupyterhub" in hub & browser
    assert "test_public_server_url_from_the_hub_environment" in unit
    # every test in exactly one of unit / server, and unit ones nothing else
    assert not unit & (server | slow | browser | hub)
