"""README.md's shell examples, run as pasted against a real server, checked against their comments.

The convention, for anyone adding a section to the README:

- A ```` ```sh ```` block that names ``127.0.0.1`` is an example against a server, and is
  **run**; at least one of its commands must end in a checkable comment (below), or the
  test fails: an example nobody checks is one that goes stale. Other blocks (set-up, tox,
  benchmarks) are left alone.
- The block runs in one ``bash``, line by line, in a folder holding a fresh copy of
  ``resources/`` (so ``python3 -m reactor`` there serves the sample site). Port 8080 is a
  server the test started (the README's "server started above"); every other port a
  block starts a server on (``python3 -m reactor --port 8081 ... &``) is replaced by a free
  one, in ``--port N`` and after ``127.0.0.1:``, ``localhost:`` and ``[::1]:``. Such a block must wait until its server listens
  (``until curl -so /dev/null http://127.0.0.1:8081/; do sleep 0.1; done``, the line right
  after the server's) and end with ``kill %1``, or the test fails: pasted by hand, its next
  ``curl`` would run before the server listens. A foreground ``python3 -m reactor`` would
  never return and is an error.
- ``python3 -m pip install NAME`` is not run: the test never installs anything. The
  block runs if NAME is importable already (the test requirements have it), and is
  skipped with a reason otherwise.
- A here-document (``cat > hello.py <<'EOF'`` ... ``EOF``) is one command with its lines,
  so a block can write the file it then runs, as a reader pasting it would.
- A command's comment is a list of claims about its standard output (curl's progress
  meter goes to stderr; add ``2>&1`` where stderr is what shows it, as with ``curl -v``),
  separated by ``", "``; a new claim starts only
  where a status code or a ``Field-Name:`` follows, so field values may hold commas:
  - ``404`` (maybe with a phrase, ``304 Not Modified``, or after ``then``): the
    command's output has a status line ``HTTP/1.1 404`` or a line starting with ``404``
    (``curl -w '%{http_code}\\n'``, an error body). A claim ``404 Not Found: reason`` must
    appear verbatim (an error body).
  - ``Field-Name: value``: a line of the output (curl's ``< `` prefix allowed) has that
    field, its value starting with ``value``; a trailing ``(remark)`` is not part of it.
  - anything else is prose and is not checked (``# wait until it listens``).
  So a command must *show* what it claims: ``curl -i``, ``-D -``, ``-w '%{http_code}\\n'``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import pytest

from conftest import REPO, CliServer, copy_resources

README = REPO / "README.md"
README_PORT = 8080

_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
_FIELD_NAME = r"(?=[A-Za-z0-9-]*[a-z])[A-Z][A-Za-z0-9-]*"  # Content-Type, ETag; not HEAD (prose)
_CLAIM_START = re.compile(r", (?=(?:then )?\d{3}\b|%s: )" % _FIELD_NAME)
_STATUS = re.compile(r"^(?:then )?(\d{3})\b(.*)$")
_FIELD = re.compile(r"^(%s): (.+?)(?: \([^)]*\))?$" % _FIELD_NAME)
_SERVER_LINE = re.compile(r"^python3 -m reactor\b")
_WAIT_LINE = re.compile(r"^until curl .*https?://127\.0\.0\.1:(\d+)/; do sleep [0-9.]+; done")
_PIP_INSTALL = re.compile(r"^python3 -m pip install ([A-Za-z][A-Za-z0-9_-]*)\s*(?:#.*)?$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_]+)\1")


class Command(NamedTuple):
    line: str  # as in the README
    claims: List[str]


class Block(NamedTuple):
    number: int  # 1-based, counting every sh block in the README
    first_line: int  # line number in README.md
    commands: List[Command]


def split_comment(line: str) -> Tuple[str, str]:
    """``"curl -i URL   # 200, Allow: GET"`` → (command, comment); '#' inside quotes or URLs is no comment."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def claims_of(comment: str) -> List[str]:
    """The checkable claims of a comment (statuses and fields); prose is dropped."""
    if not comment:
        return []
    return [claim for claim in _CLAIM_START.split(comment) if _STATUS.match(claim) or _FIELD.match(claim)]


