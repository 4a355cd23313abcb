"""Keep freed memory inside the process, so large tensors are not faulted in anew each step.

glibc serves allocations above its mmap threshold (at most 32 MiB) with fresh ``mmap`` pages and
gives them back on ``free``; it also trims the top of the heap past its trim threshold. A VAE
step or a bound evaluation allocates and frees the same large tensors over and over, so every
one of them is page-faulted in again: on this project's 2-core machines that is where much of
the time goes (measured on a sketch-rnn step of 100 sketches of 251 points, a public PyTorch port:
41% of its CPU time in the kernel, about 300 M page faults in 19 minutes; the environment
variables below took the step from about 16.5 s to 6.4 s). Setting M_MMAP_MAX = 0, a huge
M_TRIM_THRESHOLD and a generous M_TOP_PAD through ``mallopt`` (glibc's mallopt(3); the same as
``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` in the environment) keeps
the pages in the process; results are bit-identical, only the resident memory stays at its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX = -1, -2, -4
_done = False


def keep_freed_memory() -> bool:
    """Tune glibc's allocator as described above; returns False where there is no glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(
        mallopt(option, value)
        for option, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 256 * 2**20))
    )
    _done = ok
    return ok
