"""Administration from the shell.

`python -m app.admin user NAME` makes an account (asks for its password; the way to add people when
STYLEDROP_SIGNUP=closed) or sets a new password; `python -m app.admin token NAME` prints a new API token.
"""

from __future__ import annotations

import argparse
import sys

from .infra.db import session_factory
from .infra.migrate import upgrade
from .settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    tok = sub.add_parser("token", help="create an API token for a user (created if missing)")
    tok.add_argument("user")
    tok.add_argument("--name", default="", help="a label for the token")
    usr = sub.add_parser("user", help="create an account, or set the password of an existing one")
    usr.add_argument("user")
    usr.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    sub.add_parser("migrate", help="upgrade the database to the latest schema")
    args = parser.parse_args(argv)
    settings = get_settings()
    upgrade(settings)
    if args.command == "token":
        from .security.accounts import create_token

        with session_factory(settings)() as session:
            print(create_token(session, args.user, args.name))
    if args.command == "user":
        return _user(settings, args.user, args.password_stdin)
    return 0


def _user(settings, name: str, from_stdin: bool) -> int:  # noqa: ANN001
    import getpass

    from sqlalchemy import select

    from .domain.models import User
    from .security.accounts import AccountError, create_account, normalize_name, set_password

    password = sys.stdin.readline().rstrip("\n") if from_stdin else getpass.getpass(f"Password for {name}: ")
    with session_factory(settings)() as session:
        try:
            user = session.scalar(select(User).where(User.name == normalize_name(name)))
            if user is None:
                user = create_account(session, name, password)
                print(f"Created user {user.name}; they can log in now.")
            else:
                set_password(session, user, password)
                print(f"Set a new password for {user.name}.")
        except AccountError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
