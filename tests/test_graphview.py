"""The graph view's server side without a server: Netron's page as served, the model
file of each format, the contents paths an upload from the file browser may read, and
the ``%tfaas graph`` IFrame's address."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from tfaas_jupyter.client.urls import graph_path
from tfaas_jupyter.server import graphview
from tfaas_jupyter.server.contents_upload import contents_form, contents_path
from tfaas_jupyter.server.errors import BadRequest, NotFound, PayloadTooLarge
from tfaas_jupyter.server.repository import ModelVersion


def test_the_page_has_no_date_or_version_and_names_the_model() -> None:
    original = (graphview.viewer_dir() / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<meta name="date" content="\d{4}-', original)  # what is taken out
    page = graphview.viewer_page("../models/m/versions/2/file", "model.keras")
    assert 'name="date"' not in page and 'name="version"' not in page
    assert '<meta name="file" content="../models/m/versions/2/file">' in page
    assert '<meta name="identifier" content="model.keras">' in page
    # the rest of the page is Netron's own
    assert page.count("<script") == original.count("<script")
    assert graphview.viewer_page() .count('name="file"') == 0
    hostile = graphview.viewer_page('/x"><script>alert(1)</script>', "a.pb")
    assert "<script>alert" not in hostile


def test_viewer_files_are_plain_names_of_the_package() -> None:
    path, kind = graphview.viewer_asset("index.js")
    assert path.parent == graphview.viewer_dir() and kind.startswith("text/javascript")
    for bad in ("../__init__.py", "index.html", ".hidden", "nothing-here.js", "a/b.js"):
        with pytest.raises(NotFound):
            graphview.viewer_asset(bad)


def _version(tmp_path: Path, fmt: str, model: str) -> ModelVersion:
    return ModelVersion("m", 1, tmp_path, {"format": fmt, "model": model, "uid": "u"}, {})


def test_the_model_file_of_each_format(tmp_path: Path) -> None:
    cases = {("savedmodel", "."): (tmp_path / "saved_model.pb", "saved_model.pb"),
             ("savedmodel", "saved_model"): (tmp_path / "saved_model" / "saved_model.pb",
                                             "saved_model.pb"),
             ("keras", "model.keras"): (tmp_path / "model.keras", "model.keras"),
             ("graphdef", "model.pb"): (tmp_path / "model.pb", "model.pb"),
             ("onnx", "model.onnx"): (tmp_path / "model.onnx", "model.onnx")}
    for (fmt, model), expected in cases.items():
        found = graphview.model_file(_version(tmp_path, fmt, model))
        assert (found[0].resolve(), found[1]) == (expected[0].resolve(), expected[1])


def test_contents_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "m.keras").write_bytes(b"PK")
    (root / ".secret.keras").write_bytes(b"PK")
    (tmp_path / "out.keras").write_bytes(b"PK")
    (root / "link.keras").symlink_to(tmp_path / "out.keras")
    assert contents_path(root, "/sub/m.keras", allow_hidden=False) == root / "sub" / "m.keras"
    for path, error in (("../out.keras", BadRequest), ("sub/../../out.keras", BadRequest),
                        ("link.keras", NotFound), (".secret.keras", NotFound),
                        ("nothing.keras", NotFound), ("", BadRequest)):
        with pytest.raises(error):
            contents_path(root, path, allow_hidden=False)
    assert contents_path(root, ".secret.keras", allow_hidden=True).name == ".secret.keras"


def test_a_savedmodel_folder_goes_as_a_tar_of_its_regular_files(tmp_path: Path) -> None:
    folder = tmp_path / "exported"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"\x08\x01")
    (folder / "variables" / "variables.index").write_bytes(b"ix")
    (folder / "escape").symlink_to("/etc/passwd")
    staging = tmp_path / "staging"
    staging.mkdir()
    form = contents_form(folder, "m", staging, max_size=1 << 20)
    part = form.files["model"]
    assert form.text("name") == "m" and part.filename == "exported.tar"
    with tarfile.open(part.path) as tar:
        assert sorted(tar.getnames()) == ["exported", "exported/saved_model.pb",
                                          "exported/variables",
                                          "exported/variables/variables.index"]
    with pytest.raises(PayloadTooLarge):
        contents_form(folder, "m", staging, max_size=3)
    (tmp_path / "plain").mkdir()
    with pytest.raises(BadRequest):
        contents_form(tmp_path / "plain", "m", staging, max_size=1 << 20)


def test_the_magic_graph_is_a_path_under_the_base_url() -> None:
    assert graph_path("/user/alice/", "vk") == "/user/alice/tfaas/graph/?model=vk"
    assert graph_path("/", "a b", 3) == "/tfaas/graph/?model=a+b&version=3"
