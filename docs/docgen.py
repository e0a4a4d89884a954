"""Shared by the docs/make_*.py scripts: replace generated blocks inside Markdown files.

A generated block sits between two HTML comments, which Markdown does not show::

    <!-- BEGIN GENERATED states-diagram: python3 docs/make_state_diagram.py -->
    ...
    <!-- END GENERATED states-diagram -->

Everything outside the markers is prose written by hand; the scripts only rewrite the
inside. ``--check`` reports stale blocks (exit status 1) without writing, and
tests/test_docs.py runs the same comparison.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # so the scripts import this checkout's reactor

#: {file name in docs/: {block name: block text}}
Blocks = Dict[str, Dict[str, str]]


def _pattern(name: str) -> "re.Pattern[str]":
    return re.compile(
        r"(<!-- BEGIN GENERATED %s:[^\n]*-->\n)(.*?)(<!-- END GENERATED %s -->)" % (re.escape(name), re.escape(name)),
        re.DOTALL,
    )


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with block ``name`` holding ``content``. Raises KeyError if the markers are missing."""
    pattern = _pattern(name)
    if not pattern.search(text):
        raise KeyError("no markers for generated block %r" % name)
    body = content if content.endswith("\n") else content + "\n"
    return pattern.sub(lambda match: match.group(1) + body + match.group(3), text, count=1)


def stale_files(blocks: Blocks) -> List[str]:
    """Names of files in docs/ whose generated blocks differ from ``blocks``."""
    stale = []
    for file_name, contents in blocks.items():
        text = (DOCS / file_name).read_text(encoding="utf-8")
        expected = text
        for name, content in contents.items():
            expected = replace_block(expected, name, content)
        if expected != text:
            stale.append(file_name)
    return stale


def write(blocks: Blocks) -> List[str]:
    """Rewrite the blocks in place; return the names of files that changed."""
    changed = []
    for file_name, contents in blocks.items():
        path = DOCS / file_name
        text = path.read_text(encoding="utf-8")
        new = text
        for name, content in contents.items():
            new = replace_block(new, name, content)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(file_name)
    return changed


def main(render: Callable[[], Blocks], argv: Optional[Sequence[str]] = None) -> int:
    """Command line of a make_*.py script: write the blocks, or ``--check`` them."""
    args = list(sys.argv[1:] if argv is None else argv)
    blocks = render()
    if args == ["--check"]:
        stale = stale_files(blocks)
        for name in stale:
            print("docs/%s is out of date; run %s" % (name, Path(sys.argv[0]).name), file=sys.stderr)
        return 1 if stale else 0
    if args:
        print("usage: %s [--check]" % Path(sys.argv[0]).name, file=sys.stderr)
        return 2
    for name in write(blocks):
        print("updated docs/%s" % name)
    return 0


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; ``|`` inside cells is escaped."""

    def cells(values: Sequence[str]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(header), "|" + "|".join("---" for _ in header) + "|"]
    lines.extend(cells(row) for row in rows)
    return "\n".join(lines) + "\n"
