"""The C allocator's settings for an nnc process (the CLI's): keep freed memory for reuse.

The encoder allocates and frees arrays of 1-100 MB many times per image (the candidates'
words, scores and Gaussians of each shard). glibc serves allocations over its mmap threshold
(128 KiB, rising with use up to 32 MiB) with fresh mappings and trims the heap when a freed
top exceeds its trim threshold, so most of those arrays come back as new pages that the
kernel must fault in and zero: 20-30% of level-2 coding and a tenth of `nnc compress` as a
whole (kodim23: 3.2-3.5 s -> 3.0 s, the same bytes out). Raising both thresholds makes the
heap keep those pages; peak memory is unchanged, since nothing more is allocated at once.
Arrays over glibc's largest mmap threshold (32 MiB) still came as fresh mappings: the
refinement's activations at full resolution (kodim23: 50 MB each, several per pass) were
450,000 page faults and 1.0-1.4 s of system time per float32 compress. So mmap is not used
at all (M_MMAP_MAX 0; glibc still maps when the heap cannot grow): 170,000 faults, 0.5-0.7 s,
and 0.3-0.5 s less wall time (the same bytes), for a peak 15% higher (kodim23: 687 -> 800
MB), since freed arrays stay in the heap.

Every thread allocates from that one heap (M_ARENA_MAX 1): the encoder's first pass runs
on a thread of its own while torch imports (nnc/analysis.py), and with glibc's default of
one arena per thread its 300 MB would stay in that thread's arena, out of reach of the
refinement's arrays that follow (kodim23 float32: peak 1.05 GB against 0.81 GB).

Only the CLI calls this (a library should not change its host's allocator); elsewhere than
glibc it does nothing.
"""
from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1      # mallopt's parameters (malloc.h)
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_MMAP_MAX = -4
M_ARENA_MAX = -8
MMAP_THRESHOLD = 32 << 20  # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20        # grow the heap 64 MiB at a time (address space; pages come as used)
ARENAS = 1                # one heap for every thread (see above)


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True when it took."""
    try:
        # this process's own symbols, the C library's among them (ctypes.util's
        # find_library would cost 0.04 s of every command: it imports subprocess and runs
        # ldconfig)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(M_MMAP_MAX, 0)
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) and mallopt(M_TOP_PAD, TOP_PAD)
                and mallopt(M_ARENA_MAX, ARENAS))
