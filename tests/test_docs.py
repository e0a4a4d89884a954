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
import shutil
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
    quoted = "{:,} bytes measured".format(int(measured.group(1)))
    for page in ("reactor.md", "comparison.md"):
        assert quoted in _text(page), "%s must quote the measured idle cost (%s)" % (page, quoted)


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
