"""Garbage-collector settings for a serving API process (called once, before it serves).

Why: a stream relays each event to every client of a job from one event loop. CPython's full
(generation-2) collections stop that loop for time proportional to the whole heap; measured
with 1000 clients on two cores (bench/live_paths.py relay) they took 70-160 ms, several times
per half minute, and every client of an event caught behind one waited that long.

- `gc.freeze()` after start-up moves the heap built by imports and app construction (modules,
  classes, pydantic schemas, routes: most objects) out of every later collection; it is
  never garbage, so nothing is lost.
- Older generations are collected less often: a fan-out keeps thousands of short-lived
  objects (the 1000 pending sends) alive at once, so young collections mid-fan-out promote
  them; with CPython's defaults a full collection then ran every few seconds (~60 ms with
  1000 clients connected, even with the start-up heap frozen). Now a full
  collection runs after 25 x 1000 young ones (~17 M allocations): still collected, so cyclic
  garbage that reached the old generation is freed, only later; that memory is the price.
"""

from __future__ import annotations

import gc

# (generation 0 allocations, generation 0 collections per generation 1 collection,
#  generation 1 collections per full collection); CPython's defaults are (700, 10, 10).
SERVING_THRESHOLDS = (700, 25, 1000)


def tune_for_serving() -> None:
    """Freeze the start-up heap and collect the older generations less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
