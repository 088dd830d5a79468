"""`styledrop` command line: train a style, generate with it, inspect it — no web app needed.

The parser is built in one place, `build_parser` (the CLI reference of the docs walks it). Each command group
is a module of this package with `ORDER`, its place in `styledrop --help`, and `register(subparsers)`, which
adds its commands, each with its `func`: adding a command group is adding a module. Commands import the engine
inside their functions, so `styledrop --help` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Sequence

from ..errors import StyleDropError

EXIT_USER_ERROR = 1


def command_groups() -> list[ModuleType]:
    """The modules of this package that add commands, in their `ORDER`."""
    modules = [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)
               if not info.name.startswith("_")]
    return sorted((m for m in modules if hasattr(m, "register")), key=lambda m: m.ORDER)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="styledrop", description="StyleDrop on aMUSEd: styles from one picture.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in command_groups():
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StyleDropError as exc:
        print(f"styledrop: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("styledrop: interrupted", file=sys.stderr)
        return 130
