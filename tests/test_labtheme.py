"""The Lab theme of the graph view and the explorer page, without a browser: which theme
a user's Lab setting names (read as JupyterLab's settings API reads it, with its
comments, defaults and overrides) and the stylesheet links the pages carry. (The
colours in Chromium, light and dark: tests/test_lab_views.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tfaas_jupyter.server.explorerpage import explorer_page
from tfaas_jupyter.server.graphview import viewer_page
from tfaas_jupyter.server.labtheme import (
    MAPPING_STATIC,
    THEME_PACKAGES,
    LabTheme,
    theme_from_setting,
    theme_links,
    user_theme,
)

commands = pytest.importorskip("jupyterlab.commands")


def _lab(tmp_path: Path, user_setting: str | None, overrides: dict | None = None):
    """What the theme lookup reads of a LabApp: Lab's real schemas, settings of ours."""
    user_dir, app_dir = tmp_path / "user-settings", tmp_path / "settings"
    app_dir.mkdir(parents=True)
    if user_setting is not None:
        target = user_dir / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
        target.parent.mkdir(parents=True)
        target.write_text(user_setting)
    if overrides is not None:
        (app_dir / "overrides.json").write_text(json.dumps(overrides))
    return SimpleNamespace(app_settings_dir=str(app_dir),
                           schemas_dir=str(Path(commands.get_app_dir()) / "schemas"),
                           user_settings_dir=str(user_dir), labextensions_path=[],
                           themes_url="/lab/api/themes/")


def test_the_theme_of_the_users_setting(tmp_path: Path) -> None:
    assert user_theme(_lab(tmp_path / "none", None)) == LabTheme("JupyterLab Light")
    # a setting as Lab writes it, comments included
    dark = '{\n  // the theme\n  "theme": "JupyterLab Dark"\n}\n'
    assert user_theme(_lab(tmp_path / "dark", dark)) == LabTheme("JupyterLab Dark")
    # an administrator's default, the user's own value over it
    site = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark High Contrast"}}
    assert user_theme(_lab(tmp_path / "site", None, site)) == LabTheme(
        "JupyterLab Dark High Contrast")
    assert user_theme(_lab(tmp_path / "both", '{"theme": "JupyterLab Light"}', site)) == \
        LabTheme("JupyterLab Light")
    adaptive = '{"adaptive-theme": true, "preferred-dark-theme": "JupyterLab Dark High Contrast"}'
    assert user_theme(_lab(tmp_path / "adaptive", adaptive)) == LabTheme(
        "JupyterLab Light", "JupyterLab Dark High Contrast")
    assert user_theme(_lab(tmp_path / "broken", '{"theme": ')) == LabTheme("JupyterLab Light")


def test_unknown_themes_are_labs_default() -> None:
    assert theme_from_setting({"theme": "Somebody's Solarized"}) == LabTheme("JupyterLab Light")
    assert theme_from_setting({"adaptive-theme": True}) == LabTheme("JupyterLab Light",
                                                                     "JupyterLab Dark")


def test_the_links_are_labs_theme_then_our_mapping() -> None:
    links = theme_links("/user/alice/", "/lab/api/themes/", LabTheme("JupyterLab Dark"), "graph")
    hrefs = [line.split('href="')[1].split('"')[0] for line in links.splitlines()]
    assert hrefs == ["/user/alice/lab/api/themes/@jupyterlab/theme-dark-extension/index.css",
                     f"/user/alice/{MAPPING_STATIC}graph.css"]
    adaptive = theme_links("/", "lab/api/themes", LabTheme("JupyterLab Light",
                                                           "JupyterLab Dark"), "explorer")
    assert 'media="(prefers-color-scheme: light)" href="/lab/api/themes/' \
           f'{THEME_PACKAGES["JupyterLab Light"]}/index.css"' in adaptive
    assert 'media="not (prefers-color-scheme: light)"' in adaptive
    assert adaptive.rstrip().endswith(f'href="/{MAPPING_STATIC}explorer.css">')


def test_the_pages_carry_the_links_after_their_own_styles() -> None:
    links = theme_links("/", "/lab/api/themes/", LabTheme("JupyterLab Dark"), "graph")
    page = viewer_page("../models/m/versions/1/file", "model.keras", links)
    head = page.split("</head>")[0]
    assert head.endswith(links) and head.rindex("<style>") < head.index(links)
    page = explorer_page("/", "../openapi.json", "T", "n", links)
    assert page.index("swagger-ui.css") < page.index(links) < page.index("</head>")
    # Lab's theme-less servers: the pages as before
    assert "lab/api/themes" not in viewer_page() + explorer_page("/", "x", "T", "n")
