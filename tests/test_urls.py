"""The one reading of server addresses and tokens (tfaas_jupyter.client.urls), and that
the client, the CLI and discovery all use it. No server needed."""

from __future__ import annotations

import pytest

from tfaas_jupyter.client import discovery
from tfaas_jupyter.client.api import TFaaSClient
from tfaas_jupyter.client.cli import build_parser
from tfaas_jupyter.client.urls import (
    TOKEN_ENV_VARS,
    ServerAddress,
    choose_token,
    parse_address,
    token_from_env,
)

H = "http://h:8888/"
ALICE = "https://hub.example.org/user/alice/"

# (what the user gives, the server root it means, the token it carries)
ADDRESSES = [
    # the server itself
    ("http://h:8888/", H, None),
    ("http://h:8888", H, None),
    ("h:8888", H, None),
    ("  http://h:8888/  ", H, None),
    ("http://h:8888/?token=T", H, "T"),
    ("http://h:8888/?token=", H, None),
    ("http://h:8888/base", "http://h:8888/base/", None),
    ("http://h:8888/a%40b/", "http://h:8888/a%40b/", None),
    ("HTTP://h:8888/lab", H, None),
    ("http://[::1]:8888/lab", "http://[::1]:8888/", None),
    ("https://h/", "https://h/", None),
    # the API
    ("http://h:8888/tfaas", H, None),
    ("http://h:8888/tfaas/", H, None),
    ("http://h:8888/tfaas/models", H, None),
    ("http://h:8888/a%40b/tfaas", "http://h:8888/a%40b/", None),
    ("http://h:8888/base/tfaas/json", "http://h:8888/base/", None),
    # pages copied from the browser: JupyterLab
    ("http://h:8888/lab", H, None),
    ("http://h:8888/lab/", H, None),
    ("http://h:8888/lab?token=T", H, "T"),
    ("http://h:8888/lab/tree/x.ipynb", H, None),
    ("http://h:8888/lab/tree/dir/x.ipynb?token=T", H, "T"),
    ("http://h:8888/lab/tree/tfaas/x.ipynb", H, None),
    ("http://h:8888/lab/workspaces/auto-b/tree/x.ipynb", H, None),
    ("http://h:8888/lab/tree/x.ipynb?token=T&reset#cell", H, "T"),
    ("http://h:8888/doc/tree/x.ipynb", H, None),
    ("http://h:8888/base/lab/tree/x.ipynb", "http://h:8888/base/", None),
    # Notebook 7 and the classic Notebook
    ("http://h:8888/tree", H, None),
    ("http://h:8888/tree/dir?token=T", H, "T"),
    ("http://h:8888/notebooks/x.ipynb", H, None),
    ("http://h:8888/notebooks/dir/x.ipynb?token=T", H, "T"),
    ("http://h:8888/edit/x.py", H, None),
    ("http://h:8888/consoles/1", H, None),
    ("http://h:8888/terminals/1", H, None),
    # jupyter_server's own routes
    ("http://h:8888/api/status", H, None),
    ("http://h:8888/files/x.csv", H, None),
    ("http://h:8888/view/x.html", H, None),
    ("http://h:8888/voila/render/x.ipynb", H, None),
    # JupyterHub
    ("https://hub.example.org/user/alice", ALICE, None),
    ("https://hub.example.org/user/alice/", ALICE, None),
    ("https://hub.example.org/user/alice/lab", ALICE, None),
    ("https://hub.example.org/user/alice/lab/tree/x.ipynb?token=T", ALICE, "T"),
    ("https://hub.example.org/user/alice/doc/tree/x.ipynb", ALICE, None),
    ("https://hub.example.org/user/alice/tree/x", ALICE, None),
    ("https://hub.example.org/user/alice/notebooks/x.ipynb", ALICE, None),
    ("https://hub.example.org/user/alice/edit/x.py", ALICE, None),
    ("https://hub.example.org/user/alice/tfaas/", ALICE, None),
    ("https://hub.example.org/user/alice/tfaas/models", ALICE, None),
    ("https://hub.example.org/hub/user/alice", ALICE, None),
    ("https://hub.example.org/hub/user/alice/lab/tree/x.ipynb?token=T", ALICE, "T"),
    # a user called like a page keeps the name; a named server keeps its name
    ("https://hub.example.org/user/lab/lab/tree/x.ipynb", "https://hub.example.org/user/lab/",
     None),
    ("https://hub.example.org/user/tfaas/tfaas/", "https://hub.example.org/user/tfaas/", None),
    ("https://hub.example.org/user/alice/gpu/lab", "https://hub.example.org/user/alice/gpu/",
     None),
]


