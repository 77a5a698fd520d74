"""The talk's C++ client (examples/cpp): built with CMake, run against the live server.

Needs cmake, a C++ compiler, protoc, protobuf and libcurl headers (scripts/test
installs them with apt-get); skips with the missing piece named otherwise.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(900)


def _missing_tools() -> list[str]:
    missing = [tool for tool in ("cmake", "protoc") if shutil.which(tool) is None]
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        missing.append("a C++ compiler (g++)")
    curl_header = any(Path(p).is_file() for p in (
        "/usr/include/curl/curl.h", "/usr/local/include/curl/curl.h",
        "/usr/include/x86_64-linux-gnu/curl/curl.h", "/usr/include/aarch64-linux-gnu/curl/curl.h",
    ))
    if not curl_header and shutil.which("pkg-config"):
        curl_header = subprocess.run(["pkg-config", "--exists", "libcurl"]).returncode == 0
    if not curl_header:
        missing.append("libcurl headers (libcurl4-openssl-dev)")
    if not any(Path(p).is_file() for p in ("/usr/include/google/protobuf/message.h",
                                            "/usr/local/include/google/protobuf/message.h")):
        missing.append("protobuf headers (libprotobuf-dev)")
    return missing


@pytest.fixture(scope="module")
def cpp_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Configure and build examples/cpp in a temporary build folder; the example binary."""
    missing = _missing_tools()
    if missing:
        pytest.skip("cannot build the C++ client, missing: " + ", ".join(missing)
                    + " (apt-get install cmake g++ pkg-config libcurl4-openssl-dev "
                    "protobuf-compiler libprotobuf-dev)")
    build = tmp_path_factory.mktemp("cpp-build")
    for cmd in (["cmake", "-S", str(ROOT / "examples" / "cpp"), "-B", str(build),
                 "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", str(build), "-j", "2"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    binary = build / "tfaas_example"
    assert binary.is_file()
    return binary


def seed_reference(seed_dir: Path, values: np.ndarray) -> np.ndarray:
    """The seed graph's output for ``values``, computed with TensorFlow in-process."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((seed_dir / "model.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run("output_node0:0", {"dense_1_input:0": values})


async def run(binary: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("TFAAS_TOKEN", "JUPYTER_TOKEN", "TFAAS_URL")}
    environ.update(env)
    proc = await asyncio.create_subprocess_exec(
        str(binary), *args, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_talk_example_matches_tensorflow(cpp_example: Path, tfaas, seed_dir: Path,
                                               jp_http_port: int, jp_base_url: str,
                                               jp_serverapp) -> None:
    reply = await tfaas.upload_dir(seed_dir, "vk")
    assert reply.code == 200, reply.body
    token = jp_serverapp.identity_provider.token
    base = f"http://localhost:{jp_http_port}{jp_base_url}tfaas"

    code, out, err = await run(cpp_example, base, "vk", env={"TFAAS_TOKEN": token})
    assert code == 0, err
    lines = out.strip().splitlines()
    want = seed_reference(seed_dir, np.arange(42, dtype=np.float32).reshape(1, 42))[0]
    assert len(lines) == len(want) == 1
    for line, p in zip(lines, want):
        m = re.fullmatch(r"class: (\S*) probability: (\S+)", line)
        assert m, line
        assert m.group(1) == "signal"
        assert float(m.group(2)) == pytest.approx(float(p), rel=1e-5, abs=1e-7)

    # the full /proto URL, the URL from $TFAAS_URL, the token from $JUPYTER_TOKEN
    code, out2, err = await run(cpp_example, base + "/proto", "vk",
                                env={"JUPYTER_TOKEN": token})
    assert code == 0 and out2 == out, err
    code, out3, err = await run(cpp_example, env={"TFAAS_URL": base + "/",
                                                  "TFAAS_TOKEN": token})
    assert code == 0 and out3 == out, err

    # errors: the status is checked and the server's JSON error printed
    code, out, err = await run(cpp_example, base, "nosuch", env={"TFAAS_TOKEN": token})
    assert code == 1 and out == ""
    assert "HTTP 404" in err and '"error"' in err and "nosuch" in err
    code, out, err = await run(cpp_example, base, "vk", env={})
    assert code == 1 and "HTTP 403" in err
