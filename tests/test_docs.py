"""The documentation: the site builds strictly and offline, the architecture page matches the tree, and the
command lines the docs show parse with the parsers they name."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
ROOMS = ("styledrop", "app", "worker")


def test_the_site_builds_strictly_and_offline(tmp_path):
    """`mkdocs build --strict`: a broken link, a missing page or a nav entry without its file fails. Any
    attempt to fetch from the network fails too: the proxies point at a closed port."""
    site = tmp_path / "site"
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": "",
           "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not a build warning
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                             str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr

    cli = (site / "cli" / "index.html").read_text()
    for command in ("styledrop train", "styledrop generate", "styledrop select", "styledrop serve"):
        assert command in cli, f"the generated CLI reference lacks {command}"
    assert "--adapter-guidance" in cli and "cli-reference" not in cli

    remote = re.compile(r"<(?:script|img)\b[^>]*\bsrc=\"(?:https?:)?//|<link\b[^>]*\bhref=\"(?:https?:)?//"
                        r"|@import\s+url\(\"?(?:https?:)?//")
    fetched = [str(p.relative_to(site)) for p in site.rglob("*") if p.suffix in (".html", ".css")
               and remote.search(p.read_text(errors="replace"))]
    assert not fetched, f"pages that would load something from another site: {fetched}"


# --- the architecture page ----------------------------------------------------------------------------------

def _tree() -> tuple[set[str], set[str]]:
    """(modules, packages) of the three rooms, as repository paths; __init__.py is its package's heading."""
    modules, packages = set(), set()
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if "__pycache__" in rel:
                continue
            if path.name == "__init__.py":
                packages.add(rel.rsplit("/", 1)[0] + "/")
            else:
                modules.add(rel)
    return modules, packages


def _page() -> tuple[dict[str, str], set[str], list[str]]:
    """The architecture page's module lines ({path: the heading it sits under}), its package headings, and
    the paths named in its "Around the code" section."""
    lines, headings, around = {}, set(), []
    heading, section = None, None
    for line in (DOCS / "architecture.md").read_text().splitlines():
        if line.startswith("## "):
            section, heading = line[3:].strip(), None
        elif match := re.match(r"### `([^`]+/)`\s*$", line):
            heading = match.group(1)
            assert heading not in headings, f"architecture.md: two headings for {heading}"
            headings.add(heading)
        elif match := re.match(r"- `([^`]+)`", line):
            if section == "Around the code":
                around += [p for p in re.findall(r"`([^` ]+)`", line.split(":", 1)[0])]
            elif heading is not None:
                path = match.group(1)
                assert path not in lines, f"architecture.md: two lines for {path}"
                lines[path] = heading
    return lines, headings, around


def _architecture_problems(modules: set[str], packages: set[str]) -> list[str]:
    lines, headings, _ = _page()
    problems = []
    if missing := sorted(modules - set(lines)):
        problems.append(f"modules without their line in docs/architecture.md: {missing}")
    if gone := sorted(set(lines) - modules):
        problems.append(f"docs/architecture.md describes modules that do not exist: {gone}")
    if headings != packages:
        problems.append(f"packages without a heading: {sorted(packages - headings)}; headings for no package: "
                        f"{sorted(headings - packages)}")
    if misplaced := sorted(path for path, heading in lines.items() if path.rsplit("/", 1)[0] + "/" != heading):
        problems.append(f"lines under another package's heading: {misplaced}")
    return problems


def test_the_architecture_page_has_one_line_per_module():
    problems = _architecture_problems(*_tree())
    assert not problems, "\n".join(problems)


def test_the_architecture_check_can_fail():
    """A module added without a line, a line whose module went away, a package without a heading: each is
    reported."""
    modules, packages = _tree()
    assert any("worker/new_module.py" in p for p in _architecture_problems(modules | {"worker/new_module.py"},
                                                                           packages))
    assert any("worker/tasks.py" in p for p in _architecture_problems(modules - {"worker/tasks.py"}, packages))
    assert any("app/rooms/" in p for p in _architecture_problems(modules, packages | {"app/rooms/"}))


