"""The JupyterLab theme of the pages served outside Lab's own DOM: the graph view
(Netron's page, framed by Lab) and the API explorer page (``tfaas/explorer/``).

Each such page loads the user's current Lab theme stylesheet, as Lab itself serves it
(``{base_url}lab/api/themes/PACKAGE/index.css``, which defines the ``--jp-*``
variables), and then a small stylesheet of ours that maps the page's own colours to
those variables (the labextension ships it under ``static/theme/``). The theme is the
one named by the page's ``theme`` query (Lab's tab passes its current theme), else the
user's Lab setting (``@jupyterlab/apputils-extension:themes``): its theme, or with
"Adaptive Theme" on, its preferred light and dark themes by the browser's colour scheme.
Without JupyterLab (a plain Jupyter server) the pages keep their own colours.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

#: JupyterLab's own themes, by the name Lab registers them under, and their packages.
THEME_PACKAGES = {
    "JupyterLab Light": "@jupyterlab/theme-light-extension",
    "JupyterLab Dark": "@jupyterlab/theme-dark-extension",
    "JupyterLab Dark High Contrast": "@jupyterlab/theme-dark-high-contrast-extension",
}
#: Lab's default theme (its setting's default).
DEFAULT_THEME = "JupyterLab Light"
#: The schema of Lab's theme setting.
THEME_SETTING = "@jupyterlab/apputils-extension:themes"
#: Where JupyterLab serves the labextension's stylesheets mapping a page to ``--jp-*``.
MAPPING_STATIC = "lab/extensions/tfaas-jupyter/static/theme/"


@dataclass(frozen=True)
class LabTheme:
    """The theme a page shows: one theme, or (adaptive) a light and a dark one."""

    light: str
    dark: str | None = None  # set when the browser's colour scheme chooses

    def stylesheets(self) -> list[tuple[str, str | None]]:
        """Each theme's package and the media query it applies under (None: always)."""
        if self.dark is None:
            return [(THEME_PACKAGES[self.light], None)]
        return [(THEME_PACKAGES[self.light], "(prefers-color-scheme: light)"),
                (THEME_PACKAGES[self.dark], "not (prefers-color-scheme: light)")]


def known(name: str | None) -> str | None:
    """``name`` if it names one of :data:`THEME_PACKAGES`."""
    return name if name in THEME_PACKAGES else None


def theme_from_setting(values: dict[str, Any]) -> LabTheme:
    """The theme that Lab's theme setting ``values`` shows (unknown themes: Lab's default)."""
    if values.get("adaptive-theme"):
        return LabTheme(known(values.get("preferred-light-theme")) or DEFAULT_THEME,
                        known(values.get("preferred-dark-theme")) or "JupyterLab Dark")
    return LabTheme(known(values.get("theme")) or DEFAULT_THEME)


def lab_app(serverapp: Any) -> Any | None:
    """The server's JupyterLab application (where its settings are), if it runs one."""
    manager = getattr(serverapp, "extension_manager", None)
    if manager is None:
        return None
    for apps in manager.extension_apps.values():
        for app in apps:
            if getattr(app, "user_settings_dir", None) and getattr(app, "themes_url", None):
                return app
    return None


def user_theme(app: Any) -> LabTheme:
    """The theme of the user's Lab setting (its schema's defaults, the overrides, the
    user's own values), as JupyterLab's settings API reads it."""
    from jupyterlab_server.settings_utils import get_settings  # present where Lab runs
    from tornado.web import HTTPError

    try:
        found, _ = get_settings(app.app_settings_dir, app.schemas_dir, app.user_settings_dir,
                                schema_name=THEME_SETTING,
                                labextensions_path=list(app.labextensions_path))
    except (HTTPError, OSError, ValueError):  # a broken setting file: as Lab, the default
        return LabTheme(DEFAULT_THEME)
    values = {key: spec.get("default") for key, spec in
              found.get("schema", {}).get("properties", {}).items()}
    values.update(found.get("settings") or {})
    return theme_from_setting(values)


def theme_links(base_url: str, themes_url: str, theme: LabTheme, page: str) -> str:
    """The ``<link>`` elements of ``theme``'s stylesheets and of our mapping for
    ``page`` (``graph`` or ``explorer``), as paths under ``base_url``."""
    base = base_url.rstrip("/") + "/"
    themes = base + themes_url.strip("/") + "/"
    links = []
    for package, media in theme.stylesheets():
        media_attr = f' media="{escape(media)}"' if media else ""
        links.append(f'<link rel="stylesheet" data-tfaas="lab-theme"{media_attr} '
                     f'href="{escape(themes + package)}/index.css">')
    links.append(f'<link rel="stylesheet" href="{escape(base + MAPPING_STATIC + page)}.css">')
    return "\n".join(links) + "\n"

