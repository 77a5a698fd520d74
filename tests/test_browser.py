"""The page at {base_url}tfaas/ in a real browser (headless Chromium): a user logged in
with the token sees the models; a browser without a login is sent to Jupyter's login."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import seed_upload_body
from servers import jupyter_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/test installs it)"
)


def render(url: str, profile: Path, *, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` after it loaded, in a fresh headless Chromium profile."""
    args = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--window-size=1000,700",
    ]
    if screenshot is not None:
        subprocess.run([*args, f"--screenshot={screenshot}", url], capture_output=True,
                       timeout=120, check=True)
    out = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout


def test_the_page_in_a_browser(tmp_path: Path, seed_dir: Path) -> None:
    with jupyter_server(tmp_path / "srv", base_url="/user/alice/") as srv:
        body, ctype = seed_upload_body(seed_dir)
        assert srv.request("POST", "tfaas/upload", body, {"Content-Type": ctype})[0] == 200
        page = f"{srv.tfaas}?token={srv.token}"
        dom = render(page, tmp_path / "with-token", screenshot=tmp_path / "page.png")
        assert "<title>TFaaS in Jupyter</title>" in dom
        assert "<td>vk</td>" in dom and "vk test model" in dom and "graphdef" in dom
        # the examples are for this server and this model, and work as shown
        assert f"{srv.tfaas}json" in dom and '"model":"vk"' in dom.replace("&quot;", '"')
        assert (tmp_path / "page.png").stat().st_size > 1000
        # no login: Jupyter's login page, nothing of the models
        dom = render(srv.tfaas, tmp_path / "no-login")
        assert "vk test model" not in dom and "<td>vk</td>" not in dom
        assert "login" in dom.lower() and "token" in dom.lower()
