"""``pip install`` into a fresh virtualenv, then ``reactor`` in any folder, as a new user does.

The virtualenv sees the system's site-packages (for setuptools, so the build needs no
network) but not this checkout: the package is installed from a copy, and every
command runs from a folder outside the repository.
"""

from __future__ import annotations

import http.client
import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import REPO, CliServer


def _missing_build_tools() -> str:
    """Why pip cannot build reactor offline here, or "" if it can (found without importing them)."""
    for name in ("pip", "setuptools"):
        if importlib.util.find_spec(name) is None:
            return "%s is not installed for %s" % (name, sys.executable)
    major_minor = tuple(int(part) for part in importlib.metadata.version("setuptools").split(".")[:2])
    if major_minor < (70, 1) and importlib.util.find_spec("wheel") is None:  # bdist_wheel moved into setuptools
        return "setuptools < 70.1 needs the wheel package (tests/requirements.txt lists it)"
    return ""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ folder of a virtualenv with reactor installed from a copy of the checkout."""
    missing = _missing_build_tools()
    if missing:
        pytest.skip(missing)
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "reactor", source / "reactor", ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = base / "venv"
    try:
        venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    except Exception as exc:  # pragma: no cover - e.g. no ensurepip/venv support on this Python
        pytest.skip("cannot make a virtualenv: %s" % exc)
    bin_dir = env_dir / "bin"
    # The build tools come from the environment running the tests (a tox env holds newer
    # ones than the base interpreter the virtualenv would otherwise see): a .pth file
    # puts the folders holding pip, setuptools and wheel on the new environment's path.
    tool_dirs = sorted(
        {
            str(Path(spec.origin).parent.parent)
            for spec in (importlib.util.find_spec(name) for name in ("pip", "setuptools", "wheel"))
            if spec is not None and spec.origin is not None
        }
    )
    purelib = subprocess.run(
        [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "build_tools.pth").write_text("\n".join(tool_dirs) + "\n")
    result = subprocess.run(
        [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        cwd=base,
        capture_output=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return bin_dir


#: Without PYTHONPATH, nothing but the virtualenv can provide ``reactor``.
ENV = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def _get(port: int, path: str) -> "tuple[int, bytes]":
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_reactor_serves_the_folder_it_is_started_in(installed, tmp_path):
    folder = tmp_path / "my site"
    folder.mkdir()
    (folder / "index.html").write_text("<h1>mine</h1>\n")
    cli = CliServer([], cwd=folder, command=[str(installed / "reactor"), "--port", "0"], env=ENV)
    try:
        assert cli.port, cli.output
        assert str(folder).encode() in cli.output  # the startup line names the folder it serves
        assert _get(cli.port, "/") == (200, b"<h1>mine</h1>\n")
    finally:
        cli.stop()


def test_positional_directory_and_python_m_from_any_folder(installed, tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    cli = CliServer(
        [], cwd=tmp_path, command=[str(installed / "python"), "-m", "reactor", "--port", "0", "other"], env=ENV
    )
    try:
        assert cli.port, cli.output
        assert _get(cli.port, "/a.txt") == (200, b"a\n")
    finally:
        cli.stop()


def test_installed_help_and_errors_name_the_command_as_typed(installed, tmp_path):
    result = subprocess.run(
        [str(installed / "reactor"), "--help"], cwd=tmp_path, capture_output=True, timeout=30, env=ENV
    )
    text = result.stdout.decode()
    assert result.returncode == 0 and text.startswith("usage: reactor ")
    assert "site-packages" not in text
    assert "./resources if the current directory has one" in " ".join(text.split())
    result = subprocess.run(
        [str(installed / "reactor"), "--port", "abc"], cwd=tmp_path, capture_output=True, timeout=30, env=ENV
    )
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[0] == "reactor: --port: 'abc' is not a port number (0-65535)"