def readme_blocks(text: str) -> List[Block]:
    """Every sh block that names 127.0.0.1: the examples against a server."""
    blocks = []
    for number, match in enumerate(_BLOCK.finditer(text), 1):
        body = match.group(1)
        first_line = text[: match.start()].count("\n") + 2
        commands = []
        lines = iter(body.replace("\\\n", " ").splitlines())
        for line in lines:
            if not line.strip():
                continue
            command, comment = split_comment(line)
            heredoc = _HEREDOC.search(command)
            if heredoc:  # the document's lines belong to this command, up to its delimiter
                document = []
                for more in lines:
                    document.append(more)
                    if more.strip() == heredoc.group(2):
                        break
                line = "\n".join([line, *document])
            commands.append(Command(line, claims_of(comment) if command else []))
        if "127.0.0.1" in body:
            blocks.append(Block(number, first_line, commands))
    return blocks


def unchecked(block: Block) -> Optional[str]:
    """Why ``block`` cannot be checked as the README promises, or None."""
    if not any(command.claims for command in block.commands):
        return "no command's comment names a status or a field, so nothing it shows is checked"
    lines = [command.line for command in block.commands]
    for index, line in enumerate(lines):
        if not _SERVER_LINE.match(line):
            continue
        port = re.search(r"--port (\d+)", line)
        wait = _WAIT_LINE.match(lines[index + 1]) if index + 1 < len(lines) else None
        if port is None or wait is None or wait.group(1) != port.group(1):
            return "the line after %r must wait until that server listens (until curl ...; do sleep 0.1; done)" % line
        if not lines[-1].startswith("kill %1"):
            return "a block that starts a server must stop it at the end (kill %1)"
    return None