@pytest.mark.parametrize(("given", "root", "token"), ADDRESSES)
def test_parse_address(given: str, root: str, token: str | None) -> None:
    address = parse_address(given)
    assert (address.root, address.url_token) == (root, token)
    assert address.tfaas_url == root + "tfaas/"
    # The answer reads back as itself, as does its tfaas/ URL.
    assert parse_address(address.root).root == root
    assert parse_address(address.tfaas_url).root == root


@pytest.mark.parametrize(("given", "root", "token"), ADDRESSES)
def test_client_cli_and_discovery_agree(given: str, root: str, token: str | None,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    client = TFaaSClient(given)
    assert (client.url, client.token) == (root + "tfaas/", token)
    server = discovery.parse_server_url(given, env={})
    assert (server.url, server.token, server.tfaas_url) == (root, token, root + "tfaas/")
    args = build_parser().parse_args([f"--url={given}", "--models"])
    assert TFaaSClient(args.url, token=args.token).url == root + "tfaas/"


@pytest.mark.parametrize("given", [
    "ftp://h/tfaas", "file:///tmp/x", "http:///lab", "", "   ",
    "https://hub.example.org/hub/home", "https://hub.example.org/hub/user-redirect/lab",
    "https://hub.example.org/hub/user",
])
def test_not_a_server_address(given: str) -> None:
    with pytest.raises(ValueError):
        parse_address(given)
    with pytest.raises(discovery.DiscoveryError):
        discovery.parse_server_url(given, env={})


def test_hub_page_error_says_what_to_give() -> None:
    with pytest.raises(ValueError, match="JupyterHub page.*user/NAME"):
        parse_address("https://hub.example.org/hub/home")


EVERY_ENV = {"TFAAS_TOKEN": "tf", "JUPYTER_TOKEN": "jt", "JPY_API_TOKEN": "jpy",
             "JUPYTERHUB_API_TOKEN": "hub"}


@pytest.mark.parametrize(("explicit", "url", "env", "want"), [
    ("x", "http://h/?token=u", EVERY_ENV, "x"),
    (None, "http://h/?token=u", EVERY_ENV, "u"),
    (None, "http://h/", EVERY_ENV, "tf"),
    (None, "http://127.0.0.1/", {**EVERY_ENV, "TFAAS_TOKEN": ""}, "jt"),
    (None, "http://localhost/", {"JPY_API_TOKEN": "jpy", "JUPYTERHUB_API_TOKEN": "hub"},
     "jpy"),
    (None, "http://127.0.0.1/", {"JUPYTERHUB_API_TOKEN": "hub"}, "hub"),
    (None, "http://[::1]/", {"JUPYTER_TOKEN": "jt", "JUPYTERHUB_API_TOKEN": "hub"}, "jt"),
    (None, "http://h/", {}, None),
    # the account's tokens go only to loopback or the hub's own host; TFAAS_TOKEN anywhere
    (None, "http://h/", {**EVERY_ENV, "TFAAS_TOKEN": ""}, None),
    (None, "http://hub.example.org/user/a/",
     {"JUPYTERHUB_API_TOKEN": "hub", "JUPYTERHUB_API_URL": "http://hub.example.org/hub/api"},
     "hub"),
    ("", "http://h/?token=u", EVERY_ENV, None),  # "" sends none
])
def test_token_order(explicit: str | None, url: str, env: dict[str, str],
                     want: str | None) -> None:
    assert choose_token(explicit, parse_address(url), env) == want
    assert discovery.parse_server_url(url, explicit, env).token == want


def test_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TOKEN_ENV_VARS == ("TFAAS_TOKEN", "JUPYTER_TOKEN", "JPY_API_TOKEN",
                              "JUPYTERHUB_API_TOKEN")
    assert token_from_env(EVERY_ENV) == "tf"
    assert token_from_env({}) is None
    for name in TOKEN_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JPY_API_TOKEN", "from-env")
    assert token_from_env() == "from-env"
    assert TFaaSClient("http://127.0.0.1:1/").token == "from-env"
    assert TFaaSClient("http://h:1/").token is None  # not this machine, not the hub
    assert TFaaSClient("http://h:1/?token=u").token == "u"
    assert TFaaSClient("http://127.0.0.1:1/", token="").token is None


def test_server_address() -> None:
    address = ServerAddress("http://h:1/user/x/")
    assert (address.base_url, address.tfaas_url) == ("/user/x/", "http://h:1/user/x/tfaas/")
