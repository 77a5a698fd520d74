"""ONNX models (what torch.onnx.export writes) upload like any model, are converted to a
SavedModel in the model worker and predict as onnxruntime does on the same input."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import numpy as np
import onnxmodels
import pytest

TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def onnx_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx")
    return {
        "mlp": onnxmodels.make_mlp(root / "mlp.onnx"),
        "cnn": onnxmodels.make_cnn(root / "cnn.onnx"),
        "rgb": onnxmodels.make_cnn(root / "rgb.onnx", channels=3, side=6, classes=4, seed=5),
        "custom": onnxmodels.make_unconvertible(root / "custom.onnx"),
    }


async def test_an_onnx_mlp_predicts_as_onnxruntime(tfaas, onnx_files, model_dir: Path) -> None:
    reply = await tfaas.upload("jets", onnx_files["mlp"].read_bytes(), filename="mlp.onnx",
                               params={}, labels="signal")
    assert reply.code == 200, reply.body
    answer = reply.json()
    assert answer["format"] == "onnx"
    assert [i["shape"] for i in answer["inputs"]] == [[None, 42]]
    assert [o["name"] for o in answer["outputs"]] == ["score"]
    version = model_dir / "jets" / "1"
    assert (version / "model.onnx").read_bytes() == onnx_files["mlp"].read_bytes()
    assert (version / "saved_model" / "saved_model.pb").is_file()
    assert not list(version.rglob("*.tflite"))

    rows = np.random.default_rng(7).normal(size=(6, 42)).astype(np.float32)
    reply = await tfaas.predict({"model": "jets", "values": rows.tolist()})
    assert reply.code == 200, reply.body
    got = np.asarray(reply.json(), dtype=np.float64)
    want = onnxmodels.run_onnxruntime(onnx_files["mlp"], rows)
    assert got.shape == want.shape == (6, 1)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    assert not np.allclose(want, want[0])  # the rows really differ


async def test_channels_first_inputs_keep_the_onnx_layout(tfaas, onnx_files) -> None:
    """A PyTorch image model takes [N, C, H, W]; requests send values in that order."""
    reply = await tfaas.upload("digits", onnx_files["cnn"].read_bytes(), filename="cnn.onnx")
    assert reply.code == 200, reply.body
    (spec,) = reply.json()["inputs"]
    assert spec["shape"] == [None, 1, 8, 8] and spec["layout"] == "NCHW"
    images = np.random.default_rng(3).uniform(0, 1, size=(4, 1, 8, 8)).astype(np.float32)
    reply = await tfaas.predict(
        {"model": "digits", "values": images.reshape(4, -1).tolist()}
    )
    assert reply.code == 200, reply.body
    got = np.asarray(reply.json())
    want = onnxmodels.run_onnxruntime(onnx_files["cnn"], images)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    # a layout mix-up would still give probabilities: check they are not the transposed
    # input's
    transposed = images.transpose(0, 1, 3, 2).copy()
    assert not np.allclose(onnxmodels.run_onnxruntime(onnx_files["cnn"], transposed), want,
                           atol=TOLERANCE)


async def test_an_onnx_file_is_recognised_without_its_suffix(tfaas, onnx_files) -> None:
    reply = await tfaas.upload("rgb", onnx_files["rgb"].read_bytes(), filename="model.bin")
    assert reply.code == 200, reply.body
    assert reply.json()["format"] == "onnx"
    images = np.random.default_rng(9).uniform(size=(2, 3, 6, 6)).astype(np.float32)
    reply = await tfaas.predict({"model": "rgb", "values": images.reshape(2, -1).tolist()})
    np.testing.assert_allclose(np.asarray(reply.json()),
                               onnxmodels.run_onnxruntime(onnx_files["rgb"], images),
                               atol=TOLERANCE, rtol=0)


async def test_an_op_the_converter_lacks_is_a_400_naming_it(tfaas, onnx_files,
                                                           model_dir: Path) -> None:
    reply = await tfaas.upload("custom", onnx_files["custom"].read_bytes(),
                               filename="custom.onnx")
    assert reply.code == 400, reply.body
    error = reply.json()["error"]
    assert "FancyJetOp (org.example)" in error and "onnx2tf" in error
    assert not (model_dir / "custom").exists()
    assert (await tfaas.call("GET", "models")).json() == []


async def test_a_corrupt_onnx_file_is_a_400(tfaas) -> None:
    reply = await tfaas.upload("broken", b"\x08\x07\x12\x05hello-not-a-graph",
                               filename="broken.onnx")
    assert reply.code == 400, reply.body
    assert "ONNX" in reply.json()["error"]


async def test_a_hand_copied_onnx_version_is_served(tfaas, onnx_files, model_dir: Path) -> None:
    """A version folder holding only model.onnx (copied in by hand) is converted on first use
    (beside it, or in a scratch folder when the folder is read-only for the server)."""
    version = model_dir / "copied" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(onnx_files["mlp"].read_bytes())
    version.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        rows = np.random.default_rng(1).normal(size=(2, 42)).astype(np.float32)
        reply = await tfaas.predict({"model": "copied", "values": rows.tolist()})
        assert reply.code == 200, reply.body
        np.testing.assert_allclose(np.asarray(reply.json()),
                                   onnxmodels.run_onnxruntime(onnx_files["mlp"], rows),
                                   atol=TOLERANCE, rtol=0)
        (listed,) = (await tfaas.call("GET", "models")).json()
        assert listed["format"] == "onnx"
    finally:
        version.chmod(stat.S_IRWXU)


@pytest.fixture(scope="session")
def python_without_onnx2tf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This Python, but with onnx2tf unimportable (as a worker Python without the extra)."""
    root = tmp_path_factory.mktemp("no-onnx")
    shadow = root / "shadow" / "onnx2tf"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'onnx2tf'\")\n")
    wrapper = root / "python"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={json.dumps(str(root / 'shadow'))} exec {json.dumps(sys.executable)} \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return wrapper


