"""The worker's devices: GPU memory settings made before any model loads, and what
the status says about each device.

TensorFlow maps all the memory of every GPU it sees when it first uses one; on a
GPU shared by a few users (SWAN's CUDA stacks) one worker would lock the others out.
So the worker turns on memory growth for every visible GPU (allocate as needed), or,
given a limit, gives each GPU one logical device of that many MiB. Both must happen
before TensorFlow initialises the GPUs, that is before the first op: :func:`configure_gpus`
runs right after TensorFlow's import, in :func:`tfaas_worker.main.main`.

Which GPUs the worker sees at all is ``CUDA_VISIBLE_DEVICES`` in its environment,
set by the server (``TFaaSApp.gpus``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True)
class GpuSettings:
    """What the server asked for: memory growth, or a limit (MiB per GPU, 0: none)."""

    memory_growth: bool = True
    memory_limit_mib: int = 0

    @classmethod
    def from_environment(cls) -> GpuSettings:
        """As the server set them: ``TFAAS_GPU_MEMORY_LIMIT_MIB`` (MiB per GPU, 0: none)
        and ``TFAAS_GPU_MEMORY_GROWTH`` (``0``: off)."""
        try:
            limit = max(0, int(os.environ.get("TFAAS_GPU_MEMORY_LIMIT_MIB") or 0))
        except ValueError:
            limit = 0
        return cls(memory_growth=os.environ.get("TFAAS_GPU_MEMORY_GROWTH", "1") != "0",
                   memory_limit_mib=limit)


def configure_gpus(settings: GpuSettings) -> list[str]:
    """Apply ``settings`` to every visible GPU (before any op runs); answers the
    problems, one line each (a GPU already initialised cannot be changed: TensorFlow
    raises ``RuntimeError``), which the worker writes to its log."""
    import tensorflow as tf

    problems = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            if settings.memory_limit_mib > 0:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(
                        memory_limit=settings.memory_limit_mib)])
            elif settings.memory_growth:
                tf.config.experimental.set_memory_growth(gpu, True)
        except (RuntimeError, ValueError) as exc:
            problems.append(f"{gpu.name}: {exc}")
    return problems


def default_device() -> str:
    """The device TensorFlow places a model's ops on when nothing pins them: the first
    logical GPU, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return str(gpus[0].name if gpus else tf.config.list_logical_devices("CPU")[0].name)


def _memory_info(name: str) -> dict[str, int | None]:
    """Bytes in use and peak of one logical device (GPUs only: the CPU answers None)."""
    import tensorflow as tf

    if ":CPU:" in name or name.startswith("CPU"):
        return {"memory_in_use": None, "memory_peak": None}  # TensorFlow tracks GPUs only
    try:
        info = tf.config.experimental.get_memory_info(name.rsplit("device:", 1)[-1])
    except Exception:  # a device whose allocator keeps no statistics
        return {"memory_in_use": None, "memory_peak": None}
    return {"memory_in_use": int(info["current"]), "memory_peak": int(info["peak"])}


def _gpu_config(gpu: Any) -> dict[str, Any]:
    """One physical GPU's memory configuration, as TensorFlow holds it."""
    import tensorflow as tf

    logical = tf.config.get_logical_device_configuration(gpu) or []
    limits = [c.memory_limit for c in logical if c.memory_limit is not None]
    return {"memory_growth": bool(tf.config.experimental.get_memory_growth(gpu)),
            "memory_limit_mib": int(limits[0]) if limits else None}


def devices_status(settings: GpuSettings) -> dict[str, Any]:
    """The worker's devices for its status: the settings asked for, what TensorFlow
    holds for each physical GPU, and each logical device with its memory."""
    import tensorflow as tf

    physical = [{"name": d.name, "type": d.device_type,
                 **(_gpu_config(d) if d.device_type == "GPU" else {})}
                for d in tf.config.list_physical_devices()]
    logical = [{"name": d.name, "type": d.device_type, **_memory_info(d.name)}
               for d in tf.config.list_logical_devices()
               if d.device_type in ("CPU", "GPU")]
    return {
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "gpu_memory_growth": settings.memory_growth,
        "gpu_memory_limit_mib": settings.memory_limit_mib,
        "built_with_cuda": bool(tf.test.is_built_with_cuda()),
        "physical": physical,
        "logical": logical,
    }


def log_problems(problems: list[str]) -> None:
    for line in problems:
        sys.stderr.write(f"tfaas worker: GPU settings not applied to {line}\n")
