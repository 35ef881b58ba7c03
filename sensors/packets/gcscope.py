"""GC scope: fewer cyclic garbage collections while a capture is read.

Stage: sensors, packet sensor, around the reader's loop. The reader allocates several small
container objects per packet (packets, flow keys, documents), almost none of which form cycles;
with the default threshold (700 allocations) the young generation is collected thousands of
times a second and the long-lived flow table is walked again by the older generations.
bench/packets.py (200k generated packets, CPU time): 36k -> 53k packets/s with the first
threshold raised to 50,000, the same events. Memory: at most ~50,000 more young objects (a few
MB) before a collection.

Invariants: the process-wide threshold is raised while at least one reader is inside
`fewer_collections()` and put back as it was when the last one leaves (nested and interleaved
readers are counted); a threshold already higher, or collection switched off (0), is left alone.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000


class _Scope:
    depth = 0
    saved: tuple[int, int, int] = (0, 0, 0)


@contextmanager
def fewer_collections() -> Iterator[None]:
    if _Scope.depth == 0:
        _Scope.saved = gc.get_threshold()
        young, middle, old = _Scope.saved
        if 0 < young < YOUNG_THRESHOLD:
            gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    _Scope.depth += 1
    try:
        yield
    finally:
        _Scope.depth -= 1
        if _Scope.depth == 0:
            gc.set_threshold(*_Scope.saved)
