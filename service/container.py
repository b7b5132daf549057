"""What the container this process runs in may use: CPUs and memory, from its cgroup.

`os.cpu_count()` is the node's CPUs, not the container's: a pod limited to 1 CPU on a 32-CPU
node would start 31 decoding threads. The CPU count is the smallest of the affinity mask and
the cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`); the memory limit is
v2 `memory.max` or v1 `memory.limit_in_bytes`, and the machine's memory without either.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")
# cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages) rather than "max".
_V1_UNLIMITED = 1 << 60
_PROCESS_RESERVE = 160 * 1024 * 1024


def cpu_count(root: Path = CGROUP) -> int:
    """CPUs this process may use at once (at least 1)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cpu_quota(root)
    if quota is not None:
        cpus = min(cpus or 1, max(1, math.ceil(quota)))
    return max(1, cpus or 1)


def memory_limit(root: Path = CGROUP) -> int | None:
    """The container's memory limit in bytes; None when it has none."""
    v2 = _read(root / "memory.max")
    if v2 is not None:
        return None if v2 == "max" else int(v2)
    v1 = _read(root / "memory" / "memory.limit_in_bytes")
    if v1 is not None and int(v1) < _V1_UNLIMITED:
        return int(v1)
    return None


def decode_budget(root: Path = CGROUP) -> int:
    """The default byte budget for photo decoding in one gateway process: the container's
    memory limit less what the process needs besides (~90 MB idle, plus request buffers), at
    least a quarter of the limit; half the machine's memory when there is no limit. A 512 MiB
    pod gets 352 MiB, enough for one 40 MP RGB photo (~315 MiB while cleaned)."""
    limit = memory_limit(root)
    if limit is None:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    return max(limit // 4, limit - _PROCESS_RESERVE)


def _cpu_quota(root: Path) -> float | None:
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    quota_v1 = _read(root / "cpu" / "cpu.cfs_quota_us")
    period_v1 = _read(root / "cpu" / "cpu.cfs_period_us")
    if quota_v1 is None or period_v1 is None or int(quota_v1) <= 0:
        return None
    return int(quota_v1) / int(period_v1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None