def check_claim(claim: str, output: str) -> Optional[str]:
    """None if ``output`` shows ``claim``, else why not."""
    lines = [line.rstrip("\r") for line in output.splitlines()]
    status = _STATUS.match(claim)
    if status:
        code, rest = status.groups()
        if re.match(r"^ [A-Z][^:]*: .", rest) and claim.split("then ", 1)[-1] not in output:
            return "the output does not contain %r" % claim
        pattern = re.compile(r"^(?:< )?(?:HTTP/\d(?:\.\d)? %s\b|%s\b)" % (code, code))
        return None if any(pattern.match(line) for line in lines) else "no status %s in the output" % code
    field = _FIELD.match(claim)
    assert field, claim
    name, value = field.groups()
    for line in lines:
        line = line[2:] if line.startswith("< ") else line
        got_name, colon, got_value = line.partition(":")
        if colon and got_name.strip().lower() == name.lower() and got_value.strip().startswith(value):
            return None
    return "no field %s: %s... in the output" % (name, value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def substitute_ports(text: str, ports: Dict[int, int]) -> str:
    for old, new in ports.items():
        text = re.sub(r"(127\.0\.0\.1:|localhost:|\[::1\]:|--port )%d\b" % old, r"\g<1>%d" % new, text)
    return text


def script_for(block: Block, outdir: Path, ports: Dict[int, int]) -> str:
    """One bash script; each README line's stdout goes to ``outdir/N`` and its stderr (curl's
    progress meter) to ``outdir/N.err``. A group, not a subshell, so variables such as
    ETAG=... carry over to the next line."""
    parts = []
    for index, command in enumerate(block.commands):
        line = substitute_ports(command.line, ports)
        if _PIP_INSTALL.match(line):
            line = ":  # already installed: %s" % line  # a test installs nothing
        parts.append("{ %s\n} > %s 2> %s.err" % (line, outdir / str(index), outdir / str(index)))
    return "\n".join(parts) + '\nwait_for_jobs=$(jobs -p); [ -z "$wait_for_jobs" ] || kill $wait_for_jobs\n'


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def test_the_convention_finds_the_readme_examples():
    assert len(BLOCKS) >= 10, "the README's examples moved"
    assert sum(len(c.claims) for b in BLOCKS for c in b.commands) >= 30


def test_a_block_that_cannot_be_checked_is_refused_not_skipped():
    """The README's --workers block once had no claim and no wait line: it was skipped,
    and pasted by hand its curl ran before the server listened."""
    text = (
        "```sh\n"
        "python3 -m reactor --port 8083 --workers 2 --status-path /_status &\n"
        'curl -s http://127.0.0.1:8083/_status          # "worker": {"number": 1}\n'
        "kill %1\n"
        "```\n"
    )
    (block,) = readme_blocks(text)
    assert "names a status" in (unchecked(block) or "")
    waits = text.replace(
        "curl -s http", "until curl -so /dev/null http://127.0.0.1:8083/; do sleep 0.1; done\ncurl -si http"
    )
    (block,) = readme_blocks(waits.replace('# "worker', '# 200, "worker'))
    assert unchecked(block) is None
    (block,) = readme_blocks(text.replace('# "worker', '# 200, "worker'))
    assert "must wait until that server listens" in (unchecked(block) or "")


def test_claim_parsing():
    assert claims_of("405, Allow: GET, HEAD, OPTIONS") == ["405", "Allow: GET, HEAD, OPTIONS"]
    assert claims_of("100, then 201") == ["100", "then 201"]
    assert claims_of("HEAD: the GET fields, no body") == []
    assert claims_of("wait until it listens") == []
    assert claims_of("Keep-Alive: timeout=30, max=100, ETag: x") == ["Keep-Alive: timeout=30, max=100", "ETag: x"]
    assert split_comment("curl -w '%{http_code} #1' URL   # 200") == ("curl -w '%{http_code} #1' URL", "200")
    assert check_claim("Content-Length: 4 (no body)", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n") is None
    assert check_claim("then 201", "HTTP/1.1 100 Continue\n\nHTTP/1.1 201 Created\n") is None
    assert check_claim("404", "HTTP/1.1 200 OK\n") is not None
    assert check_claim("404 Not Found: no such file", "404 Not Found: no such thing\n") is not None
    assert check_claim("Vary: Accept-Encoding", "< vary: Accept-Encoding\n") is None


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory):
    """The README's "server started above", in a folder with its own copy of resources/."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed; the README's examples use it")
    folder = tmp_path_factory.mktemp("readme")
    os.rename(copy_resources(folder), folder / "resources")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    # The README says python3: make it this Python. A script, not a symlink: a virtualenv's
    # interpreter finds its packages (Flask, Django) only when run by its own path.
    shim = bin_dir / "python3"
    shim.write_text('#!/bin/sh\nexec "%s" "$@"\n' % sys.executable)
    shim.chmod(0o755)
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH="%s%s%s" % (bin_dir, os.pathsep, os.environ.get("PATH", "")))
    cli = CliServer(["--port", "0", "--log-level", "warning"], cwd=folder, env=env)
    try:
        assert cli.port, cli.output
        yield folder, cli.port, env
    finally:
        cli.stop()


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: "block%d-line%d" % (b.number, b.first_line))
def test_readme_block_runs_as_pasted(block, readme_server, tmp_path):
    why = unchecked(block)
    assert why is None, "README block %d (line %d) cannot be checked: %s" % (block.number, block.first_line, why)
    folder, port, env = readme_server
    ports = {README_PORT: port}
    for command in block.commands:
        if _SERVER_LINE.match(command.line):
            assert command.line.rstrip().endswith("&"), "a foreground server never returns: %s" % command.line
            started = re.search(r"--port (\d+)", command.line)
            assert started, "a server started by the README must name its port: %s" % command.line
            ports[int(started.group(1))] = free_port()
    for command in block.commands:
        install = _PIP_INSTALL.match(command.line)
        if install and importlib.util.find_spec(install.group(1)) is None:
            pytest.skip("README block %d needs %s, which is not installed" % (block.number, install.group(1)))
    outdir = tmp_path / "out"
    outdir.mkdir()
    script = script_for(block, outdir, ports)
    before = files_under(folder)
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=folder,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        shell_output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this test started for the block, nothing else
        proc.communicate()
        pytest.fail("README block %d (line %d) did not finish within 60 s" % (block.number, block.first_line))
    failures = []
    for index, command in enumerate(block.commands):
        output_file = outdir / str(index)
        output = output_file.read_text(encoding="utf-8", errors="replace") if output_file.exists() else ""
        for claim in command.claims:
            why = check_claim(claim, output)
            if why:
                failures.append("%s\n    claim %r: %s\n    output: %r" % (command.line, claim, why, output[:600]))
    assert not failures, "README block %d (line %d):\n%s\n%s" % (
        block.number,
        block.first_line,
        "\n".join(failures),
        shell_output.decode(errors="replace")[-500:],
    )
    left = not_ignored(sorted(files_under(folder) - before))
    assert not left, "README block %d leaves files in a clone that git would show: %s" % (block.number, left)


def files_under(folder: Path) -> "set[str]":
    """Every file under ``folder``, relative to it (what the examples may leave in a clone)."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir()}


def not_ignored(paths: List[str]) -> List[str]:
    """Those of ``paths`` (relative to a clone's top) that the repository's .gitignore does not ignore."""
    if not paths:
        return []
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot ask .gitignore")
    result = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", "--stdin"],
        input="\n".join(paths) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    ignored = set(result.stdout.splitlines())
    return [path for path in paths if path not in ignored]


# -- the README's test command ------------------------------------------------------------


def load_toxfile(monkeypatch):
    """The repository's toxfile.py as a module (with a stand-in for tox.plugin where tox is missing)."""
    import importlib.util
    import types

    if importlib.util.find_spec("tox") is None:
        stand_in = types.ModuleType("tox.plugin")
        stand_in.impl = lambda function: function
        monkeypatch.setitem(sys.modules, "tox", types.ModuleType("tox"))
        monkeypatch.setitem(sys.modules, "tox.plugin", stand_in)
    spec = importlib.util.spec_from_file_location("toxfile_under_test", REPO / "toxfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ci_runs_the_readmes_test_command_and_nothing_else_picks_the_pythons():
    readme = README.read_text(encoding="utf-8")
    command = "python3 -m pip install tox && python3 -m tox"
    assert "```sh\n%s\n```" % command in readme
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.rstrip().splitlines()[-1] == command
    assert "PYENV_VERSION" not in ci, "a new user has no .ci/run: toxfile.py must find the Pythons by itself"


def test_toxfile_names_the_newest_of_each_supported_pyenv_python(monkeypatch):
    toxfile = load_toxfile(monkeypatch)
    installed = ["2.7.18", "3.9.18", "3.10.12", "3.10.13", "3.11.7", "3.12.1", "3.13.0", "3.13.0t", "pypy3.10-7.3.12"]
    assert toxfile.pyenv_versions("3.11.7", installed) == "3.11.7:3.10.13:3.12.1:3.13.0"
    assert toxfile.pyenv_versions("system", installed) == "system:3.10.13:3.11.7:3.12.1:3.13.0"
    assert (
        toxfile.pyenv_versions("3.12.0:3.10.12", installed) == "3.12.0:3.10.12:3.11.7:3.13.0"
    )  # what it names stays first
    assert toxfile.pyenv_versions("", []) == ""


@pytest.mark.skipif(shutil.which("pyenv") is None, reason="pyenv is not installed: nothing for toxfile.py to find")
def test_toxfile_makes_every_installed_python_visible_without_pyenv_version(monkeypatch):
    toxfile = load_toxfile(monkeypatch)
    monkeypatch.setenv("PYENV_VERSION", "recorded")  # so that what the hook sets is undone after the test
    monkeypatch.delenv("PYENV_VERSION")
    installed = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True, check=True).stdout
    minors = {line.rsplit(".", 1)[0] for line in installed.split() if re.match(r"^3\.1[0-3]\.\d+$", line)}
    toxfile.tox_add_core_config(None, None)
    named = os.environ.get("PYENV_VERSION", "").split(":")
    assert minors <= {name.rsplit(".", 1)[0] for name in named}, (minors, named)
    for minor in minors:  # and the shims now run each of them
        found = subprocess.run(
            ["python%s" % minor, "-c", "import sys; print(sys.version)"], capture_output=True, text=True
        )
        assert found.returncode == 0 and found.stdout.startswith(minor), (minor, found.stderr)
