"""What the benchmark scripts say about the machine they ran on."""

from __future__ import annotations

import platform


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags(wanted=("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")) -> list[str]:
    """Which of the SIMD flags that decide CPU speed /proc/cpuinfo lists."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [w for w in wanted if w in have]
    except OSError:
        pass
    return []


def machine_summary() -> str:
    """CPU model, its SIMD flags and core count, for a benchmark's header."""
    import os

    return f"{cpu_name()} ({', '.join(cpu_flags()) or 'no AVX2'}; {os.cpu_count()} cores)"
