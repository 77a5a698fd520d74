"""Sphinx configuration: MyST Markdown pages with the PyData theme, as the Jupyter
projects build their documentation. ``scripts/test`` builds the site with warnings as
errors (tests/test_docs.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "tfaas-jupyter"
author = "tfaas-jupyter developers"
copyright = "tfaas-jupyter developers"
release = json.loads((DOCS.parent / "labextension" / "package.json").read_text())["version"]

extensions = ["myst_parser", "tfaas_reference"]
source_suffix = {".md": "markdown"}
# the help of the settings and the API is shown as the code writes it
smartquotes = False
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
# anchors for the headings, so pages can link to a section (page.md#a-heading)
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

html_theme = "pydata_sphinx_theme"
html_title = "tfaas-jupyter"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
# no network while building: the theme's and MyST's external look-ups stay off
html_theme_options["icon_links"] = []
