"""GET {base_url}tfaas/: a small page listing the models and how to call them."""

from __future__ import annotations

import math

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.escape import xhtml_escape

from tfaas_jupyter import __version__
from tfaas_jupyter.hub import public_server_url

from .base import AUTH_RESOURCE

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TFaaS in Jupyter</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .6em; }}
code, pre {{ background: #f4f4f4; padding: .1em .3em; }} pre {{ padding: .6em; overflow-x: auto; }}
</style></head><body>
<h1>TensorFlow as a Service</h1>
<p>tfaas-jupyter {version}, serving from <code>{model_dir}</code>.</p>
<h2>Models</h2>
{models}
<h2>How to call</h2>
<p>Every endpoint needs your Jupyter token (header <code>Authorization: token ...</code>).</p>
<pre>curl -H "Authorization: token $JUPYTER_TOKEN" {url}models
curl -H "Authorization: token $JUPYTER_TOKEN" -X POST {url}upload \\
     -F name={model} -F params=@params.json -F model=@model.pb -F labels=@labels.txt
curl -H "Authorization: token $JUPYTER_TOKEN" -X POST {url}json \\
     -d '{{"values": {values}, "model": "{model}"}}'
curl -H "Authorization: token $JUPYTER_TOKEN" {url}image -F image=@file.png -F model={model}
curl -H "Authorization: token $JUPYTER_TOKEN" -X DELETE {url}delete/{model}</pre>
<p>Endpoints: json, proto, image, upload, delete, models, params, status, metrics;
the full description: <a href="{url}openapi.json">openapi.json</a>.</p>
</body></html>
"""


class IndexHandler(ExtensionHandlerMixin, JupyterHandler):
    """The human page; a browser without a login is sent to Jupyter's login page."""

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
        docs = service.models()
        for doc in docs:
            inputs = doc.get("inputs") or []
            shapes = ", ".join(str(i.get("shape")) for i in inputs) or "?"
            rows.append(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                    *(
                        xhtml_escape(str(v))
                        for v in (
                            doc["name"], doc.get("version"), doc.get("format"), shapes,
                            doc.get("description") or "",
                        )
                    )
                )
            )
        models = (
            "<table><tr><th>name</th><th>version</th><th>format</th><th>input shape</th>"
            "<th>description</th></tr>" + "".join(rows) + "</table>"
            if rows
            else "<p>No models yet: upload one (see below).</p>"
        )
        # the examples name a real model and send as many values as it takes
        example, values = "MyModel", "[1.0, 2.0]"
        if docs:
            example = docs[0]["name"]
            inputs = docs[0].get("inputs") or []
            dims = (inputs[0].get("shape") or [None])[1:] if len(inputs) == 1 else [None]
            if all(isinstance(d, int) and d > 0 for d in dims):
                width = max(1, math.prod(dims))
                values = "[" + ", ".join(["0.0"] * min(width, 8)) + (", ...]" if width > 8 else "]")
        self.finish(
            _PAGE.format(
                version=xhtml_escape(__version__),
                model_dir=xhtml_escape(str(service.repository.root)),
                models=models,
                url=xhtml_escape(url),
                model=xhtml_escape(example),
                values=xhtml_escape(values),
            )
        )
