"""The API explorer page for a browser outside JupyterLab's panel: the ``tfaas/`` page's
and the notebook widget's "OpenAPI" links.

It is Swagger UI from the files the labextension ships (the build copies
``swagger-ui-dist``'s bundle and style to its ``static/swagger/``, which JupyterLab
serves under ``{base_url}lab/extensions/``), so there is one Swagger UI, the one Lab's
explorer tab loads too. The page's own script only starts it on a description of this
server and adds Jupyter's XSRF header to "Try it out" requests to this server (the
login cookie authenticates them; Jupyter asks for the header on a POST).
"""

from __future__ import annotations

import json
from html import escape

#: Where JupyterLab serves the labextension's copy of Swagger UI, under the base URL.
SWAGGER_STATIC = "lab/extensions/tfaas-jupyter/static/swagger/"


def content_security_policy(nonce: str) -> str:
    """What the page may load and reach: this server, and its one inline script."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
        "form-action 'none'; frame-ancestors 'self'"
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{static}swagger-ui.css">
{theme_links}</head><body class="jp-tfaas-explorer-page">
<div id="tfaas-explorer" class="jp-tfaas-explorer" data-tfaas="explorer"></div>
<script src="{static}swagger-ui-bundle.js"></script>
<script nonce="{nonce}">
(function () {{
  var description = {description};
  var xsrf = document.cookie.split("; ").filter(function (c) {{
    return c.indexOf("_xsrf=") === 0;
  }}).map(function (c) {{ return decodeURIComponent(c.slice(6)); }})[0];
  SwaggerUIBundle({{
    url: description,
    dom_id: "#tfaas-explorer",
    deepLinking: false,
    validatorUrl: null,
    requestInterceptor: function (request) {{
      var target = new URL(request.url, window.location.href);
      if (target.origin === window.location.origin && xsrf) {{
        request.headers["X-XSRFToken"] = xsrf;
      }}
      return request;
    }}
  }});
}})();
</script>
</body></html>
"""


def explorer_page(base_url: str, description_url: str, title: str, nonce: str,
                  theme_links: str = "") -> str:
    """The page showing ``description_url`` (relative to the page, or a path), in the
    Lab theme of ``theme_links`` (see :mod:`.labtheme`)."""
    return _PAGE.format(
        title=escape(title),
        static=escape(base_url.rstrip("/") + "/" + SWAGGER_STATIC),
        # a JSON string in a script: "</" cannot close the script element
        description=json.dumps(description_url).replace("</", "<\\/"),
        nonce=escape(nonce),
        theme_links=theme_links,
    )
