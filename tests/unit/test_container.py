"""Container limits read from cgroup files (v2 and v1), written in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

from service import container


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_quota_and_memory(tmp_path: Path) -> None:
    _write(tmp_path, "cpu.max", "150000 100000")  # 1.5 CPUs: two threads may run
    _write(tmp_path, "memory.max", str(512 * 1024 * 1024))
    assert container.cpu_count(tmp_path) == min(2, len(os.sched_getaffinity(0)))
    assert container.memory_limit(tmp_path) == 512 * 1024 * 1024
    assert container.decode_budget(tmp_path) == 352 * 1024 * 1024
    _write(tmp_path, "memory.max", str(128 * 1024 * 1024))
    assert container.decode_budget(tmp_path) == 32 * 1024 * 1024  # a quarter, at least


def test_cgroup_v2_without_limits(tmp_path: Path) -> None:
    _write(tmp_path, "cpu.max", "max 100000")
    _write(tmp_path, "memory.max", "max")
    assert container.cpu_count(tmp_path) == len(os.sched_getaffinity(0))
    assert container.memory_limit(tmp_path) is None
    assert container.decode_budget(tmp_path) > 0  # half the machine's memory


def test_cgroup_v1(tmp_path: Path) -> None:
    _write(tmp_path, "cpu/cpu.cfs_quota_us", "50000")
    _write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    _write(tmp_path, "memory/memory.limit_in_bytes", str(256 * 1024 * 1024))
    assert container.cpu_count(tmp_path) == 1
    assert container.memory_limit(tmp_path) == 256 * 1024 * 1024
    _write(tmp_path, "cpu/cpu.cfs_quota_us", "-1")
    _write(tmp_path, "memory/memory.limit_in_bytes", str(0x7FFFFFFFFFFFF000))
    assert container.cpu_count(tmp_path) == len(os.sched_getaffinity(0))
    assert container.memory_limit(tmp_path) is None


def test_no_cgroup_files(tmp_path: Path) -> None:
    assert container.cpu_count(tmp_path) == len(os.sched_getaffinity(0))
    assert container.memory_limit(tmp_path) is None
