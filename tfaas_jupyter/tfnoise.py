"""What TensorFlow writes to standard error that is chatter, not news: its banners and
the INFO and WARNING logs of its C++ and Python sides (absl's "All log messages before
absl::InitializeLog() is called…", oneDNN's notice, the CPU feature guard), and the
errors every CPU-only machine gets about CUDA. Plain Python, no imports of the
package's sides: the worker's supervisor and the kernel's quiet import share it."""

from __future__ import annotations

import re

__all__ = ["TF_NOISE"]

#: A stderr line of TensorFlow's chatter (``TF_NOISE.match(line)``).
TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl|[IW]\d{4} |To enable the following"
    r"|\S+ \S+: [IW] tensorflow/|(INFO|WARNING):(tensorflow|absl):|oneDNN custom operations"
    # no GPU here, as TensorFlow says at error level on every start of a CPU machine
    r"|E\d{4} .*(failed call to cuInit|cuda_platform|cuda_diagnostics))"
)