def test_the_architecture_page_names_only_what_exists():
    _, _, around = _page()
    assert around, "the 'Around the code' section is empty or was renamed"
    absent = [p for p in around if not (ROOT / p).exists()]
    assert not absent, f"docs/architecture.md names paths that do not exist: {absent}"


# --- the command lines the docs show ------------------------------------------------------------------------

def _commands() -> list[tuple[str, list[str]]]:
    """Every command line in a bash block of README.md and docs/*.md, continuation lines joined and comments
    dropped, as (file, argv)."""
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for command in block.replace("\\\n", " ").splitlines():
                argv = shlex.split(command, comments=True)
                if argv:
                    found.append((page.relative_to(ROOT).as_posix(), argv))
    return found


class _Parsed(Exception):
    pass


def _parse_only(monkeypatch) -> None:
    """Make every ArgumentParser stop right after parsing, so a program's main() only checks its arguments."""
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)


def _entry(argv: list[str]) -> tuple[str, list[str]] | None:
    """The Python program a documented command runs (module name, its arguments), or None for other tools."""
    while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):  # STYLEDROP_MODEL=tiny ./scripts/run
        argv = argv[1:]
    if not argv:
        return None
    if argv[:3] == ["docker", "compose", "run"] and "python" in argv:
        argv = argv[argv.index("python"):]  # the command the container runs
    if argv[0] in ("./scripts/run", "styledrop", ".venv/bin/styledrop"):
        return "styledrop.cli", argv[1:] or ["serve"]
    if argv[0] in ("python", ".venv/bin/python") and len(argv) > 1:
        if argv[1] == "-m" and argv[2].startswith(("app.", "styledrop")):
            return argv[2], argv[3:]
        if argv[1].startswith("bench/") and argv[1].endswith(".py"):
            return argv[1][:-3].replace("/", "."), argv[2:]
    return None


def test_documented_commands_parse(monkeypatch):
    """Every `./scripts/run ...`, `styledrop ...`, `python -m app.admin ...` and `python bench/....py ...`
    line the docs show is accepted by the parser that runs it: no invented subcommand, flag or choice."""
    checked, refused = 0, []
    _parse_only(monkeypatch)
    for page, argv in _commands():
        entry = _entry(argv)
        if entry is None:
            continue
        module_name, args = entry
        module = importlib.import_module("styledrop.cli" if module_name == "styledrop" else module_name)
        monkeypatch.setattr(sys, "argv", [module_name, *args])
        try:
            if module_name == "styledrop.cli":
                module.build_parser().parse_args(args)
            else:
                module.main()
        except _Parsed:
            checked += 1
        except SystemExit as exc:
            refused.append(f"{page}: {shlex.join(argv)} (exit {exc.code})")
        else:
            refused.append(f"{page}: {shlex.join(argv)} (main() returned without parsing arguments)")
    assert not refused, "documented commands that their parser refuses:\n" + "\n".join(refused)
    assert checked >= 10, f"only {checked} documented commands found: has the docs' format changed?"


def test_the_readme_links_to_pages_that_exist():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text())
    assert links, "the README links into the docs"
    absent = [link for link in links if "://" not in link and not (ROOT / link).exists()]
    assert not absent, f"README.md links to files that do not exist: {absent}"


def test_pictures_stay_small():
    """Pictures are committed: each stays under 200 KB."""
    pictures = [p for p in (DOCS / "assets").rglob("*") if p.is_file()]
    assert pictures, "docs/assets/ holds the README's picture"
    large = [f"{p.relative_to(ROOT)}: {p.stat().st_size // 1024} KB" for p in pictures if p.stat().st_size > 200 * 1024]
    assert not large, f"pictures over 200 KB: {large}"
