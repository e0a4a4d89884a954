"""Let ``python3 -m tox`` find every Python 3.10-3.13 that pyenv installed (tox loads this file).

tox looks for ``python3.10`` ... ``python3.13`` on PATH, where pyenv puts its shims; but
a shim runs only the versions that ``PYENV_VERSION`` (else ``.python-version``, else the
global version) names, so tox found just one. Before any environment is made, this adds
the newest installed 3.10, 3.11, 3.12 and 3.13 to ``PYENV_VERSION``, after what it names
already. Without pyenv it does nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, Dict, List, Tuple

from tox.plugin import impl

_SUPPORTED = re.compile(r"^3\.(1[0-3])\.(\d+)$")  # CPython releases; not 3.13.0t, not pypy


def _pyenv(*args: str) -> str:
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return ""
    try:
        done = subprocess.run([pyenv, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout if done.returncode == 0 else ""


def pyenv_versions(named: str, installed: List[str]) -> str:
    """``named`` (a PYENV_VERSION value) followed by the newest installed 3.10-3.13 it lacks."""
    names = [name for name in named.split(":") if name]
    newest: Dict[str, Tuple[int, str]] = {}
    for version in installed:
        match = _SUPPORTED.match(version)
        if match and int(match.group(2)) >= newest.get(match.group(1), (-1, ""))[0]:
            newest[match.group(1)] = (int(match.group(2)), version)
    for minor in sorted(newest):
        version = newest[minor][1]
        if not any(name.startswith("3.%s." % minor) for name in names):
            names.append(version)
    return ":".join(names)


@impl
def tox_add_core_config(core_conf: Any, state: Any) -> None:
    installed = _pyenv("versions", "--bare").split()
    if not installed:
        return
    versions = pyenv_versions(os.environ.get("PYENV_VERSION") or _pyenv("version-name").strip(), installed)
    if versions:
        os.environ["PYENV_VERSION"] = versions
