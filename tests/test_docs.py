"""The docs cannot drift from the code.

- Generated blocks (state diagram, settings and status-code tables) must equal what the
  docs/make_*.py scripts produce from the code now.
- Every ``reactor.module.name`` in backticks in docs/*.md must name a real module or
  attribute (or a logger the code creates), every backticked repository path must exist,
  and every relative Markdown link must point at a file.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GENERATORS = ["make_state_diagram", "make_tables", "make_supervisor_diagram", "make_websocket_diagram"]

REFERENCE = re.compile(r"`(reactor(?:\.[A-Za-z_][A-Za-z0-9_]*)+)(?:\(\))?`")
PATH = re.compile(r"`((?:reactor|tests|docs|resources|\.ci)/[\w./-]*)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CHAPTER = re.compile(r"^(\d+)\. \[([^]]+)\]\(([\w.-]+\.md)\)", re.MULTILINE)


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
            assert re.search(r"^    %s --> %s(: .+)?$" % (state.name, target.name), text, re.M)
    assert len(re.findall(r"^    \w+ --> \w+(: .+)?$", text, re.MULTILINE)) == sum(map(len, NEXT.values()))
    assert ConnState.CLOSED.name + " --> [*]" in text


def test_every_arrow_says_what_causes_it():
    """Every move is labelled, except into CLOSED where the note covers it; the analysis finds known causes."""
    from reactor.connection import NEXT, ConnState

    generator = _generator("make_state_diagram")
    words, anywhere = generator.edge_causes()
    for state, targets in NEXT.items():
        for target in targets:
            assert words.get((state, target)) or (target is ConnState.CLOSED and anywhere), (
                "nothing found that moves %s -> %s" % (state.value, target.value)
            )
    methods = generator.machine().causes()
    assert "data_received" in methods[(ConnState.IDLE, ConnState.READING_HEADERS)]
    assert "_on_timer" in methods[(ConnState.WRITING, ConnState.CLOSED)]  # the send timeout
    assert "_response_done" in methods[(ConnState.WRITING, ConnState.IDLE)]
    assert "run_in_pool" in methods[(ConnState.RESPONDING, ConnState.WRITING)]
    assert "_on_request_end" not in methods.get((ConnState.RESPONDING, ConnState.WRITING), set())


def test_state_table_scan_still_finds_the_timeouts():
    """If connection.py changes how states arm timers, the generator must learn it too."""
    table = _generator("make_state_diagram").render_table()
    row = next(line for line in table.splitlines() if line.startswith("| `reading-headers`"))
    assert "`header_timeout_s`" in row, "update the _arm scan in docs/make_state_diagram.py"


def test_status_code_scan_finds_known_senders():
    codes = _generator("make_tables").status_codes()
    assert "reactor.errors.busy" in codes[503][0]
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
    broken = sorted({ref for ref in REFERENCE.findall(text) if ref not in loggers and not _resolves(ref)})
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


# -- names of reactor/ written without "reactor." -------------------------------------------

SPAN = re.compile(r"`([^`\n]+)`")
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
NAME = re.compile(r"([A-Za-z_][\w.]*)(\(([^()]*)\))?")
FLAG = re.compile(r"(--[a-z][\w-]*)(?:[ =]\S+)?")
FILE_NAME = re.compile(r"\.(py|md|gz|html|txt|json|pem|jpg|png|css|toml|ini|cfg)$")
SERVER_COMMAND = re.compile(r"^(?:python3? -m reactor|reactor)(?= |$)")


class ReactorNames:
    """What reactor/ defines, read from its source and its imported modules.

    ``names``: every name a def, class, assignment, attribute store, keyword or slot
    creates anywhere; ``members``: {class name: the names it defines for its instances}
    (methods, class attributes, slots, ``self.x = ...``); ``classes`` and ``modules``: the
    runtime objects by their short names (``Connection``, ``server``).
    """

    def __init__(self) -> None:
        import ast
        import inspect
        import pkgutil

        import reactor

        self.names: Set[str] = set()
        self.members: Dict[str, Set[str]] = {}
        self.classes: Dict[str, list] = {}
        self.modules: Dict[str, list] = {}
        root = Path(reactor.__file__).parent
        trees = [ast.parse(path.read_text(encoding="utf-8")) for path in (DOCS / "examples").glob("*.py")]
        dotted = ["reactor"] + [info.name for info in pkgutil.walk_packages([str(root)], prefix="reactor.")]
        for name in dotted:
            module = importlib.import_module(name)
            self.modules.setdefault(name.rsplit(".", 1)[-1], []).append(module)
            for obj in vars(module).values():
                if inspect.isclass(obj) and obj.__module__ == name:
                    self.classes.setdefault(obj.__name__, []).append(obj)
            trees.append(ast.parse(Path(module.__file__).read_text(encoding="utf-8")))
        for tree in trees:  # chapter 0's examples too: its table names step 3's Connection.sock
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    self.names.add(node.name)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    self.names.add(node.id)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    self.names.add(node.attr)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    self.names.add(node.target.id)
                elif isinstance(node, (ast.keyword, ast.arg)) and node.arg:
                    self.names.add(node.arg)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier():
                    self.names.add(node.value)  # slots, JSON keys of the status page
                if isinstance(node, ast.ClassDef):
                    members = self.members.setdefault(node.name, set())
                    for inner in ast.walk(node):
                        if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                            members.add(inner.name)
                        elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                            members.add(inner.attr)  # self.x = ...
                        elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                            members.add(inner.id)
                        elif isinstance(inner, ast.AnnAssign) and isinstance(inner.target, ast.Name):
                            members.add(inner.target.id)

    def _has(self, cls: type, attribute: str) -> bool:
        return hasattr(cls, attribute) or any(attribute in self.members.get(k.__name__, ()) for k in cls.__mro__)

    def check(self, dotted: str) -> Optional[bool]:
        """True or False for a name that belongs to reactor/; None for one that does not look like it."""
        head, *rest = dotted.split(".")
        if head == "reactor" or FILE_NAME.search(dotted):
            return None  # checked by test_code_references_resolve; or a file name
        if rest and head in self.classes:
            return any(self._has(cls, rest[0]) for cls in self.classes[head])
        if rest and head in self.modules:
            for module in self.modules[head]:
                obj = module
                for attribute in rest:
                    if not hasattr(obj, attribute):
                        try:
                            obj = importlib.import_module("%s.%s" % (obj.__name__, attribute))
                            continue
                        except (ImportError, AttributeError):
                            break
                    obj = getattr(obj, attribute)
                else:
                    return True
            # `transport.start()`: an instance named after its module, as often in prose
            classes = [c for group in self.classes.values() for c in group if c.__module__.endswith("." + head)]
            return any(self._has(cls, rest[0]) for cls in classes)
        if rest:
            return None  # os.sendfile, ssl.SSLObject, gc.collect
        if dotted.startswith("_") and len(dotted) > 1 or re.fullmatch(r"[a-z][a-z0-9_]*_(s|bytes)", dotted):
            return dotted in self.names  # a private name, or a field with its unit
        return None


@functools.cache
def _reactor_names() -> ReactorNames:
    return ReactorNames()


@functools.cache
def _flags() -> "Tuple[Set[str], Set[str]]":
    """(options of python -m reactor, options of the repository's scripts: benchmarks, docs tools)."""
    from reactor.cli import build_parser

    ours = {option for action in build_parser()._actions for option in action.option_strings}
    scripts = set()
    for path in [*REPO.joinpath("tests", "benchmarks").glob("*.py"), *DOCS.glob("*.py")]:
        scripts.update(re.findall(r"[\"'](--[a-z][\w-]*)[\"']", path.read_text(encoding="utf-8")))
    return ours, scripts


def _call_names() -> Set[str]:
    """What a call written as ``name(...)`` may name besides reactor/: chapter 0's examples, the
    standard library's socket, os and builtins, bytes methods."""
    import builtins
    import os
    import socket

    names = set(dir(builtins)) | set(dir(os)) | set(dir(socket.socket)) | set(dir(bytes))
    for path in (DOCS / "examples").glob("*.py"):
        names.update(re.findall(r"\bdef (\w+)", path.read_text(encoding="utf-8")))
    return names


def broken_names(text: str) -> List[str]:
    """Backticked names in ``text`` that look like reactor/'s (a method, an attribute, a flag) and are not.

    Checked: ``Class.attribute`` and ``module.NAME`` for a class or module of reactor/; a
    private ``_name``; a field named with its unit (``header_timeout_s``); a call
    ``name(...)``; a ``--flag`` alone (unless another program's: "gunicorn's `--timeout`")
    and every flag of a ``python3 -m reactor ...`` command, in prose or in a sh block.
    """
    index = _reactor_names()
    ours, scripts = _flags()
    calls = None
    broken = []
    for block in FENCED.findall(text):
        for line in block.splitlines():
            if SERVER_COMMAND.match(line.strip()):
                broken.extend(flag for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", line) if flag not in ours)
    prose = FENCED.sub("", text)
    for match in SPAN.finditer(prose):
        span = match.group(1)
        if SERVER_COMMAND.match(span):
            broken.extend(flag for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", span) if flag not in ours)
            continue
        flag = FLAG.fullmatch(span)
        if flag:
            whose = re.search(r"\w's $", prose[max(0, match.start() - 40) : match.start()])
            if flag.group(1) not in ours | scripts and not whose:
                broken.append(span)
            continue
        name = NAME.fullmatch(span)
        if not name:
            continue
        verdict = _reactor_names().check(name.group(1))
        if verdict is None and name.group(2) is not None and "." not in name.group(1):
            if calls is None:
                calls = _call_names() | index.names
            manual_page = re.fullmatch(r"\d", name.group(3))  # accept(2): a system call's manual page
            verdict = None if manual_page else name.group(1) in calls
        if verdict is False:
            broken.append(span)
    return sorted(set(broken))


@pytest.mark.parametrize("page", _pages() + [REPO / "README.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_names_of_reactor_code_exist(page):
    """Names written without ``reactor.`` (``Connection._run``, `_flush`, ``--max-body-bytes``) must exist too."""
    broken = broken_names(page.read_text(encoding="utf-8"))
    assert not broken, "%s names code that does not exist: %s" % (page.name, broken)


def test_name_checker_catches_drift():
    text = (
        "`Connection.connection_lost`, `Server._spare_fd`, `server._ACCEPT_BATCH`, `_flush`, "
        "`header_timeout_s`, `start(protocol)`, `--max-body-bytes`, `os.sendfile`, `select`, `fork()`, "
        "`accept(2)`, gunicorn's `--timeout`, `parser.md`"
    )
    assert broken_names(text) == []
    stale = (
        "`Connection._connection_lost`, `Server._spare`, `server._ACCEPT_BATCHES`, `_flushes`, "
        "`header_timeout`, `header_timeouts_s`, `no_such_method()`, `--max-bodies`, `compress.NoSuchThing`"
    )
    assert broken_names(stale) == sorted(
        [
            "Connection._connection_lost",
            "Server._spare",
            "server._ACCEPT_BATCHES",
            "_flushes",
            "header_timeouts_s",
            "no_such_method()",
            "--max-bodies",
            "compress.NoSuchThing",
        ]
    )
    assert broken_names("```sh\npython3 -m reactor --port 8080 --tracing\n```\n") == ["--tracing"]


# -- shell blocks that start a server ------------------------------------------------------

SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
WAIT_LOOP = re.compile(r"^(?:until|while)\b.*;\s*do\b.*\bdone\b")


def _server_port(command: str) -> Optional[int]:
    """The port ``command`` starts a server on (reactor or one of chapter 0's), or None."""
    words = command.split()
    if SERVER_COMMAND.match(command) and not {"--help", "-h", "--version"} & set(words):
        port = re.search(r"--port[ =](\d+)", command)
        return int(port.group(1)) if port else 8080
    script = re.match(r"python3? (docs/examples/\w+\.py) (\d+)", command)
    if script and "create_server" in (REPO / script.group(1)).read_text(encoding="utf-8"):
        return int(script.group(2))
    return None


def unwaited_servers(text: str) -> List[str]:
    """Lines of ``text``'s sh blocks that start a server a request may race.

    A server started in the background (``&``) must be followed by a loop that waits
    until it listens on its port (``until curl -so /dev/null http://127.0.0.1:8081/; do
    sleep 0.1; done``). One started in the foreground never returns, so a command after
    it in the same block is for another terminal, and its comment must say so.
    """
    from test_readme import split_comment

    found = []
    for block in SH_BLOCK.findall(text):
        lines = [split_comment(line) for line in block.replace("\\\n", " ").splitlines() if line.strip()]
        for index, (command, comment) in enumerate(lines):
            port = _server_port(command)
            if port is None:
                continue
            rest = [later for later, _ in lines[index + 1 :] if later]
            if command.endswith("&"):
                waits = bool(rest) and WAIT_LOOP.match(rest[0]) and ":%d" % port in rest[0]
                if rest and not waits:
                    found.append(command)
            elif rest and "terminal" not in comment:
                found.append(command)
    return found


@pytest.mark.parametrize("page", _pages() + [REPO / "README.md"], ids=lambda p: str(p.relative_to(REPO)))
def test_shell_blocks_wait_for_the_server_they_start(page):
    """A pasted block must not send its first request before its server listens."""
    found = unwaited_servers(page.read_text(encoding="utf-8"))
    assert not found, "%s starts a server and asks it at once (wait until it listens first): %s" % (page.name, found)


def test_wait_checker_catches_a_race():
    race = "```sh\npython3 -m reactor --port 8083 --workers 2 &\ncurl -s http://127.0.0.1:8083/\nkill %1\n```\n"
    assert unwaited_servers(race) == ["python3 -m reactor --port 8083 --workers 2 &"]
    waits = race.replace("&\n", "&\nuntil curl -so /dev/null http://127.0.0.1:8083/; do sleep 0.1; done\n")
    assert unwaited_servers(waits) == []
    wrong_port = race.replace("&\n", "&\nuntil curl -so /dev/null http://127.0.0.1:8080/; do sleep 0.1; done\n")
    assert unwaited_servers(wrong_port) == ["python3 -m reactor --port 8083 --workers 2 &"]
    two_terminals = (
        "```sh\npython3 docs/examples/step1_blocking.py 8000   # the server\ncurl -i http://127.0.0.1:8000/\n```\n"
    )
    assert unwaited_servers(two_terminals) == ["python3 docs/examples/step1_blocking.py 8000"]
    assert unwaited_servers(two_terminals.replace("# the server", "# in one terminal")) == []
    assert unwaited_servers("```sh\npython3 -m reactor --port 8080\n```\n") == []


def _kinds(lines):
    """Trace lines reduced to what they say: digits and timestamps dropped."""
    kinds = set()
    for line in lines:
        match = re.match(r"^ *\d+\.\d{3} (#\d+|--) (.*)$", line)
        if match:
            what = re.sub(r"^event read waker \(.*\)$", "event read waker", match.group(2))  # its cause is a race
            kinds.add(re.sub(r"\d+(\.\d+)?", "N", what))
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
    # The prose names the state the asking connection is counted in; the page must agree.
    named = re.search(r"connection\s+asking\s+is\s+the\s+one\s+in\s+`([a-z-]+)`", status_page)
    assert named, "docs/status.md no longer says which state the asking connection is in"
    by_state = status["connections"]["by_state"]
    assert by_state[named.group(1)] == 1 and sum(by_state.values()) == 1, (named.group(1), by_state)
    assert json.loads(sample)["connections"]["by_state"][named.group(1)] == 1


def _number(text: str):
    """``"10 s"`` → 10.0, ``"1048576 (1 MiB)"`` → 1048576.0, ``"32 MiB"`` → 33554432.0; None if no number."""
    match = re.match(r"\s*([0-9][0-9_,.]*)\s*(KiB|MiB|GiB)?", text)
    if match is None:
        return None
    value = float(match.group(1).replace(",", "").replace("_", ""))
    scale = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}.get(match.group(2) or "", 1)
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
            flag,
            shown.strip(),
            defaults[flag],
        )
        checked += 1
    assert checked >= 12


def _number_options():
    """{--flag: action} for every option of ``python -m reactor`` that takes a number.

    Found the way a user meets them, by the type: one that turns "1" into an int or a float.
    """
    from reactor.cli import build_parser

    found = {}
    for action in build_parser()._actions:
        if not action.option_strings or not callable(action.type):
            continue
        try:
            value = action.type("1")
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            continue
        if type(value) in (int, float):
            found[next(o for o in action.option_strings if o.startswith("--"))] = action
    return found


def _generated(page: str, block: str) -> str:
    """The inside of generated block ``block`` of docs/``page``."""
    text = _text(page)
    begin = "<!-- BEGIN GENERATED %s:" % block
    assert begin in text, "%s has no generated block %s" % (page, block)
    return text.split(begin, 1)[1].split("<!-- END GENERATED %s -->" % block)[0]


def _limit_rows() -> Set[str]:
    """The flags limits.md's generated tables give a row."""
    rows = set()
    for block in ("limits-table", "timeouts-table"):
        rows.update(re.findall(r"^\| `(--[\w-]+)`", _generated("limits.md", block), re.M))
    return rows


def test_limits_md_lists_every_option_that_takes_a_number():
    """limits.md says it has every limit and timeout: each option taking a number has a row, or is
    named among the few that bound nothing, so a new limit cannot be missed."""
    numbers = _number_options()
    wanted = {"--tls-handshake-timeout", "--cache-bytes", "--gzip-cache-bytes", "--pool-size", "--worker-timeout"}
    assert wanted <= set(numbers), "the scan for options taking a number found only %s" % sorted(numbers)
    rows = _limit_rows()
    exempt = set(re.findall(r"`(--[\w-]+)`", _generated("limits.md", "not-limits")))
    assert wanted <= rows, "limits.md has no row for %s" % sorted(wanted - rows)
    assert exempt <= set(numbers) and not exempt & rows, "limits.md's options that bound nothing: %s" % exempt
    missing = sorted(set(numbers) - rows - exempt)
    assert not missing, "limits.md leaves out %s; run python3 docs/make_tables.py" % missing


def test_robustness_table_lists_every_limit_and_timeout():
    """Chapter 7 ends with a table of every limit and timeout: the flags limits.md lists, no fewer."""
    text = _text("robustness.md")
    section = text.split("\n## Every limit and timeout\n", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(--[\w-]+)` \|", section, re.M))
    limits = _limit_rows()
    assert len(limits) >= 20, "limits.md's tables moved or changed shape"
    assert not limits - listed, (
        "robustness.md's table of every limit and timeout lacks %s: add a row saying what "
        "happens past it" % sorted(limits - listed)
    )
    assert not listed - limits, "robustness.md lists %s, which limits.md does not" % sorted(listed - limits)


def _chapters():
    """(number, title, file) for each entry of the book's table of contents, in order."""
    text = (DOCS / "README.md").read_text(encoding="utf-8")
    return [(int(number), title, name) for number, title, name in CHAPTER.findall(text)]


def test_chapters_are_numbered_alike_everywhere():
    """The table of contents, each chapter's heading and README's list agree, 0 to N."""
    chapters = _chapters()
    assert [number for number, _, _ in chapters] == list(range(len(chapters))), "chapters numbered 0, 1, 2, ..."
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^(\d+)\. (.+)$", readme.split("## How it works", 1)[1].split("\n## ", 1)[0], re.M)
    assert [(int(n), title) for n, title in listed] == [(n, title) for n, title, _ in chapters], (
        "README's list of chapters differs from docs/README.md"
    )
    for number, title, name in chapters:
        page = DOCS / name
        heading = page.read_text(encoding="utf-8").split("\n", 1)[0]
        assert heading.startswith("# %d. %s" % (number, title)), "%s: heading %r, contents say %d. %s" % (
            name,
            heading,
            number,
            title,
        )


def _lab_scenarios():
    if str(DOCS) not in sys.path:
        sys.path.insert(0, str(DOCS))
    import trace_lab

    return list(trace_lab.SCENARIOS)


@pytest.mark.parametrize("name", _lab_scenarios())
def test_trace_lab_runs_print_what_trace_md_shows(name):
    """Each recorded run in docs/trace.md is what `python3 docs/trace_lab.py NAME` prints now."""
    lab = _generator("trace_lab")
    if name == "tls-handshake" and shutil.which("curl") is None:
        pytest.skip("the TLS run uses curl")
    now = lab.block(name)
    assert lab.same(name, lab.recorded(name), now), "run python3 docs/trace_lab.py --write; it prints now:\n" + now


def _text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_idle_connection_cost_is_quoted_as_measured():
    measured = re.search(r"RSS growth per connection: +(\d+) bytes", _text("performance.md"))
    assert measured, "performance.md's idle-connections output moved"
    size = int(measured.group(1))
    quoted = "{:,} bytes measured".format(size)
    for page in ("reactor.md", "comparison.md"):
        assert quoted in _text(page), "%s must quote the measured idle cost (%s)" % (page, quoted)
    for page in _pages():
        text = _text(page.name).replace("\n", " ")
        for other in re.findall(r"([\d,]+) bytes measured", text):
            assert other == "{:,}".format(size), "%s quotes %s bytes measured; performance.md has %d" % (
                page.name,
                other,
                size,
            )
        if quoted in text:  # the page quotes the idle cost: its rounded figures must be that too
            for kib in re.findall(r"(\d+\.\d) KiB", text):
                assert kib == "%.1f" % (size / 1024), "%s says %s KiB; %d bytes is %.1f KiB" % (
                    page.name,
                    kib,
                    size,
                    size / 1024,
                )


def test_trace_prose_quotes_sizes_the_traces_print():
    """Sizes in trace.md's prose ("one `send` of 2130 bytes") are ones its generated traces print."""
    text = _text("trace.md")
    printed = set()
    for block in re.findall(r"<!-- BEGIN GENERATED .*?<!-- END GENERATED", text, re.DOTALL):
        printed.update(re.findall(r"\b(\d+) (?:body )?bytes\b", block))
    prose = re.sub(r"<!-- BEGIN GENERATED .*?<!-- END GENERATED[^\n]*", "", text, flags=re.DOTALL)
    quoted = [number.replace(",", "") for number in re.findall(r"\b(\d[\d,]*)\s+bytes\b", prose)]
    assert len(quoted) >= 5, "trace.md's prose quotes fewer sizes than it did: %s" % quoted
    unprinted = sorted(set(quoted) - printed)
    assert not unprinted, "trace.md's prose quotes sizes no trace on the page prints: %s bytes" % unprinted


_NUMBER_WORDS = {
    word: value
    for value, word in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
_NUMBER_WORDS.update(a=1, twenty=20, thirty=30, forty=40, fifty=50, sixty=60, seventy=70, eighty=80, ninety=90)
_LINES = re.compile(
    r"\b(about|under|a little over|over|nearly|almost|fewer than|more than)\s+"
    r"(\d[\d,]*|(?:[a-z]+\s+)?hundred|[a-z]+)\s+lines\b"
)


def _spelled(words: str) -> Optional[int]:
    """``"two hundred"`` → 200, ``"fifty"`` → 50, ``"190"`` → 190; None if it is no number."""
    words = words.replace(",", "")
    if words.isdigit():
        return int(words)
    parts = words.split()
    if parts[-1] == "hundred":
        return 100 * _NUMBER_WORDS.get(parts[0], 1 if len(parts) == 1 else 0) or None
    return _NUMBER_WORDS.get(words)


def _holds(qualifier: str, count: int, number: int) -> bool:
    return {
        "about": abs(count - number) <= number / 10,
        "under": count < number,
        "fewer than": count < number,
        "over": count > number,
        "more than": count > number,
        "a little over": number < count <= number * 1.25,
        "nearly": number * 0.85 <= count <= number,
        "almost": number * 0.85 <= count <= number,
    }[qualifier]


def test_line_counts_in_prose_match_the_code():
    """ "`reactor.transport.TLSTransport` is about 190 lines": a size in lines, said of code the
    paragraph names, must hold for that code's source now."""
    import inspect

    checked = []
    for page in _pages() + [REPO / "README.md"]:
        for paragraph in re.split(r"\n\s*\n", FENCED.sub("", page.read_text(encoding="utf-8"))):
            for claim in _LINES.finditer(paragraph):
                named = REFERENCE.findall(paragraph[: claim.start()])
                number = _spelled(claim.group(2))
                if not named or number is None:
                    continue  # not said of reactor's code ("about fifty lines" of chapter 0's examples)
                obj = importlib.import_module(named[-1].rsplit(".", 1)[0])
                obj = getattr(obj, named[-1].rsplit(".", 1)[1], obj)
                count = len(inspect.getsourcelines(obj)[0])
                assert _holds(claim.group(1), count, number), "%s: %s %s lines, but %s is %d lines" % (
                    page.name,
                    claim.group(1),
                    claim.group(2),
                    named[-1],
                    count,
                )
                checked.append(named[-1])
    assert {"reactor.loop.EventLoop", "reactor.transport.TLSTransport"} <= set(checked), checked


def test_comparison_prose_uses_the_ratio_of_its_own_table():
    text = _text("comparison.md")
    rows = dict(re.findall(r"^\| (nginx|reactor) \| ([\d,]+) \|", text, re.M))
    ratio = int(rows["nginx"].replace(",", "")) / int(rows["reactor"].replace(",", ""))
    assert "nginx does the same work as reactor with no interpreter; it is %.2f×" % ratio in text.replace("\n  ", " ")


def test_parser_chapter_quotes_the_benchmark_of_performance_md():
    ratio = re.search(r"^GET \(48 browser-like requests.*?([\d.]+)x$", _text("performance.md"), re.M)
    assert ratio, "performance.md's parser table moved"
    assert "reactor about %.1f× h11" % float(ratio.group(1)) in _text("parser.md").replace("\n", " ")
    assert not re.search(r"\d\.\d\dx$", _text("parser.md"), re.M), "parser.md must not keep its own figures"


def _pool_jobs() -> Set[str]:
    """Names of the functions the code hands to the worker pool (run_in_pool or pool.submit)."""
    import ast

    jobs = set()
    for path in (REPO / "reactor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            if path.name in ("workers.py", "connection.py"):
                continue  # the bridge itself passes its caller's job on
            if node.func.attr in ("run_in_pool", "submit"):
                job = node.args[0]
            elif len(node.args) >= 3 and ast.unparse(node.args[0]).endswith("pool"):
                job = node.args[2]  # GzipCache.compress(pool, etag, job, args, ...)
            else:
                continue
            name = job.attr if isinstance(job, ast.Attribute) else getattr(job, "id", "?")
            if name != "job":  # a job handed on, named where it is made
                jobs.add(name)
    return jobs


def test_worker_bridge_names_every_pool_job():
    jobs = _pool_jobs()
    assert {"open_file", "store_upload", "read_block"} <= jobs, "the pool-job scan found %s" % sorted(jobs)
    text = _text("worker-bridge.md")
    missing = sorted(job for job in jobs if job not in text)
    assert not missing, "worker-bridge.md does not say these go to the pool: %s" % missing


def test_cache_intervals_match_the_prose():
    from reactor.handlers import cache

    assert (cache.VALID_S, cache.EXPIRE_S) == (1.0, 2.0), "life-of-a-request.md says a second and two seconds"
    text = _text("life-of-a-request.md")
    assert "within the last two seconds" in text and "not checked for a second" in text


def test_no_page_speaks_of_issue_numbers():
    """Issue numbers mean nothing to a reader of the book."""
    for page in _pages():
        found = re.findall(r"\b[Ii]ssue \d+\b|the \w+ issue\b", page.read_text(encoding="utf-8"))
        assert not found, "%s mentions %s" % (page.name, found)


def test_every_chapter_ends_with_questions_and_folded_answers():
    chapters = [name for _number, _title, name in _chapters() if name != "exercises.md"]
    assert len(chapters) >= 10
    for name in chapters:
        text = _text(name)
        assert "\n## Questions\n" in text, "%s has no ## Questions section" % name
        questions = text.split("\n## Questions\n", 1)[1]
        assert "\n## " not in questions, "%s: ## Questions must be the last section" % name
        asked = re.findall(r"^(\d+)\. ", questions.split("<details>", 1)[0], re.M)
        assert 3 <= len(asked) <= 5, "%s asks %d questions" % (name, len(asked))
        assert "<details>" in questions and "</details>" in questions, "%s: fold the answers in <details>" % name
        answered = re.findall(r"^(\d+)\. ", questions.split("<details>", 1)[1], re.M)
        assert answered == asked, "%s: every question needs its answer" % name


def test_accept_steps_come_in_the_order_life_of_a_request_gives():
    """Chapter 3: the --max-connections check first, then non-blocking and TCP_NODELAY, then the connection."""
    import inspect

    from reactor.server import Server

    accept = inspect.getsource(Server._on_acceptable)
    assert accept.index("max_connections") < accept.index("self._refuse(") < accept.index("self._serve_socket(")
    serve = inspect.getsource(Server._serve_socket)
    assert serve.index("setblocking(False)") < serve.index("TCP_NODELAY") < serve.index("Connection(")
    text = _text("life-of-a-request.md")
    assert text.index("first checks `--max-connections`") < text.index("otherwise makes it non-blocking")


def test_every_supervisor_arrow_says_what_causes_it():
    from reactor import supervisor

    generator = _generator("make_supervisor_diagram")
    statemoves = _generator("statemoves")
    for machine, words, table in (
        (generator.machine(), generator.CAUSES, supervisor.NEXT),
        (generator.worker_machine(), generator.WORKER_CAUSES, supervisor.WORKER_NEXT),
    ):
        labels, _ = statemoves.worded(machine.causes(), words)
        for state, targets in table.items():
            for target in targets:
                assert labels.get((state, target)), "nothing found that moves %s -> %s" % (state.value, target.value)
    found = generator.machine().causes()
    assert found[(supervisor.SupervisorState.RUNNING, supervisor.SupervisorState.RELOADING)] == {"_on_reload"}


def test_every_websocket_session_arrow_says_what_causes_it():
    from reactor.wsconnection import NEXT, WsState

    generator = _generator("make_websocket_diagram")
    statemoves = _generator("statemoves")
    found = generator.machine().causes()
    labels, _ = statemoves.worded(found, generator.CAUSES)
    for state, targets in NEXT.items():
        for target in targets:
            assert labels.get((state, target)), "nothing found that moves %s -> %s" % (state.value, target.value)
    assert found[(WsState.OPENING, WsState.OPEN)] == {"connection_made"}
    assert "_fail" in found[(WsState.OPEN, WsState.LINGERING)]
    assert "_on_timer" in found[(WsState.CLOSING, WsState.CLOSED)]
