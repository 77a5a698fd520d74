"""The keys an exported SavedModel's ``serving_default`` signature gives the served inputs
and outputs: their names made valid signature keys (letters, digits, ``_``), unique.

Written by the model worker (the signature) and read by the server (whose Triton
configuration names the same tensors without loading TensorFlow).
"""

from __future__ import annotations

import re


def signature_keys(names: list[str], prefix: str) -> list[str]:
    """Valid, unique signature keys for ``names`` (``prefix`` for a name that has none)."""
    keys: list[str] = []
    for i, name in enumerate(names):
        key = re.sub(r"[^A-Za-z0-9_]", "_", str(name)) or f"{prefix}_{i}"
        if not key[0].isalpha():
            key = f"{prefix}_{key}"
        while key in keys:
            key = f"{key}_{i}"
        keys.append(key)
    return keys
