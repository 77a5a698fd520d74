"""The documentation site builds with warnings as errors (broken links between pages or
to a heading included), its references come from the code, and the README stays a
short front page."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from tfaas_jupyter.server.app import TFaaSApp
from tfaas_jupyter.server.openapi import load_spec

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(out)],
        capture_output=True, text=True, timeout=500,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    return out


def text_of(page: Path) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_the_configuration_reference_lists_every_setting(site: Path) -> None:
    text = text_of(site / "operators" / "configuration.html")
    traits = TFaaSApp.class_own_traits(config=True)
    assert len(traits) > 20
    for name, trait in traits.items():
        assert f"c.TFaaSApp.{name}" in text, name
        help_start = " ".join(trait.help.split())[:60]
        assert help_start in " ".join(text.split()), name


def test_the_api_reference_is_the_servers_openapi(site: Path) -> None:
    text = text_of(site / "api" / "reference.html")
    spec = load_spec()
    for path, item in spec["paths"].items():
        for method in ("get", "post", "put", "delete"):
            if method in item:
                assert f"{method.upper()} {{base_url}}tfaas{path}" in text, (method, path)


def test_every_page_is_in_the_site(site: Path) -> None:
    pages = {p.relative_to(ROOT / "docs").with_suffix("") for p in (ROOT / "docs").rglob("*.md")
             if "_build" not in p.parts}
    built = {p.relative_to(site).with_suffix("") for p in site.rglob("*.html")}
    assert pages <= built, pages - built
    # the curl recipes are on the clients' page (tests/test_curl_recipes.py runs them)
    assert "curl recipes" in text_of(site / "clients" / "curl.html")


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    for target in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / target).exists(), target
