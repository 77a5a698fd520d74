"""How the model worker is launched: its interpreter, bootstrap, environment and
command line, without TensorFlow in this process.

The worker runs ``tfaas_jupyter/worker`` in a subprocess, possibly with another
interpreter (e.g. the LCG Python of a SWAN kernel, :func:`kernelspec_worker`), with
the server's environment minus its credentials (:func:`worker_environment`), and
speaks over a socketpair (:func:`spawn`). The versions of TensorFlow and Keras of that
interpreter are read from package metadata (:func:`probe_versions`) without starting
it. The process once started is :class:`tfaas_jupyter.server.workerproc.WorkerProcess`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
from pathlib import Path
from typing import Mapping

from ..tfnoise import TF_NOISE
from .errors import WorkerUnavailable

#: The worker package's directory, loaded by path in the worker's interpreter.
WORKER_DIR = str(Path(__file__).resolve().parent.parent / "worker")

#: Run with ``python -c``: import ``WORKER_DIR`` as the top-level package ``tfaas_worker``
#: (tfaas_jupyter need not be installed there) and run its main. The missing-package check
#: comes first so the error names TensorFlow rather than whatever import fails first.
BOOTSTRAP = """\
import sys, importlib.util as u
if sys.path and sys.path[0] in ('', '.'):
    del sys.path[0]
d = sys.argv[1]
miss = [m for m in ('tensorflow', 'numpy') if u.find_spec(m) is None]
if miss:
    sys.stderr.write('tfaas-worker-fatal: %s not installed for %s\\n'
                     % (' and '.join({'tensorflow': 'TensorFlow'}.get(m, m) for m in miss)
                        + (' is' if len(miss) == 1 else ' are'), sys.executable))
    sys.exit(3)
s = u.spec_from_file_location('tfaas_worker', d + '/__init__.py', submodule_search_locations=[d])
m = u.module_from_spec(s)
sys.modules['tfaas_worker'] = m
s.loader.exec_module(m)
import tfaas_worker.main
sys.exit(tfaas_worker.main.main(sys.argv[2:]))
"""

FATAL_PREFIX = "tfaas-worker-fatal:"
#: Socket buffer sizes of the channel (bytes), so that big frames move in few calls.
SOCK_BUF = 4 << 20


#: Run with ``python -c`` in the worker's interpreter: the installed TensorFlow and
#: Keras versions from package metadata, without importing either (a few ms).
VERSIONS_PROBE = """\
import json, importlib.metadata as m
def v(*names):
    for n in names:
        try:
            return m.version(n)
        except Exception:
            pass
print(json.dumps({'tensorflow': v('tensorflow', 'tensorflow-cpu', 'tensorflow-gpu',
                                  'tf-nightly', 'tensorflow-intel', 'tensorflow-macos'),
                  'keras': v('keras')}))
"""


def exit_phrase(rc: int | None, oom_killed: bool = False) -> str:
    """How a process ended, as a verb phrase ("exited with code 3", "was killed by ...").

    Out of memory only when the kernel says so (``oom_killed``: its cgroup's count of
    out-of-memory kills rose meanwhile, :func:`~tfaas_jupyter.server.sysinfo.oom_kills`);
    a SIGKILL may as well come from a person or another program."""
    if rc is None:
        return "stopped responding"
    if rc < 0:
        try:
            name = f"{signal.Signals(-rc).name} (signal {-rc})"
        except ValueError:
            name = f"signal {-rc}"
        if oom_killed and -rc == signal.SIGKILL:
            return (f"was killed by {name} from the kernel's out-of-memory killer: the "
                    "model or batch may be too big for this machine")
        return f"was killed by {name}"
    return f"exited with code {rc}"


def describe_exit(rc: int | None, pid: int | None, oom_killed: bool = False) -> str:
    who = f"The model worker (pid {pid})" if pid else "The model worker"
    return f"{who} {exit_phrase(rc, oom_killed)}"


#: stderr lines that are TensorFlow's chatter, not worth quoting in an error nor logging
#: above DEBUG (shared with the kernel's quiet import)
NOISE = TF_NOISE


#: Parts of a variable's name that say it holds a credential (upper-cased match).
_SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD")


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment minus every credential: a model's graph can read its
    process's environment, so the worker never gets Jupyter's or the hub's tokens."""
    return {
        k: v for k, v in environ.items()
        if not k.upper().startswith("JPY_")
        and not any(part in k.upper() for part in _SECRET_NAME_PARTS)
    }


def installed_versions() -> dict[str, str | None]:
    """:data:`VERSIONS_PROBE`'s answer for this interpreter, read in this process."""
    output: list[str] = []
    exec(VERSIONS_PROBE, {"print": output.append})  # one namespace: v() sees its imports
    versions: dict[str, str | None] = json.loads(output[0])
    return versions


async def spawn(python: str, env: Mapping[str, str], options: list[str]
                ) -> tuple[asyncio.subprocess.Process, socket.socket]:
    """Start the worker with ``python`` and ``env``, the worker's command-line
    ``options`` after its bootstrap; answers the process and the server's end of its
    socketpair. Raises :class:`WorkerUnavailable` when the interpreter cannot run."""
    parent, child = socket.socketpair()
    for s in (parent, child):
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, SOCK_BUF)
            except OSError:
                pass
    argv = [python, "-c", BOOTSTRAP, WORKER_DIR, "--fd", str(child.fileno()), *options]
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(child.fileno(),),
            env=dict(env),
            # Ctrl-C in the server's terminal must not hit the worker directly.
            start_new_session=True,
        )
    except OSError as e:
        parent.close()
        raise WorkerUnavailable(
            f"Cannot run the model worker's Python {python}: {e.strerror or e}"
        ) from None
    finally:
        child.close()
    return proc, parent


async def probe_versions(python: str, env: Mapping[str, str]) -> dict[str, str | None]:
    """TensorFlow's and Keras's versions in ``python``, from package metadata."""
    proc = await asyncio.create_subprocess_exec(
        python, "-c", VERSIONS_PROBE, env=dict(env),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    doc = json.loads(out.decode().strip().splitlines()[-1])
    return {"tensorflow": doc.get("tensorflow"), "keras": doc.get("keras")}


def kernelspec_worker(name: str) -> tuple[str, dict[str, str]]:
    """(python executable, env) of the Jupyter kernelspec ``name``.

    For SWAN: the kernel's (LCG) Python has TensorFlow while the server's has not. The
    executable is the spec's ``argv[0]`` (resolved on the spec's PATH if not absolute);
    env is ``os.environ`` updated with the spec's ``env``.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise WorkerUnavailable(f"There is no Jupyter kernel named '{name}'") from None
    if not spec.argv:
        raise WorkerUnavailable(f"Kernel '{name}' has an empty argv")
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (spec.env or {}).items()})
    python = spec.argv[0]
    if not os.path.isabs(python):
        found = shutil.which(python, path=env.get("PATH"))
        if found is None:
            raise WorkerUnavailable(
                f"Kernel '{name}' runs '{python}', which is not on its PATH"
            )
        python = found
    return python, env
