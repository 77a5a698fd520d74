"""The build hook: compile the JupyterLab extension and ship it in the wheel.

Everything else about the package is in pyproject.toml. ``build_labextension`` runs
first in every ``build`` (``pip install .``, ``pip wheel .``, ``pip install -e .``):
when ``labextension/dist/`` is missing, or was built from other sources than
``labextension/`` (and the vocabulary it imports from the package) hold now, it runs
``jlpm install --immutable`` and ``jlpm build:prod`` (Node.js from the system,
packages from the npm registry). The built folder goes into the wheel as
``share/jupyter/labextensions/tfaas-jupyter/``, where JupyterLab finds it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Command, setup
from setuptools.command.build import build
from setuptools.command.editable_wheel import editable_wheel

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "labextension"
OUTPUT = SOURCE / "dist"
#: the sha256 of the sources the output was built from
STAMP = OUTPUT / ".sources-sha256"
SHARE = "share/jupyter/labextensions/tfaas-jupyter"
#: what the build reads (node_modules and lib/ are its own products)
INPUTS = ("package.json", "yarn.lock", ".yarnrc.yml", "tsconfig.json", "install.json")
INPUT_DIRS = ("src", "style", "schema")
#: what the build imports from the Python package: the words the widget shows too, and
#: the file endings its upload accepts
SHARED_INPUTS = ("tfaas_jupyter/client/vocabulary.json",
                 "tfaas_jupyter/client/upload_files.json")


def sources_digest() -> str:
    """A digest of every input of the build: names and contents."""
    digest = hashlib.sha256()
    files = [SOURCE / name for name in INPUTS]
    for folder in INPUT_DIRS:
        files += sorted(p for p in (SOURCE / folder).rglob("*")
                        if p.is_file() and "__tests__" not in p.parts)
    files += [ROOT / name for name in SHARED_INPUTS]
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
        digest.update(b"\0")
    return digest.hexdigest()


def is_fresh() -> bool:
    """The built output exists and comes from the sources as they are now."""
    if not (OUTPUT / "package.json").is_file() or not (OUTPUT / "static").is_dir():
        return False
    if not (SOURCE / "package.json").is_file():
        return True  # an sdist with the prebuilt output only
    return STAMP.is_file() and STAMP.read_text().strip() == sources_digest()


def build_labextension() -> None:
    jlpm = shutil.which("jlpm")
    if shutil.which("node") is None or jlpm is None:
        raise SystemExit(
            "tfaas-jupyter: building the JupyterLab extension (labextension/) needs "
            "Node.js >= 18 on PATH"
            + ("" if jlpm else " and jlpm (pip install jupyter-builder)")
            + ". Install Node.js (e.g. apt-get install nodejs) and retry, or install "
            "a prebuilt wheel."
        )
    env = {**os.environ, "YARN_ENABLE_PROGRESS_BARS": "false"}
    for args in (["install", "--immutable"], ["build:prod"]):
        subprocess.run([jlpm, *args], cwd=SOURCE, check=True, env=env)
    STAMP.write_text(sources_digest() + "\n")


def shipped_files() -> list[tuple[str, list[str]]]:
    """``data_files`` entries: the built folder and install.json under SHARE."""
    entries = {SHARE: [str((OUTPUT / "package.json").relative_to(ROOT)),
                       str((SOURCE / "install.json").relative_to(ROOT))]}
    # the bundle, and the settings schema (schema/ as Lab reads it from schemas/)
    built = [*(OUTPUT / "static").rglob("*"), *(OUTPUT / "schemas").rglob("*")]
    for path in sorted(built):
        if path.is_file():
            target = f"{SHARE}/{path.parent.relative_to(OUTPUT).as_posix()}"
            entries.setdefault(target, []).append(str(path.relative_to(ROOT)))
    return list(entries.items())


class BuildLabextension(Command):
    """Build labextension/ into labextension/dist/ unless it is up to date."""

    description = "build the JupyterLab extension (jlpm build:prod) when it is stale"
    user_options: list = []

    def initialize_options(self) -> None:
        pass

    def finalize_options(self) -> None:
        pass

    def run(self) -> None:
        if not is_fresh():
            build_labextension()
        # install_data (wheel and editable installs alike) reads this very list later
        data_files = self.distribution.data_files
        if data_files is None:
            data_files = self.distribution.data_files = []
        data_files[:] = [entry for entry in data_files if not entry[0].startswith(SHARE)]
        data_files.extend(shipped_files())


class BuildWithLabextension(build):
    sub_commands = [("build_labextension", None), *build.sub_commands]


class EditableWithData(editable_wheel):
    """``pip install -e .`` installs the data files too (the labextension, the server
    config): setuptools looks for ``has_data``, which distributions lack (they have
    ``has_data_files``), and so skips them."""

    def _run_install(self, category: str) -> None:
        if category == "data":
            if self.distribution.has_data_files():
                self.run_command("install_data")
            return
        super()._run_install(category)


setup(cmdclass={
    "build_labextension": BuildLabextension,
    "build": BuildWithLabextension,
    "editable_wheel": EditableWithData,
})
