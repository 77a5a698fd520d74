"""The model worker's devices: the GPU settings (``TFaaSApp.gpus``,
``gpu_memory_limit``, ``gpu_memory_growth``) reach the worker's environment and
TensorFlow's configuration, and the status, the metrics and ``%tfaas status`` show
the devices and each loaded model's device. This machine has no GPU: what a CPU
shows is checked, and the GPU lines are checked on a status a GPU worker gives."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import tfmodels
from helpers import TFaaSCaller, scrape, seed_predict

from tfaas_jupyter.client.present import devices_lines, format_status
from tfaas_jupyter.server.devices import GpuConfig, devices_status
from tfaas_jupyter.server.metrics_devices import device_metrics
from tfaas_jupyter.server.modelref import ModelRef
from tfaas_jupyter.server.supervisor import ModelWorker

pytestmark = pytest.mark.timeout(600)

CPU = "/device:CPU:0"
GPU = "/device:GPU:0"

#: A worker's status as a GPU machine's would answer it (the shape worker/devices.py
#: writes), for what this machine cannot produce.
GPU_WORKER: dict[str, Any] = {
    "devices": {
        "cuda_visible_devices": "0", "gpu_memory_growth": True, "gpu_memory_limit_mib": 0,
        "built_with_cuda": True,
        "physical": [{"name": "/physical_device:CPU:0", "type": "CPU"},
                     {"name": "/physical_device:GPU:0", "type": "GPU",
                      "memory_growth": True, "memory_limit_mib": None}],
        "logical": [{"name": CPU, "type": "CPU", "memory_in_use": None, "memory_peak": None},
                    {"name": GPU, "type": "GPU", "memory_in_use": 3 * 2**20,
                     "memory_peak": 40 * 2**20}],
    },
    "model_devices": {"cnn@abc": GPU},
}


def test_settings_become_the_workers_environment() -> None:
    env = {"CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/bin"}
    kept = GpuConfig().environment(env)
    assert kept == {**env, "TFAAS_GPU_MEMORY_LIMIT_MIB": "0", "TFAAS_GPU_MEMORY_GROWTH": "1"}
    assert env == {"CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/bin"}  # a copy
    cpu_only = GpuConfig(gpus="", memory_limit_mib=2048).environment(env)
    assert cpu_only["CUDA_VISIBLE_DEVICES"] == ""
    assert cpu_only["TFAAS_GPU_MEMORY_LIMIT_MIB"] == "2048"
    fixed = GpuConfig(gpus="1", memory_growth=False).environment({})
    assert (fixed["CUDA_VISIBLE_DEVICES"], fixed["TFAAS_GPU_MEMORY_GROWTH"]) == ("1", "0")


def test_a_gpu_workers_memory_and_model_device_show_in_status_metrics_and_magics() -> None:
    devices = devices_status(GPU_WORKER, GpuConfig(gpus="0"))
    assert devices["physical_gpus"] == [GPU_WORKER["devices"]["physical"][1]]
    assert devices["models"] == {"cnn@abc": GPU}
    samples: dict[str, list[Any]] = {}
    for family in device_metrics(GPU_WORKER):
        samples[family.name] = family.samples
    assert [(s.labels, s.value) for s in samples["tfaas_gpu_memory_bytes"]] == \
        [({"device": GPU}, 3 * 2**20)]
    assert [s.value for s in samples["tfaas_gpu_memory_peak_bytes"]] == [40 * 2**20]
    assert [s.labels for s in samples["tfaas_model_device"]] == \
        [{"model": "cnn", "key": "cnn@abc", "device": GPU}]
    lines = devices_lines(devices)
    assert lines == ["devices: CPU:0, GPU:0 3.0 MiB in use (peak 40.0 MiB) (GPUs '0', "
                     "memory growth)", "  cnn runs on GPU:0"]


def test_a_stopped_worker_shows_its_settings_only() -> None:
    devices = devices_status({}, GpuConfig(gpus="", memory_limit_mib=512))
    assert devices["devices"] is None and devices["physical_gpus"] is None
    assert devices_lines(devices) == \
        ["devices: known once the worker runs (GPUs '', at most 512 MiB each)"]
    assert "devices:" in format_status({"devices": devices})
    assert not list(device_metrics({}))[0].samples


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cpu_worker():
    gpu = GpuConfig(gpus="", memory_limit_mib=256, memory_growth=False)
    w = ModelWorker(threads=1, env=gpu.environment(os.environ))
    await w.start()
    yield w
    await w.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_the_worker_reports_the_settings_it_was_given(cpu_worker: ModelWorker,
                                                           built: dict[str, Any]) -> None:
    """Asked for its configuration, the worker answers what its own environment and
    TensorFlow hold: no GPU visible, the CPU its only device, the limit as given."""
    status = await cpu_worker.status()
    reported = status["devices"]
    assert reported["cuda_visible_devices"] == ""
    assert reported["gpu_memory_limit_mib"] == 256
    assert reported["gpu_memory_growth"] is False
    assert [d["type"] for d in reported["physical"]] == ["CPU"]
    assert reported["logical"] == [{"name": CPU, "type": "CPU", "memory_in_use": None,
                                    "memory_peak": None}]
    b = built["graphdef"]
    ref = ModelRef(key="gd@dev", path=str(b.path), format=b.fmt, params=b.params)
    xs = [np.random.default_rng(1).normal(size=(2, tfmodels.N_IN)).astype(np.float32)]
    answer = await cpu_worker.predict(ref, xs)
    np.testing.assert_allclose(answer.outputs[0], b.reference(xs)[0], rtol=1e-5)
    status = await cpu_worker.status()
    assert status["model_devices"] == {"gd@dev": CPU}


@pytest.fixture
def tfaas_config() -> dict[str, Any]:
    return {"gpus": "", "gpu_memory_limit": 1024}


async def test_status_metrics_and_magics_show_the_cpu_and_the_models_device(
        tfaas: TFaaSCaller, seed_dir: Path) -> None:
    await tfaas.uploaded(directory=seed_dir, name="vk")
    row = [0.5] * 42
    reply = await tfaas.predict({"model": "vk", "values": row})
    assert reply.code == 200, reply.body
    np.testing.assert_allclose(reply.json(), seed_predict(row), rtol=1e-5)
    status = (await tfaas.call("GET", "status")).json()
    devices = status["devices"]
    assert devices["physical_gpus"] == [] and devices["visible"] == devices["gpus"] == ""
    assert devices["gpu_memory_limit_mib"] == 1024
    assert [d["name"] for d in devices["devices"]] == [CPU]
    (key,) = status["worker"]["loaded"]
    assert key.startswith("vk@") and devices["models"] == {key: CPU}
    page = (await tfaas.call("GET", "metrics")).body.decode()
    samples = scrape(page)
    assert [labels for labels, _ in samples["tfaas_worker_devices"]] == \
        [{"device": CPU, "type": "CPU"}]
    assert [labels for labels, _ in samples["tfaas_model_device"]] == \
        [{"model": "vk", "key": key, "device": CPU}]
    assert "tfaas_gpu_memory_bytes" not in samples
    text = format_status(status)
    assert "devices: CPU:0 (GPUs '', at most 1024 MiB each)\n  vk runs on CPU:0" in text
