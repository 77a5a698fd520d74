"""The way out: the repository as TF Serving and KServe load it.

``export`` answers a ``.tar.gz`` holding::

    models/NAME/VERSION/     a SavedModel with serving_default, for every version
        saved_model.pb, variables/
        assets/params.json   the model's params.json, and labels.txt when it has one
        assets/signature.json  the served inputs and outputs, in order, with their keys
        assets/tfaas-version.json  the version it is (name, number, the server's key)
    models.config            TF Serving's ModelServerConfig (text format): base paths,
                             every version served, the version labels
    kserve/NAME.yaml         a KServe InferenceService per model (storageUri to fill)
    triton/NAME/config.pbtxt Triton's model configuration (:mod:`.triton`)
    triton/NAME/labels.txt   the labels, when the model has them (the output's label_filename)
    triton/NAME/VERSION/model.savedmodel/  the SavedModel again (hard links in the archive)
    kserve/NAME-triton.yaml  a KServe InferenceService on the Triton runtime (V2 protocol)
    README.txt               how to run them

Frozen graphs, SavedModels and ``.keras`` files are all written by the model worker
through the function it serves, so the exported versions compute what the server does.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

from .errors import TFaaSError
from .keys import Grant, check_model_access, may_see_model
from .modelfiles import LABELS_FILE, ModelVersion
from .names import check_model_name
from .service import TFaaS
from .triton import LABELS_FILE as TRITON_LABELS
from .triton import config_pbtxt, repository_config

#: Where models.config says the models are (TF Serving's container convention).
BASE_PATH = "/models"
STORAGE_PLACEHOLDER = "s3://YOUR-BUCKET/tfaas-export/models"
TRITON_PLACEHOLDER = "s3://YOUR-BUCKET/tfaas-export/triton"

README = """\
Exported from tfaas-jupyter.

TensorFlow Serving (REST on 8501, gRPC on 8500):
  docker run -p 8501:8501 -v "$PWD/models:/models" -v "$PWD/models.config:/models.config" \\
    tensorflow/serving --model_config_file=/models.config \\
    --allow_version_labels_for_unavailable_models=true
  curl -d '{"instances": [[...]]}' localhost:8501/v1/models/NAME/labels/LABEL:predict

KServe: copy models/NAME to your storage, set storageUri in kserve/NAME.yaml to it,
then: kubectl apply -f kserve/NAME.yaml

Triton (HTTP/V2 on 8000, gRPC on 8001):
  docker run -p 8000:8000 -p 8001:8001 -v "$PWD/triton:/models" \
    nvcr.io/nvidia/tritonserver:<xx.yy>-py3 tritonserver --model-repository=/models
  curl localhost:8000/v2/models/NAME/config

KServe with Triton (the V2 protocol): copy triton/ to your storage, set storageUri in
kserve/NAME-triton.yaml to it, then: kubectl apply -f kserve/NAME-triton.yaml
"""


def _quote(text: str) -> str:
    """A protobuf text-format (and YAML) double-quoted string."""
    return json.dumps(text)


def models_config(models: dict[str, tuple[list[int], dict[str, int]]]) -> str:
    """TF Serving's ModelServerConfig: every version served, labels as they are here."""
    lines = ["model_config_list {"]
    for name, (_versions, labels) in models.items():
        lines += [
            "  config {",
            f"    name: {_quote(name)}",
            f"    base_path: {_quote(f'{BASE_PATH}/{name}')}",
            '    model_platform: "tensorflow"',
            "    model_version_policy { all {} }",
        ]
        for label, version in labels.items():
            lines.append(f"    version_labels {{ key: {_quote(label)} value: {version} }}")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def kserve_name(name: str) -> str:
    """A Kubernetes resource name (DNS-1123 label) for a model name."""
    text = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    return (text or "model")[:63].rstrip("-")


def inference_service(name: str) -> str:
    """A KServe InferenceService running TF Serving on the model's folder."""
    return (
        "apiVersion: serving.kserve.io/v1beta1\n"
        "kind: InferenceService\n"
        "metadata:\n"
        f"  name: {_quote(kserve_name(name))}\n"
        "spec:\n"
        "  predictor:\n"
        "    model:\n"
        "      modelFormat:\n"
        "        name: tensorflow\n"
        "      # the folder holding this model's numbered versions (models/"
        f"{name}/ of the export)\n"
        f"      storageUri: {_quote(f'{STORAGE_PLACEHOLDER}/{name}')}\n"
    )


