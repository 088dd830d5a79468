"""Child processes that never outlive the process that started them.

`styledrop serve` starts a Celery worker and a Redis server. Killed with SIGKILL (or by the OOM killer),
serve cannot stop them; left alone they would run on as orphans, and after a restart the orphan worker would
go on training a round the new worker had resumed. On Linux the kernel sends the child a signal when its
parent dies (prctl PR_SET_PDEATHSIG), set in the child between fork and exec.

PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not only the process: start such
children from a thread that lives as long as the process needs them (the main thread, or a supervisor
thread that is stopped only after its child).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

# Loaded before any fork: the function run in the child must not import or allocate much.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True) \
    if sys.platform.startswith("linux") else None


def supported() -> bool:
    return _libc is not None


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A Popen preexec_fn: the child gets `sig` when this process dies. None where the OS has no such thing."""
    if _libc is None:
        return None
    parent = os.getpid()
    prctl = _libc.prctl

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died between fork and prctl: no signal will come
            os.kill(os.getpid(), int(sig))

    return preexec
