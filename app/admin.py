"""Administration from the shell: `python -m app.admin token NAME` prints a new API token for user NAME."""

from __future__ import annotations

import argparse
import sys

from .db import session_factory
from .migrate import upgrade
from .settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("token", help="create an API token for a user (created if missing)")
    tok.add_argument("user")
    tok.add_argument("--name", default="", help="a label for the token")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    args = parser.parse_args(argv)
    settings = get_settings()
    upgrade(settings)
    if args.command == "token":
        from .auth import create_token

        with session_factory(settings)() as session:
            print(create_token(session, args.user, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
