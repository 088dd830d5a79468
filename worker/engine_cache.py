"""One base model per worker process, loaded on first use and kept between tasks.

Loaded lazily inside a task, i.e. in the process that runs tasks (the prefork child, or the solo worker),
never in a parent before it forks: CUDA must not be initialised before fork.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

log = logging.getLogger(__name__)
_cache: dict[str, Any] = {}
_lock = threading.Lock()


def device() -> Any:
    from styledrop.models import default_device

    return os.environ.get("STYLEDROP_DEVICE") or default_device()


def torch_threads() -> int:
    """Intra-op threads for this process: STYLEDROP_TORCH_THREADS, else the cores this process may really
    run on (its CPU affinity, which containers and taskset narrow), not the machine's count: more threads
    than cores make every step wait for a descheduled thread."""
    configured = os.environ.get("STYLEDROP_TORCH_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores)


def _set_threads() -> None:
    import torch

    if torch.get_num_threads() != (threads := torch_threads()):
        log.info("torch: %s intra-op threads (was %s)", threads, torch.get_num_threads())
        torch.set_num_threads(threads)


def components(source: str) -> Any:
    """The engine's Components for a model source (hub id, folder or preset), cached per process."""
    with _lock:
        if not _cache:
            _set_threads()
        if source not in _cache:
            from styledrop.models import load_components  # flushes CPU denormals itself

            log.info("loading base model %s on %s", source, device())
            _cache[source] = load_components(source, device())
        return _cache[source]


def evict(source: str | None = None) -> None:
    """Forget a model (after a failure, an adapter may still be attached to it)."""
    with _lock:
        if source is None:
            _cache.clear()
        else:
            _cache.pop(source, None)
