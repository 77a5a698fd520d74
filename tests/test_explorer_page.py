"""The API explorer page (``tfaas/explorer/``) that the tfaas/ page and the notebook
widget link to: Swagger UI from the labextension's copy, on a description of this
server, with one inline script allowed by its nonce. (Its "Try it out" in a browser:
tests/test_lab_views.py.)"""

from __future__ import annotations

import json
import re

import pytest
from tornado.httpclient import HTTPClientError

from tfaas_jupyter.client.urls import explorer_path
from tfaas_jupyter.client.widgets import model_page_link_html
from tfaas_jupyter.server.explorerpage import SWAGGER_STATIC, explorer_page


def test_the_links_are_paths_under_the_base_url() -> None:
    assert explorer_path("/user/alice/", "vk") == "/user/alice/tfaas/explorer/?model=vk"
    assert explorer_path("http://h:8888/", "a b", 3) == "/tfaas/explorer/?model=a+b&version=3"
    link = model_page_link_html("openapi", "https://hub.example/user/bo/tfaas/", "vk")
    assert 'data-tfaas="openapi"' in link and 'href="/user/bo/tfaas/explorer/?model=vk"' in link


def test_the_page_names_its_description_as_a_string_of_its_script() -> None:
    page = explorer_page("/user/alice/", "../models/x</script>/openapi.json", "T <b>", "n0")
    assert f'href="/user/alice/{SWAGGER_STATIC}swagger-ui.css"' in page
    assert f'src="/user/alice/{SWAGGER_STATIC}swagger-ui-bundle.js"' in page
    assert '"../models/x<\\/script>/openapi.json"' in page and "x</script>" not in page
    assert "<title>T &lt;b&gt;</title>" in page and '<script nonce="n0">' in page


async def test_the_page_on_the_whole_api_and_on_a_model(jp_fetch) -> None:
    reply = await jp_fetch("tfaas", "explorer/")
    page = reply.body.decode()
    assert reply.headers["Content-Type"].startswith("text/html")
    nonce = re.search(r"'nonce-([^']+)'", reply.headers["Content-Security-Policy"])[1]
    assert f'<script nonce="{nonce}">' in page and '"../openapi.json"' in page
    assert "connect-src 'self'" in reply.headers["Content-Security-Policy"]
    again = await jp_fetch("tfaas", "explorer/")
    assert nonce not in again.headers["Content-Security-Policy"]  # one per response
    for query, status, says in (({"model": "nothing-here"}, 404, "nothing-here"),
                                ({"model": "-bad"}, 400, "invalid model name")):
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("tfaas", "explorer/", params=query)
        assert caught.value.code == status
        assert says in json.loads(caught.value.response.body)["error"]
