"""The docs cannot drift from the code.

- Generated blocks (state diagram, settings and status-code tables) must equal what the
  docs/make_*.py scripts produce from the code now.
- Every ``reactor.module.name`` in backticks in docs/*.md must name a real module or
  attribute (or a logger the code creates), every backticked repository path must exist,
  and every relative Markdown link must point at a file.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from typing import List, Set

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GENERATORS = ["make_state_diagram", "make_tables", "make_supervisor_diagram"]

REFERENCE = re.compile(r"`(reactor(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`")
PATH = re.compile(r"`((?:reactor|tests|docs|resources|\.ci)/[\w./-]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _generator(name: str):
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    return importlib.import_module(name)


def _pages() -> List[Path]:
    return sorted(DOCS.glob("*.md"))


@pytest.mark.parametrize("name", GENERATORS)
def test_generated_blocks_match_the_code(name):
    generator = _generator(name)
    docgen = _generator("docgen")
    stale = docgen.stale_files(generator.render())
    assert not stale, "docs/%s out of date: run python3 docs/%s.py and commit the result" % (stale, name)


def test_state_diagram_covers_every_move():
    from reactor.connection import NEXT, ConnState

    text = (DOCS / "states.md").read_text(encoding="utf-8")
    for state, targets in NEXT.items():
        assert 'state "%s" as %s' % (state.value, state.name) in text
        for target in targets:
            assert "    %s --> %s\n" % (state.name, target.name) in text
    assert len(re.findall(r"^    \w+ --> \w+$", text, re.MULTILINE)) == sum(map(len, NEXT.values()))
    assert ConnState.CLOSED.name + " --> [*]" in text


def test_state_table_scan_still_finds_the_timeouts():
    """If connection.py changes how states arm timers, the generator must learn it too."""
    table = _generator("make_state_diagram").render_table()
    row = next(line for line in table.splitlines() if line.startswith("| `reading-headers`"))
    assert "`header_timeout_s`" in row, "update the _arm scan in docs/make_state_diagram.py"


def test_status_code_scan_finds_known_senders():
    codes = _generator("make_tables").status_codes()
    assert "reactor.server.Server._refuse" in codes[503][0]
    assert "reactor.connection._CONTINUE" in codes[100][0]
    assert 408 in codes and 404 in codes and 201 in codes


def _logger_names() -> Set[str]:
    names = set()
    for path in (REPO / "reactor").rglob("*.py"):
        names.update(re.findall(r"getLogger\(\"([\w.]+)\"\)", path.read_text(encoding="utf-8")))
    return names


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_code_references_resolve(page):
    loggers = _logger_names()
    text = page.read_text(encoding="utf-8")
    broken = sorted(
        {ref for ref in REFERENCE.findall(text) if ref not in loggers and not _resolves(ref)}
    )
    assert not broken, "%s names code that does not exist: %s" % (page.name, broken)


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_paths_and_links_exist(page):
    text = page.read_text(encoding="utf-8")
    missing = [path for path in PATH.findall(text) if not (REPO / path.rstrip("/")).exists()]
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # an absolute URL or an anchor on the same page
        if not (page.parent / target.split("#", 1)[0]).exists():
            missing.append(target)
    assert not missing, "%s points at files that do not exist: %s" % (page.name, missing)


def test_reference_checker_catches_drift():
    assert _resolves("reactor.connection.Connection.set_state")
    assert _resolves("reactor.handlers.status.prefers_html")
    assert not _resolves("reactor.connection.Connection.no_such_method")
    assert not _resolves("reactor.no_such_module")
    assert "reactor.access" in _logger_names()


def _kinds(lines):
    """Trace lines reduced to what they say: digits and timestamps dropped."""
    kinds = set()
    for line in lines:
        match = re.match(r"^ *\d+\.\d{3} (#\d+|--) (.*)$", line)
        if match:
            kinds.add(re.sub(r"\d+(\.\d+)?", "N", match.group(2)))
    return kinds


def test_trace_and_status_samples_match_what_the_code_prints_now():
    """docs/trace.md and docs/status.md show samples; rerunning must give the same kinds of lines."""
    generator = _generator("make_trace_sample")
    lines, status = generator.capture()
    trace_page = (DOCS / "trace.md").read_text(encoding="utf-8")
    block = trace_page.split("<!-- BEGIN GENERATED trace-sample", 1)[1].split("<!-- END GENERATED", 1)[0]
    assert _kinds(block.splitlines()) == _kinds(lines), "run python3 docs/make_trace_sample.py"

    def keys(value, prefix=""):
        if isinstance(value, dict):
            return {k for key, item in value.items() for k in keys(item, prefix + key + ".")} | {prefix}
        return {prefix}

    status_page = (DOCS / "status.md").read_text(encoding="utf-8")
    sample = status_page.split("```json\n", 1)[1].split("```", 1)[0]
    assert keys(json.loads(sample)) == keys(status), "run python3 docs/make_trace_sample.py"


def _number(text: str):
    """``"10 s"`` → 10.0, ``"1048576 (1 MiB)"`` → 1048576.0, ``"32 MiB"`` → 33554432.0; None if no number."""
    match = re.match(r"\s*([0-9][0-9_,.]*)\s*(KiB|MiB|GiB)?", text)
    if match is None:
        return None
    value = float(match.group(1).replace(",", "").replace("_", ""))
    scale = {"KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}.get(match.group(2) or "", 1)
    return value * scale


def test_readme_limits_table_matches_the_command_line_defaults():
    """README's table of limits is hand-written prose around numbers: check every number."""
    from reactor.cli import build_parser

    defaults = {}
    for action in build_parser()._actions:
        for option in action.option_strings:
            defaults[option] = action.default
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Limits and timeouts") : text.index("## Command line")]
    rows = re.findall(r"^\| `(--[a-z-]+)` \| ([^|]+) \|", section, re.M)
    assert len(rows) >= 12, "the limits table moved or changed shape"
    checked = 0
    for flag, shown in rows:
        assert flag in defaults, "README lists %s, which the command line does not have" % flag
        number = _number(shown)
        if number is None or defaults[flag] is None:
            continue  # a rule, not a number (e.g. --max-connections from the fd limit)
        assert number == float(defaults[flag]), "README says %s defaults to %s; the code says %r" % (
            flag, shown.strip(), defaults[flag])
        checked += 1
    assert checked >= 12
