"""The command line and REACTOR_* environment variables for the static-file options."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys

import pytest

from reactor import __version__, cli
from reactor.config import Config


def parse(argv, environ=None):
    parser = cli.build_parser()
    cli.apply_environment(parser, environ or {})
    return cli.config_from_args(parser.parse_args(argv))


def test_defaults_match_config():
    config = parse([])
    defaults = Config()
    for name in ("list_directories", "dotfiles", "cors", "extra_headers", "max_age_s", "gzip", "cache_max_bytes"):
        assert getattr(config, name) == getattr(defaults, name), name
    assert config.max_age_s is None and config.added_fields == ()


def test_flags():
    config = parse(
        [
            "--list-directories",
            "--cors",
            "--header",
            "X-A: 1",
            "--header",
            "X-B:two words ",
            "--max-age",
            "60",
            "--no-gzip",
            "--cache-bytes",
            "0",
            "--dotfiles",
        ]
    )
    assert config.list_directories and config.cors and config.dotfiles and not config.gzip
    assert config.extra_headers == (("X-A", "1"), ("X-B", "two words"))
    assert config.max_age_s == 60 and config.cache_max_bytes == 0
    assert config.added_fields[0] == ("Access-Control-Allow-Origin", "*")
    assert config.added_fields[-2:] == (("X-A", "1"), ("X-B", "two words"))


def test_every_option_has_an_environment_variable():
    parser = cli.build_parser()
    names = {cli.environment_name(action) for action in parser._actions} - {None}
    options = {option for action in parser._actions for option in action.option_strings if option.startswith("--")}
    assert len(names) == len(options) - 2  # all but --help and --version
    assert {
        "REACTOR_PORT",
        "REACTOR_DIRECTORY",
        "REACTOR_LIST_DIRECTORIES",
        "REACTOR_CORS",
        "REACTOR_HEADER",
        "REACTOR_MAX_AGE",
        "REACTOR_DOTFILES",
        "REACTOR_NO_GZIP",
        "REACTOR_CACHE_BYTES",
    } <= names


def test_environment_variables():
    config = parse(
        [],
        {
            "REACTOR_PORT": "9999",
            "REACTOR_LIST_DIRECTORIES": "yes",
            "REACTOR_CORS": "1",
            "REACTOR_DOTFILES": "off",
            "REACTOR_HEADER": "X-A: 1\nX-B: 2\n",
            "REACTOR_MAX_AGE": "120",
            "REACTOR_ALLOW_HOST": "a.example, b.example:8080",
            "REACTOR_LOG_LEVEL": "warning",
            "REACTOR_KEEPALIVE_TIMEOUT": "2.5",
        },
    )
    assert config.port == 9999 and config.list_directories and config.cors and not config.dotfiles
    assert config.extra_headers == (("X-A", "1"), ("X-B", "2"))
    assert config.max_age_s == 120
    assert config.allowed_hosts == ("a.example", "b.example:8080")
    assert config.keepalive_timeout_s == 2.5


def test_flags_win_over_the_environment():
    config = parse(["--port", "8001", "--max-age", "5"], {"REACTOR_PORT": "9999", "REACTOR_MAX_AGE": "120"})
    assert config.port == 8001 and config.max_age_s == 5


@pytest.mark.parametrize(
    "environ",
    [
        {"REACTOR_PORT": "eighty"},
        {"REACTOR_CORS": "maybe"},
        {"REACTOR_LOG_LEVEL": "loud"},
        {"REACTOR_HEADER": "Content-Length: 5"},
        {"REACTOR_MAX_AGE": "-1"},
    ],
)
def test_bad_environment_values_exit_naming_the_variable(environ, capsys):
    with pytest.raises(SystemExit) as exc:
        parse([], environ)
    assert exc.value.code == 2
    assert next(iter(environ)) in capsys.readouterr().err


@pytest.mark.parametrize(
    "value",
    [
        "no colon",
        "Bad Name: x",
        "X-A:",
        "X-A: a\x01b",
        "Content-Type: text/plain",
        "Transfer-Encoding: chunked",
        "X-A: caf\u00e9\u20ac",
    ],
)
def test_bad_header_flags_are_refused(value, capsys):
    with pytest.raises(SystemExit):
        parse(["--header", value])
    assert "--header" in capsys.readouterr().err


def test_max_age_and_a_cache_control_header_conflict(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--max-age", "1", "--header", "Cache-Control: no-store", "--port", "0"])
    assert exc.value.code == 2 and "Cache-Control" in capsys.readouterr().err


def test_help_names_the_variables(capsys):
    with pytest.raises(SystemExit):
        parse(["--help"])
    out = capsys.readouterr().out
    assert "REACTOR_MAX_AGE" in out and "REACTOR_LIST_DIRECTORIES" in out


def test_version():
    result = subprocess.run([sys.executable, "-m", "reactor", "--version"], capture_output=True, timeout=30)
    assert result.returncode == 0 and result.stdout.decode().strip() == "reactor %s" % __version__


def test_the_real_process_reads_its_environment(run_cli, site):
    env = dict(
        os.environ,
        REACTOR_PORT="0",
        REACTOR_DIRECTORY=str(site),
        REACTOR_CORS="true",
        REACTOR_HEADER="X-Served-By: env",
        REACTOR_MAX_AGE="30",
        REACTOR_LIST_DIRECTORIES="1",
    )
    os.remove(site / "index.html")
    cli_server = run_cli(env=env)
    assert cli_server.port, cli_server.output
    conn = http.client.HTTPConnection("127.0.0.1", cli_server.port, timeout=5)
    conn.request("GET", "/")
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200 and b"sample.txt" in body  # a listing: REACTOR_LIST_DIRECTORIES
    assert response.getheader("Access-Control-Allow-Origin") == "*"
    assert response.getheader("X-Served-By") == "env"
    conn.request("GET", "/sample.txt")
    response = conn.getresponse()
    response.read()
    assert response.getheader("Cache-Control") == "max-age=30"
    conn.close()
