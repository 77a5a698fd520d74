"""TensorFlow stays quiet where ``%load_ext tfaas_jupyter`` ran: its C++ start-up chatter
(absl's pre-init warning, CUDA's absence, oneDNN, the CPU feature guard) is kept out of
stderr, and any other line written while it loads still comes through. The example
notebooks are run with this check in tests/test_examples.py, the demo's in
tests/test_demo.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tfaas_jupyter.client.quiet import QUIET_ENVIRONMENT, quiet_tensorflow
from tfaas_jupyter.tfnoise import TF_NOISE

pytestmark = pytest.mark.timeout(600)

ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def _python(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in QUIET_ENVIRONMENT}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=500, cwd=tmp_path, env={**environ, **env})


def test_a_loading_package_keeps_only_what_is_not_chatter(tmp_path: Path) -> None:
    """A stand-in ``tensorflow`` writing chatter and news to fd 2 while it loads."""
    package = tmp_path / "fake" / "tensorflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        "import os\n"
        f"os.write(2, b{ABSL!r} + b'\\n')\n"
        "os.write(2, b'I0000 00:00:1.0 1 cpu_feature_guard.cc:210] This TensorFlow binary\\n')\n"
        "os.write(2, b'a real problem\\n')\n"
        "VALUE = 42\n")
    code = ("import sys; sys.path.insert(0, 'fake')\n"
            "from tfaas_jupyter.client.quiet import quiet_tensorflow\n"
            "{hook}"
            "import tensorflow\n"
            "print(tensorflow.VALUE, tensorflow.__spec__.name)\n")
    loud = _python(code.format(hook=""), tmp_path)
    assert loud.returncode == 0 and ABSL in loud.stderr, loud.stderr
    quiet = _python(code.format(hook="quiet_tensorflow()\n"), tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "42 tensorflow\n"
    assert quiet.stderr == "a real problem\n"


def test_the_environment_is_set_unless_the_user_set_it() -> None:
    environ = {"TF_CPP_MIN_LOG_LEVEL": "1", "GRPC_VERBOSITY": ""}
    quiet_tensorflow(environ)
    assert environ == {"TF_CPP_MIN_LOG_LEVEL": "1", "GRPC_VERBOSITY": "ERROR"}


def test_real_tensorflow_imports_and_trains_without_a_line_on_stderr(tmp_path: Path) -> None:
    code = ("{hook}"
            "import keras, numpy as np\n"
            "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
            "m.compile('adam', 'mse')\n"
            "m.fit(np.zeros((8, 4)), np.zeros((8, 2)), verbose=0)\n"
            "print('trained')\n")
    loud = _python(code.format(hook=""), tmp_path)
    assert loud.returncode == 0, loud.stderr
    assert any(TF_NOISE.match(line) for line in loud.stderr.splitlines()), loud.stderr
    quiet = _python(code.format(
        hook="from tfaas_jupyter.client.quiet import quiet_tensorflow; quiet_tensorflow()\n"),
        tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "trained\n", quiet.stderr
    assert quiet.stderr == ""
