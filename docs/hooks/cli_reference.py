"""MkDocs hook: the command-line reference (docs/cli.md), generated from the `styledrop` parser at build time.

The page holds a marker line, `<!-- cli-reference -->`; this hook replaces it with one section per subcommand
(usage, description, every argument with its default and help), read from the argparse parser the CLI itself
runs, so the reference cannot drift from the code. The engine's CLI imports no torch at module level, so
building the docs needs only the `docs` extra and the project itself.
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # a checkout that is not installed still builds its own docs
    sys.path.insert(0, str(ROOT))

from styledrop.cli import build_parser  # noqa: E402  the one line to change if the parser moves

MARKER = "<!-- cli-reference -->"
USAGE_WIDTH = 80  # fixed, so that the page does not depend on the terminal that built it


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render(build_parser()))


def render(parser: argparse.ArgumentParser) -> str:
    """Markdown for every subcommand of `parser`, in the order `styledrop --help` lists them."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in subparsers._choices_actions}
    sections = []
    for name, sub in subparsers.choices.items():
        sections.append(_command(f"{parser.prog} {name}", sub, helps.get(name, "")))
    return "\n\n".join(sections) + "\n"


def _command(title: str, parser: argparse.ArgumentParser, summary: str) -> str:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=USAGE_WIDTH)
    lines = [f"### `{title}`", ""]
    if summary:
        lines += [_sentence(summary), ""]
    if parser.description and parser.description.rstrip(".") != summary.rstrip("."):
        lines += [_text(parser.description), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    rows = [action for action in parser._actions if not isinstance(action, argparse._HelpAction)
            and action.help != argparse.SUPPRESS]
    if rows:
        lines += ["| argument | default | what |", "| --- | --- | --- |"]
        lines += [f"| {_names(a)} | {_default(a, parser)} | {_cell(_help(a))} |" for a in rows]
    return "\n".join(lines)


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        label = action.metavar if isinstance(action.metavar, str) else action.dest
        return f"`{label}`" + (" …" if action.nargs in ("+", "*") else "")
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return f"`{flags}`"
    if isinstance(action.metavar, tuple):
        metavar = " ".join(action.metavar)
    else:
        metavar = action.metavar or action.dest.upper()
    if action.choices:
        metavar = "{" + ",".join(str(c) for c in action.choices) + "}"
    if action.nargs in ("+", "*"):
        metavar += " …"
    return f"`{flags} {metavar}`"


def _default(action: argparse.Action, parser: argparse.ArgumentParser) -> str:
    for group in parser._mutually_exclusive_groups:
        if action in group._group_actions:
            if group.required:
                return "required: one of " + ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
            return "not with " + ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions if a is not action)
    if action.required:
        return "required"
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    if isinstance(action.default, (list, tuple)):
        return " ".join(f"`{v}`" for v in action.default)
    return f"`{action.default}`"


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(" in text:
        text = text % {**vars(action), "prog": ""}
    return text


def _sentence(text: str) -> str:
    text = _text(text)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _text(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False)


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")