def triton_inference_service(name: str) -> str:
    """A KServe InferenceService serving the model's Triton repository over V2."""
    return (
        "apiVersion: serving.kserve.io/v1beta1\n"
        "kind: InferenceService\n"
        "metadata:\n"
        f"  name: {_quote(kserve_name(name) + '-triton')}\n"
        "spec:\n"
        "  predictor:\n"
        "    model:\n"
        "      modelFormat:\n"
        "        name: tensorflow\n"
        "      protocolVersion: v2\n"
        "      runtime: kserve-tritonserver\n"
        "      # Triton's model repository: the folder holding "
        f"{name}/config.pbtxt (triton/ of the export)\n"
        f"      storageUri: {_quote(TRITON_PLACEHOLDER)}\n"
    )


#: Which server version an exported SavedModel is (its name, number and cache key): two
#: exports of one version differ in bytes (TensorFlow names functions anew), so whoever
#: caches loaded exports (the scoring workers) keys them by this.
SOURCE_FILE = "tfaas-version.json"


def _assets(mv: ModelVersion, target: Path) -> None:
    """params.json, labels.txt and the version's identity beside the SavedModel, in its
    assets folder."""
    assets = target / "assets"
    assets.mkdir(exist_ok=True)
    (assets / "params.json").write_text(json.dumps(mv.params, indent=1), encoding="utf-8")
    source = {"name": mv.name, "version": mv.version, "key": mv.key}
    (assets / SOURCE_FILE).write_text(json.dumps(source), encoding="utf-8")
    labels = mv.path / str(mv.meta.get("labels") or LABELS_FILE)
    if labels.is_file():
        shutil.copyfile(labels, assets / "labels.txt")


def _triton_model(tree: Path, mv: ModelVersion, config: dict[str, Any],
                  versions: list[int]) -> None:
    """``triton/NAME/``: config.pbtxt, the labels, and each version's SavedModel as
    ``VERSION/model.savedmodel`` (hard links to the files under models/)."""
    folder = tree / "triton" / mv.name
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config_pbtxt(config), encoding="utf-8")
    if mv.labels:
        (folder / TRITON_LABELS).write_text("\n".join(mv.labels) + "\n", encoding="utf-8")
    for version in versions:
        shutil.copytree(tree / "models" / mv.name / str(version),
                        folder / str(version) / "model.savedmodel", copy_function=os.link)


def _pack(tree: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for path in sorted(tree.rglob("*")):
            tar.add(path, arcname=path.relative_to(tree).as_posix(), recursive=False)


async def export_archive(service: TFaaS, model: str | None, staging: Path,
                         grant: Grant | None = None,
                         version: int | str | None = None) -> Path:
    """Write the export of one model (or all) under ``staging``; answer the archive.
    ``version`` (a number or a label, with ``model`` only) exports that one version.
    A key's request exports the models its key (``grant``) covers only."""
    if version is not None and not model:
        raise TFaaSError("a version is exported with its model: give model= too", 400)
    if model:
        names = [check_model_name(model)]
        check_model_access(grant, names[0])
    else:
        names = [n for n in service.repository.names() if may_see_model(grant, n)]
    if not names:
        raise TFaaSError("there are no models to export", 404)
    tree = staging / "export"
    described: dict[str, tuple[list[int], dict[str, int]]] = {}
    for name in names:
        versions = service.repository.versions(name)
        if version is not None:
            versions = [service.repository.resolve(name, version)]
        for mv in versions:
            target = tree / "models" / name / str(mv.version)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                await service.worker.export(mv.ref, str(target))
            except TFaaSError as exc:
                raise TFaaSError(
                    f"cannot export {name!r} version {mv.version}: {exc.message}", exc.status
                ) from None
            await asyncio.to_thread(_assets, mv, target)
        described[name] = ([v.version for v in versions], service.repository.labels(name))
        # Triton's configuration is the model's: by the latest version exported
        config = await repository_config(service, versions[-1], versions)
        await asyncio.to_thread(_triton_model, tree, versions[-1], config,
                                [v.version for v in versions])
    (tree / "models.config").write_text(models_config(described), encoding="utf-8")
    (tree / "kserve").mkdir()
    for name in names:
        (tree / "kserve" / f"{name}.yaml").write_text(inference_service(name), encoding="utf-8")
        (tree / "kserve" / f"{name}-triton.yaml").write_text(triton_inference_service(name),
                                                             encoding="utf-8")
    (tree / "README.txt").write_text(README, encoding="utf-8")
    archive = staging / "tfaas-export.tar.gz"
    await asyncio.to_thread(_pack, tree, archive)
    return archive
