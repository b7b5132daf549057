"""The serving process's garbage collector, tuned for a request loop.

A try-on request allocates a few hundred short-lived container objects (coroutines, dicts,
Structs), almost all freed by reference counting. With CPython's default first-generation
threshold (700 net allocations) a collection still runs every couple of requests, and each one
that reaches the oldest generation walks the whole start-up heap (Litestar's routes, the OpenAPI
schema, every imported module): that showed as 30+ ms p99 spikes under load. Freezing the heap
built at start-up takes it out of every later collection, and a larger first threshold makes
collections rarer; cyclic garbage is still collected, a little later. Measured in
docs/benchmarks.md §3 (`bench/gateway_rps.py`).
"""

from __future__ import annotations

import gc


def tune_for_serving(threshold: int) -> None:
    """Freeze what start-up built and collect after `threshold` net allocations (0: leave
    CPython's defaults, and nothing frozen)."""
    if threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)
