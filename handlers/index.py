"""GET {base_url}tfaas/: a small page listing the models and, for each, the calls that fit it."""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.escape import xhtml_escape

from tfaas_jupyter import __version__
from tfaas_jupyter.examplerow import example_request
from tfaas_jupyter.hub import public_server_url

from .base import AUTH_RESOURCE, LoginOnlyPageMixin, MethodsMixin

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TFaaS in Jupyter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; }}
code, pre {{ background: #f4f4f4; padding: .1em .3em; }} pre {{ padding: .6em; overflow-x: auto; }}
</style></head><body>
<h1>TensorFlow as a Service</h1>
<p>tfaas-jupyter {version}, serving from <code>{model_dir}</code>;
model worker: {worker}. Back to <a href="{lab}">JupyterLab</a>.</p>
<h2>Models</h2>
{models}
<h2>How to call</h2>
<p>Every endpoint needs your Jupyter token (header <code>Authorization: token ...</code>).</p>
{calls}
<pre>curl -H "Authorization: token $JUPYTER_TOKEN" {url}models
curl -H "Authorization: token $JUPYTER_TOKEN" {url}status</pre>
<p>Endpoints: json, proto, image, upload, delete, models, params, status, metrics;
the full description: <a href="{url}openapi.json">openapi.json</a>, and to try it:
<a data-tfaas="openapi" href="{explorer}">the API explorer</a>.</p>
</body></html>
"""

_AUTH = 'curl -H "Authorization: token $JUPYTER_TOKEN"'

#: The model files an upload of each format sends, as the form's parts.
_UPLOAD_PARTS = {
    "graphdef": "-F params=@params.json -F model=@model.pb",
    "savedmodel": "-F model=@saved_model.tar.gz",
    "keras": "-F model=@model.keras",
}


def takes_images(doc: dict[str, Any]) -> bool:
    """Whether /image fits the model: image params (the original's img_*), or one input
    shaped [batch, height, width, 1 or 3 channels]."""
    if any(key in doc for key in ("img_width", "img_height", "img_channels", "imgChannels")):
        return True
    inputs = doc.get("inputs") or []
    if len(inputs) != 1:
        return False
    shape = list(inputs[0].get("shape") or [])
    return len(shape) == 4 and shape[3] in (1, 3)


def model_calls(doc: dict[str, Any], url: str) -> list[str]:
    """The curl lines that fit one model: predict (JSON; an image for image models),
    upload a new version in its format, delete."""
    name = doc["name"]
    # a real row of the model's width, so the line works pasted into a shell
    body = json.dumps(example_request(name, doc), separators=(",", ":"))
    lines = [f"{_AUTH} -X POST {url}json \\\n     -d {shlex.quote(body)}"]
    if takes_images(doc):
        lines.append(f"{_AUTH} {url}image -F image=@file.png -F model={name}")
    parts = _UPLOAD_PARTS.get(str(doc.get("format")), "-F model=@MODEL_FILE")
    if doc.get("label_names"):
        parts += " -F labels=@labels.txt"
    lines.append(f"{_AUTH} -X POST {url}upload \\\n     -F name={name} {parts}")
    lines.append(f"{_AUTH} -X DELETE {url}delete/{name}")
    return lines


class IndexHandler(LoginOnlyPageMixin, MethodsMixin, ExtensionHandlerMixin, JupyterHandler):
    """The human page; a browser without a login is sent to Jupyter's login page, a
    TFaaS key refused (403)."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        service = self.settings["tfaas_service"]
        # under a hub, the address its proxy answers on (the request's may be internal)
        public = public_server_url()
        local = f"{self.request.protocol}://{self.request.host}{self.base_url}"
        url = url_path_join(public or local, "tfaas/")
        rows = []
        calls = []
        docs = self.settings["tfaas_catalogue"].models()  # a Jupyter login: every model
        for doc in docs:
            inputs = doc.get("inputs") or []
            shapes = ", ".join(str(i.get("shape")) for i in inputs) or "?"
            described = xhtml_escape(f"{url}models/{doc['name']}/openapi.json")
            query = "?" + urlencode({"model": doc["name"]})
            graph = xhtml_escape(url_path_join(self.base_url, "tfaas", "graph/") + query)
            explorer = xhtml_escape(url_path_join(self.base_url, "tfaas", "explorer/") + query)
            rows.append(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>".format(
                    *(
                        xhtml_escape(str(v))
                        for v in (
                            doc["name"], doc.get("version"), doc.get("format"), shapes,
                            doc.get("description") or "",
                        )
                    )
                )
                + f'<td><a href="{described}">openapi.json</a> '
                f'<a data-tfaas="openapi" href="{explorer}">explorer</a> '
                f'<a data-tfaas="graph" href="{graph}">graph</a></td></tr>'
            )
            calls.append(f"<h3>{xhtml_escape(doc['name'])}</h3>\n<pre>"
                         + "\n".join(xhtml_escape(line) for line in model_calls(doc, url))
                         + "</pre>")
        models = (
            "<table><tr><th>name</th><th>version</th><th>format</th><th>input shape</th>"
            "<th>description</th><th>API</th></tr>" + "".join(rows) + "</table>"
            if rows
            else "<p>No models yet: upload one.</p>"
        )
        if not calls:
            calls.append(
                "<pre>" + xhtml_escape(
                    f"{_AUTH} -X POST {url}upload \\\n     -F name=MyModel "
                    f"{_UPLOAD_PARTS['graphdef']} -F labels=@labels.txt") + "</pre>"
            )
        self.finish(
            _PAGE.format(
                version=xhtml_escape(__version__),
                model_dir=xhtml_escape(str(service.repository.root)),
                worker=xhtml_escape(service.worker.summary()),
                models=models,
                calls="\n".join(calls),
                url=xhtml_escape(url),
                lab=xhtml_escape(url_path_join(self.base_url, "lab")),
                explorer=xhtml_escape(url_path_join(self.base_url, "tfaas", "explorer/")),
            )
        )
