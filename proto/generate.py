"""Regenerate tfaas_jupyter/tfaas_pb2.py from proto/tfaas.proto.

Uses the protoc bundled with the pinned grpcio-tools (see pyproject's test
extra), so the output is reproducible; the test suite regenerates and compares.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE.parent / "tfaas_jupyter" / "tfaas_pb2.py"


def generate(out_dir: Path) -> Path:
    from grpc_tools import protoc

    code = protoc.main(
        ["protoc", f"-I{HERE}", f"--python_out={out_dir}", str(HERE / "tfaas.proto")]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")
    return out_dir / "tfaas_pb2.py"


def main(argv: list[str]) -> int:
    """``generate.py`` rewrites the module in place; ``generate.py DIR`` writes it into DIR."""
    if argv:
        produced = generate(Path(argv[0]))
        print(f"wrote {produced}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        produced = generate(Path(tmp))
        TARGET.write_bytes(produced.read_bytes())
    print(f"wrote {TARGET.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
