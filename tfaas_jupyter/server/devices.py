"""The model worker's devices, from the server's side (no TensorFlow here): which GPUs
the worker may see, its GPU memory settings, and the devices part of ``/tfaas/status``.

The worker applies the settings before any model loads (``worker/devices.py``) and
reports, in its status, what TensorFlow made of them; this module passes the settings
on (:meth:`GpuConfig.environment`) and summarises the report (:func:`devices_status`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

#: The worker's environment variables of its GPU memory settings.
GPU_ENV = {"limit": "TFAAS_GPU_MEMORY_LIMIT_MIB", "growth": "TFAAS_GPU_MEMORY_GROWTH"}


@dataclass(frozen=True)
class GpuConfig:
    """``TFaaSApp.gpus``, ``gpu_memory_limit`` and ``gpu_memory_growth``.

    ``gpus``: ``CUDA_VISIBLE_DEVICES`` of the worker (``""``: no GPU, the CPU only;
    None: the server's environment decides). ``memory_limit_mib``: MiB per GPU (0: no
    limit; then memory growth, unless turned off).
    """

    gpus: str | None = None
    memory_limit_mib: int = 0
    memory_growth: bool = True

    def environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """The worker's environment ``env`` with these settings: ``CUDA_VISIBLE_DEVICES``
        and the memory settings ``worker/devices.py`` reads (``GPU_ENV``)."""
        env = dict(env)
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus
        env[GPU_ENV["limit"]] = str(self.memory_limit_mib)
        env[GPU_ENV["growth"]] = "1" if self.memory_growth else "0"
        return env

    def as_dict(self) -> dict[str, Any]:
        return {"gpus": self.gpus, "gpu_memory_limit_mib": self.memory_limit_mib,
                "gpu_memory_growth": self.memory_growth}


def devices_status(worker: dict[str, Any], config: GpuConfig | None = None
                   ) -> dict[str, Any]:
    """The status's ``devices``: the settings, and from a running worker its logical
    devices (name, type, bytes in use and peak: GPUs only), the physical GPUs with
    their memory configuration, and the device of each loaded model (by its key in
    the worker's cache, as ``worker.loaded`` lists them)."""
    reported = worker.get("devices") or {}
    return {
        **(config or GpuConfig()).as_dict(),
        "visible": reported.get("cuda_visible_devices"),
        "devices": reported.get("logical"),
        "physical_gpus": [d for d in reported.get("physical") or [] if d.get("type") == "GPU"]
        if reported else None,
        "built_with_cuda": reported.get("built_with_cuda"),
        "models": dict(worker.get("model_devices") or {}),
    }


def gpu_memory(devices: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(device, bytes in use, peak bytes) of each GPU in a ``devices`` status."""
    return [(str(d["name"]), int(d["memory_in_use"]), int(d["memory_peak"]))
            for d in devices.get("devices") or []
            if d.get("type") == "GPU" and d.get("memory_in_use") is not None]
