"""`styledrop serve`: StyleDrop Studio (API, worker, database, queue) on this machine."""

from __future__ import annotations

import argparse
import sys

from ..errors import StyleDropError

ORDER = 70


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run StyleDrop Studio (API, worker, database, queue) on this machine",
                       description="Start the web API, one worker, SQLite and an embedded Redis; Ctrl-C stops.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default $STYLEDROP_PORT or 8000")
    p.add_argument("--data", default=None, help="data folder (default $STYLEDROP_DATA or ./data)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Hand over to the web app's launcher (app.runner, console script `styledrop-serve`) in this process's
    place: the engine never imports web code, and Ctrl-C/SIGTERM reach the launcher directly."""
    import importlib.util
    import os

    if importlib.util.find_spec("app") is None:
        raise StyleDropError("The web app (package `app`) is not installed next to the engine: install the whole "
                             "project (pip install -e .) to use `styledrop serve`.")
    command = [sys.executable, "-m", "app.runner", "--host", args.host]
    if args.port is not None:
        command += ["--port", str(args.port)]
    if args.data:
        command += ["--data", args.data]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
    return 0  # not reached
