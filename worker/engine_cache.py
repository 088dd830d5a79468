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


def components(source: str) -> Any:
    """The engine's Components for a model source (hub id, folder or preset), cached per process."""
    with _lock:
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