class TestWithoutTheExtra:
    @pytest.fixture
    def tfaas_config(self, python_without_onnx2tf: Path) -> dict:
        return {"worker_python": str(python_without_onnx2tf)}

    async def test_an_onnx_upload_names_the_extra(self, tfaas, onnx_files, model_dir) -> None:
        reply = await tfaas.upload("jets", onnx_files["mlp"].read_bytes(), filename="mlp.onnx")
        assert reply.code == 400, reply.body
        error = reply.json()["error"]
        assert "[onnx]" in error and "onnx2tf" in error
        assert not (model_dir / "jets").exists()


async def test_an_onnx_image_model_classifies_through_image(tfaas, onnx_files) -> None:
    """/image hands a channels-first ONNX model the picture as [1, C, H, W]."""
    import io

    from PIL import Image

    from tfaas_jupyter.client.forms import encode_multipart

    labels = ["a", "b", "c", "d"]
    reply = await tfaas.upload("rgb", onnx_files["rgb"].read_bytes(), filename="rgb.onnx",
                               labels="\n".join(labels))
    assert reply.code == 200, reply.body
    pixels = np.random.default_rng(4).integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    body, ctype = encode_multipart({"model": "rgb"}, {"image": ("x.png", png.getvalue(),
                                                                "image/png")})
    reply = await tfaas.call("POST", "image", body, {"Content-Type": ctype})
    assert reply.code == 200, reply.body
    want = onnxmodels.run_onnxruntime(
        onnx_files["rgb"], pixels.astype(np.float32).transpose(2, 0, 1)[None])[0]
    got = {entry["label"]: entry["probability"] for entry in reply.json()["labels"]}
    assert max(got, key=got.get) == labels[int(np.argmax(want))]
    for label, probability in got.items():
        assert abs(probability - want[labels.index(label)]) < TOLERANCE
