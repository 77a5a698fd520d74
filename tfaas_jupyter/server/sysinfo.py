"""Machine figures for /status in the original's shape (CPU, Load, Memory), stdlib only."""

from __future__ import annotations

import os
import threading
from typing import Any

_cpu_lock = threading.Lock()
_last_cpu: list[tuple[int, int]] | None = None


def _read_cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per cpu from /proc/stat; empty where there is none."""
    try:
        with open("/proc/stat") as fh:
            lines = [ln for ln in fh if ln.startswith("cpu") and ln[3:4].isdigit()]
    except OSError:
        return []
    times = []
    for line in lines:
        fields = [int(x) for x in line.split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        total = sum(fields[:8])
        times.append((total - idle, total))
    return times


def cpu_percent() -> list[float]:
    """Per-cpu busy percentage since the previous call (since boot on the first)."""
    global _last_cpu
    now = _read_cpu_times()
    with _cpu_lock:
        before = _last_cpu if _last_cpu and len(_last_cpu) == len(now) else [(0, 0)] * len(now)
        _last_cpu = now
    result = []
    for (busy0, total0), (busy1, total1) in zip(before, now):
        span = total1 - total0
        result.append(round(100.0 * (busy1 - busy0) / span, 2) if span > 0 else 0.0)
    return result


def _meminfo(root: str = "/") -> dict[str, int]:
    info: dict[str, int] = {}
    try:
        with open(os.path.join(root, "proc/meminfo")) as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[key] = int(parts[0]) * 1024
    except OSError:
        pass
    return info


def _usage(total: int, free: int) -> dict[str, Any]:
    used = max(total - free, 0)
    return {
        "total": total,
        "free": free,
        "used": used,
        "usedPercent": round(100.0 * used / total, 2) if total else 0.0,
    }


def machine_status() -> dict[str, Any]:
    """CPU, Load and Memory as the original's /status reports them."""
    try:
        load1, load5, load15 = os.getloadavg()
    except OSError:
        load1 = load5 = load15 = 0.0
    mem = _meminfo()
    available = mem.get("MemAvailable", mem.get("MemFree", 0))
    return {
        "CPU": cpu_percent(),
        "Load": {"load1": load1, "load5": load5, "load15": load15},
        "Memory": {
            "Virtual": _usage(mem.get("MemTotal", 0), available),
            "Swap": _usage(mem.get("SwapTotal", 0), mem.get("SwapFree", 0)),
        },
    }


def _read_limit(path: str) -> int | None:
    """A cgroup memory limit file's value in bytes; ``None`` for "max", absent or absurd."""
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    if not text.isdigit():
        return None  # "max": no limit
    value = int(text)
    return value if 0 < value < 1 << 60 else None  # v1 says "no limit" with ~2**63


def _cgroup_limits(root: str) -> list[int]:
    """The memory limits of this process's cgroup and its ancestors (v2), or its v1 limit."""
    limits: list[int] = []
    cgroups = os.path.join(root, "sys/fs/cgroup")
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as fh:
            entries = [line.rstrip("\n").split(":", 2) for line in fh]
    except OSError:
        entries = []
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, path = entry
        if controllers == "":  # v2 unified hierarchy: every level may limit
            parts = [p for p in path.split("/") if p]
            for depth in range(len(parts), -1, -1):
                limit = _read_limit(os.path.join(cgroups, *parts[:depth], "memory.max"))
                if limit is not None:
                    limits.append(limit)
        elif "memory" in controllers.split(","):
            for base in (os.path.join(cgroups, "memory", path.lstrip("/")),
                         os.path.join(cgroups, "memory")):
                limit = _read_limit(os.path.join(base, "memory.limit_in_bytes"))
                if limit is not None:
                    limits.append(limit)
                    break
    return limits


def memory_limit(root: str = "/") -> int:
    """Bytes of memory this process may use: its cgroup's limit (v2 memory.max, or v1
    memory.limit_in_bytes) or, without one, the machine's MemTotal (0 if unknown).
    ``root``: where /proc and /sys are (for tests)."""
    total = _meminfo(root).get("MemTotal", 0)
    return min([*_cgroup_limits(root), *([total] if total else [])], default=0)


def oom_kills(root: str = "/") -> int | None:
    """How many processes the kernel's out-of-memory killer ended in this process's
    cgroup (v2 ``memory.events``, v1 ``memory.oom_control``: ``oom_kill N``), or None
    where that is not readable. A rise while a process died says it was that."""
    cgroups = os.path.join(root, "sys/fs/cgroup")
    try:
        with open(os.path.join(root, "proc/self/cgroup")) as fh:
            entries = [line.rstrip("\n").split(":", 2) for line in fh]
    except OSError:
        return None
    for entry in entries:
        if len(entry) != 3:
            continue
        _, controllers, path = entry
        if controllers == "":
            candidates = [os.path.join(cgroups, path.lstrip("/"), "memory.events")]
        elif "memory" in controllers.split(","):
            candidates = [os.path.join(cgroups, "memory", path.lstrip("/"), "memory.oom_control"),
                          os.path.join(cgroups, "memory", "memory.oom_control")]
        else:
            continue
        for candidate in candidates:
            try:
                with open(candidate) as fh:
                    for line in fh:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and value.strip().isdigit():
                            return int(value)
            except OSError:
                continue
    return None
