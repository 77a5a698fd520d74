"""The Jupyter server extension: configuration (traitlets) and wiring."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import IOLoop
from traitlets import Bool, Float, Int, Unicode, default

from .batching import Batcher
from .capture import Capture
from .catalogue import Catalogue
from .devices import GpuConfig
from .keys import KeyStore
from .repository import Repository, RepositoryRefused
from .service import Limits, TFaaS
from .shm import SharedMemoryRegions
from .uploads import Uploads
from .warmup import WarmupPolicy

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp

MiB = 1024 * 1024
#: The share of the memory limit that the model worker may use by default.
WORKER_MEMORY_FRACTION = 0.5


class TFaaSApp(ExtensionApp):
    """TensorFlow as a Service inside the Jupyter server, under ``{base_url}tfaas/``."""

    name = "tfaas"
    extension_url = "/tfaas/"
    load_other_extensions = True

    model_dir = Unicode(
        config=True,
        help="Folder of the model repository (one folder per model, one per version).",
    )

    @default("model_dir")
    def _default_model_dir(self) -> str:
        return os.path.join(jupyter_data_dir(), "tfaas", "models")

    group_shared_model_dir = Bool(
        False, config=True,
        help="Serve a model_dir its group may write into (a group project space). "
        "Whoever may write there chooses the code the worker runs as this user. "
        "A folder anyone may write into is always refused.",
    )

    keys_file = Unicode(
        config=True,
        help="File of the TFaaS keys (salted hashes only, mode 0600). Per user, never in "
        "a shared model_dir.",
    )

    @default("keys_file")
    def _default_keys_file(self) -> str:
        return os.path.join(jupyter_data_dir(), "tfaas", "keys.json")

    cache_size = Int(
        10, config=True, help="How many models the worker keeps loaded (least recently used out)."
    )
    max_upload_size = Int(
        512 * MiB, config=True, help="Largest upload accepted, in bytes (413 beyond)."
    )
    max_extracted_size = Int(
        2048 * MiB, config=True, help="Largest size an uploaded archive may expand to, in bytes."
    )
    max_rows_per_request = Int(
        100_000, config=True, help="Most rows one prediction request may carry (413 beyond)."
    )
    allow_client_shm = Bool(
        True, config=True,
        help="Whether clients may register system shared memory regions (Triton's "
        "extension, v2/systemsharedmemory) for V2 infer requests. Only the owner's "
        "token or a key with the manage scope may register one, and only an object of "
        "the server's own user in /dev/shm that no other user may write "
        "(docs/shared-memory.md). Triton's own default is off (--allow-client-shm).",
    )
    max_request_values = Int(
        1_000_000, config=True,
        help="Most values one JSON or proto prediction request may carry (numbers, keys, "
        "and the lists holding them; 413 beyond), counted on the body before it is "
        "decoded, so a small body cannot make the server build millions of objects. "
        "V2 binary tensors are read in place and count only their BYTES elements.",
    )
    max_image_pixels = Int(
        40_000_000, config=True, help="Largest image accepted by /image, in pixels."
    )
    max_concurrent_requests = Int(
        1000, config=True,
        help="Most predictions in flight at once; beyond it 503 'server busy' with "
        "Retry-After, so a storm of requests cannot exhaust the server's memory (0: no limit).",
    )
    request_timeout = Float(
        60.0, config=True,
        help="Seconds a model worker call may take before the worker is restarted (504).",
    )
    load_timeout = Float(
        600.0, config=True,
        help="Seconds more a worker call may take when it first loads its model "
        "(upload validation, the first prediction after a start or an eviction).",
    )
    worker_heartbeat_timeout = Float(
        10.0, config=True,
        help="Seconds the model worker may leave a heartbeat unanswered before it is "
        "taken for hung, killed and replaced (0: no heartbeat; a hang then lasts "
        "request_timeout). Heartbeats go every second and are answered even while "
        "predictions and loads run, so a slow model is never taken for a hung worker.",
    )
    worker_python = Unicode(
        "", config=True,
        help="Python interpreter of the model worker (it needs TensorFlow). "
        "Default: the server's own interpreter.",
    )
    worker_kernelspec = Unicode(
        "", config=True,
        help="Run the model worker with this kernelspec's Python and environment. "
        "Unset, and when the server's Python has no TensorFlow (SWAN), the 'python3' "
        "kernel's is used.",
    )
    worker_threads = Int(
        0, config=True, help="Inference threads in the worker (0: one per core)."
    )
    start_worker = Bool(
        False, config=True,
        help="Start the model worker with the server. By default it starts on first use "
        "(an upload, a prediction, a model load), so a server nobody uses for TFaaS costs "
        "no TensorFlow process.",
    )
    busy_poll_us = Int(
        1000, config=True,
        help="Microseconds the server polls for the model worker's answer, and the "
        "worker for the server's next request, before sleeping (0: never). Each side "
        "spends up to that much CPU per call and saves a wake-up of a sleeping CPU "
        "(0.05-0.2 ms on a virtual machine) when the other answers within it; neither "
        "polls where that did not pay the last time (slow models, rare requests).",
    )
    worker_idle_timeout = Float(
        900.0, config=True,
        help="Seconds without a request after which the model worker stops, releasing "
        "its memory (0: never). The next request starts a new one and reloads its model.",
    )
    worker_memory_limit = Int(
        config=True,
        help="Resident memory of the model worker, in bytes, past which it evicts the "
        "least recently used models; a model that does not fit alone is refused at upload "
        "(507). 0: no limit. Default: half of the memory limit of the server's cgroup, "
        "or of the machine's memory.",
    )

    @default("worker_memory_limit")
    def _default_worker_memory_limit(self) -> int:
        from .sysinfo import memory_limit

        return int(memory_limit() * WORKER_MEMORY_FRACTION)

    batching = Bool(
        True, config=True,
        help="Stack concurrent requests to one model into one worker call (greedy: an idle "
        "model runs a request at once). Per model: params.json 'batching': false.",
    )
    max_batch_size = Int(
        256, config=True,
        help="Most rows in one stacked worker call; a request of more rows is never cut: "
        "it goes alone, whole. Per model: params.json 'max_batch_size'.",
    )
    max_queue_delay_us = Int(
        0, config=True,
        help="Microseconds a non-full batch may wait for more requests (0: never wait). "
        "Per model: params.json 'max_queue_delay_us'.",
    )
    max_in_flight = Int(
        2, config=True,
        help="Worker calls in flight per model while batching (the rest queue and are "
        "stacked). Per model: params.json 'max_in_flight'.",
    )

    gpus = Unicode(
        None, allow_none=True, config=True,
        help="The GPUs the model worker may use: CUDA_VISIBLE_DEVICES in its environment "
        "(e.g. '0' or '0,1'; '': none, the CPU only). Unset: as the server's environment "
        "says (SWAN's spawner sets it for a GPU session).",
    )
    gpu_memory_limit = Int(
        0, config=True,
        help="MiB of memory the model worker may take on each GPU it sees (one logical "
        "device of that size per GPU). 0: no limit, the memory grows as models need it.",
    )
    gpu_memory_growth = Bool(
        True, config=True,
        help="Let the worker's GPU memory grow as needed instead of TensorFlow's default "
        "of mapping all of every visible GPU at its first use (which locks out everyone "
        "else sharing the GPU). Ignored when gpu_memory_limit is set.",
    )

    warmup = Bool(
        True, config=True,
        help="Warm each model version up when the worker loads it (an upload, a first "
        "use, after an eviction or a worker restart, a label moving to it): one run at "
        "batch size 1 and one at the largest batch the batcher sends it, on the model's "
        "params.json 'example' row or zeros, before any request is served from it.",
    )

    capture_dir = Unicode(
        "", config=True,
        help="Folder of the record of what was scored: captured predictions (time, model, "
        "version, caller, inputs, outputs, latency) in Parquet files per model and hour, "
        "written by a background thread. Empty: no capture. Needs pyarrow.",
    )
    capture_rate = Float(
        1.0, config=True, help="Share of the predictions captured (0 to 1) when "
        "capture_dir is set.",
    )
    capture_max_bytes = Int(
        0, config=True,
        help="Bytes of captured files per model past which its captures are dropped "
        "(and counted). 0: no cap.",
    )

    freeze_server_heap = Bool(
        True, config=True,
        help="Once the server has started, take the objects alive then (the server's "
        "and its extensions' modules, schemas and grammars: some 200,000) out of "
        "Python's full garbage collections (gc.freeze), which otherwise walk them all "
        "a few times a minute under traffic, stalling every request 70-150 ms.",
    )

    def _worker_interpreter(self) -> tuple[str, dict[str, str] | None, str | None]:
        """(python, env, problem) of the model worker.

        ``worker_python`` or ``worker_kernelspec`` when set. Otherwise the server's own
        Python, unless it has no TensorFlow: then the ``python3`` kernel's Python and
        environment, as in SWAN, where the kernels (not the server) see TensorFlow.
        """
        from .errors import WorkerUnavailable
        from .launch import kernelspec_worker

        if self.worker_python:
            return self.worker_python, None, None
        name, automatic = self.worker_kernelspec, False
        if not name and not _has_tensorflow():
            name, automatic = "python3", True
        if not name:
            return sys.executable, None, None
        try:
            python, env = kernelspec_worker(name)
        except WorkerUnavailable as exc:
            if automatic:
                return sys.executable, None, None
            return sys.executable, None, f"{exc.message} (TFaaSApp.worker_kernelspec)"
        if automatic:
            self.log.info(
                "tfaas: this Python has no TensorFlow; the model worker runs with the "
                "'%s' kernel's Python (%s)", name, python,
            )
        return python, env, None

    def initialize_settings(self) -> None:
        from .supervisor import ModelWorker

        python, env, problem = self._worker_interpreter()
        gpu = GpuConfig(gpus=self.gpus, memory_limit_mib=max(self.gpu_memory_limit, 0),
                        memory_growth=self.gpu_memory_growth)
        self.worker = ModelWorker(
            python=python,
            env=gpu.environment(os.environ if env is None else env),
            unavailable=problem,
            threads=self.worker_threads or None,
            cache_size=self.cache_size,
            request_timeout=self.request_timeout,
            load_timeout=self.load_timeout,
            idle_timeout=max(self.worker_idle_timeout, 0.0),
            memory_limit=max(self.worker_memory_limit, 0),
            busy_poll=max(self.busy_poll_us, 0) / 1e6,
            heartbeat_timeout=max(self.worker_heartbeat_timeout, 0.0),
            log=self.log,
        )
        self.worker.gpu = gpu
        try:
            repository = Repository(self.model_dir, group_shared=self.group_shared_model_dir)
        except RepositoryRefused as exc:
            self.log.error("tfaas: %s", exc)
            raise
        limits = Limits(
            max_upload_size=self.max_upload_size,
            max_extracted_size=self.max_extracted_size,
            max_rows=self.max_rows_per_request,
            max_values=self.max_request_values,
            max_image_pixels=self.max_image_pixels,
            max_concurrent_requests=self.max_concurrent_requests,
        )
        runner = Batcher(
            self.worker,
            enabled=self.batching,
            max_batch_size=self.max_batch_size,
            max_queue_delay_us=self.max_queue_delay_us,
            max_in_flight=self.max_in_flight,
        )
        if self.warmup:
            self.worker.warmup_policy = WarmupPolicy(runner.defaults)
        self.service = TFaaS(repository, self.worker, runner, limits)
        if self.capture_dir:
            self.service.capture = Capture(Path(self.capture_dir).expanduser(),
                                           rate=self.capture_rate,
                                           max_bytes=max(self.capture_max_bytes, 0))
        self.shared_memory = SharedMemoryRegions(enabled=self.allow_client_shm)
        self.settings.update({
            "tfaas_service": self.service,
            "tfaas_catalogue": Catalogue(self.service),
            "tfaas_uploads": Uploads(self.service),
            "tfaas_keys": KeyStore(self.keys_file),
            "tfaas_shm": self.shared_memory,
        })
        self.log.info("tfaas: serving models from %s", repository.root)
        if self.freeze_server_heap:
            # once the loop runs: after every extension's start, before any request
            IOLoop.current().add_callback(gc.freeze)

    def initialize_handlers(self) -> None:
        # handlers/ is mapped into the package by the build; mypy checks it as top-level
        from ..handlers import (  # type: ignore[import-untyped]
            fallback_route,
            key_url_routes,
            routes,
            streamed_rules,
        )

        # Added to the web app ahead of the routes below, which the ExtensionApp adds
        # next: these rules choose a handler by the request's headers, not only its path.
        assert self.serverapp is not None, "handlers are initialized by a server"
        web_app = self.serverapp.web_app
        rules = streamed_rules(web_app.settings["base_url"], name=self.name)
        web_app.add_handlers(".*$", rules)  # type: ignore[no-untyped-call]  # (jupyter_server)
        self.handlers.extend([*routes(), *key_url_routes(), fallback_route()])

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        if self.start_worker:
            self._start_task = asyncio.ensure_future(self._start_worker())

    async def _start_worker(self) -> None:
        try:
            await self.worker.start()
        except Exception as exc:  # reported by /status; requests retry the start
            self.log.warning("tfaas: model worker did not start: %s", exc)

    async def stop_extension(self) -> None:
        worker = getattr(self, "worker", None)
        if worker is not None:
            await worker.stop()
        shared_memory = getattr(self, "shared_memory", None)
        if shared_memory is not None:
            shared_memory.close()
        service = getattr(self, "service", None)
        if service is not None and service.capture is not None:
            await asyncio.to_thread(service.capture.close)


def _has_tensorflow() -> bool:
    """Whether this Python can import TensorFlow (looked up, not imported)."""
    return importlib.util.find_spec("tensorflow") is not None


main = launch_new_instance = TFaaSApp.launch_instance
