"""HTML listings of directories without ``index.html`` (only with ``--list-directories``).

A worker job: it reads the directory and stats every entry. Names are HTML-escaped in
text and percent-encoded in links (a file called ``<script>.html`` or ``a"b`` is shown,
never run), sorted directories first and then by name, with sizes and modification
dates in UTC. Dotfiles are left out unless ``--dotfiles``; the same rule makes them 404.
A directory with more than :data:`MAX_ENTRIES` entries is cut short with a note.
"""

from __future__ import annotations

import html
import os
import time
import urllib.parse
from typing import List, Tuple

MAX_ENTRIES = 10_000

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.2em 1.2em 0.2em 0; text-align: left; }}
td.size {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style>
</head>
<body>
<h1>Index of {title}</h1>
<table>
<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
{note}</body>
</html>
"""


def human_size(size: int) -> str:
    """``1536`` → ``"1.5 KiB"``; bytes below 1 KiB are shown as they are."""
    if size < 1024:
        return "%d B" % size
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return "%.1f %s" % (value, unit)


def render_listing(directory: str, url_path: str, show_dotfiles: bool) -> bytes:
    """Worker: the UTF-8 HTML listing of ``directory``, shown as ``url_path``.

    ``url_path`` is the decoded request path ending in ``/``. Raises OSError if the
    directory cannot be read.
    """
    items: List[Tuple[bool, str, str, str]] = []  # (is_dir, name, size, modified)
    skipped = 0
    with os.scandir(directory) as scan:
        for item in scan:
            if not show_dotfiles and item.name.startswith("."):
                continue
            if len(items) >= MAX_ENTRIES:
                skipped += 1
                continue
            try:
                info = item.stat()  # follows symlinks, as serving would
                is_dir = item.is_dir()
            except OSError:
                items.append((False, item.name, "-", "-"))  # e.g. a dangling symlink
                continue
            modified = time.strftime("%Y-%m-%d %H:%M", time.gmtime(info.st_mtime))
            items.append((is_dir, item.name, "-" if is_dir else human_size(info.st_size), modified))
    items.sort(key=lambda item: (not item[0], item[1].casefold(), item[1]))
    rows = []
    if url_path != "/":
        rows.append('<tr><td><a href="../">../</a></td><td class="size">-</td><td></td></tr>')
    for is_dir, name, size, modified in items:
        suffix = "/" if is_dir else ""
        raw_name = os.fsencode(name)  # the bytes on disk, even if they are not UTF-8
        rows.append(
            '<tr><td><a href="%s%s">%s%s</a></td><td class="size">%s</td><td>%s</td></tr>'
            % (
                html.escape(urllib.parse.quote(raw_name, safe=""), quote=True),
                suffix,
                html.escape(raw_name.decode("utf-8", "replace")),
                suffix,
                size,
                modified,
            )
        )
    note = "<p>%d more entries not shown.</p>\n" % skipped if skipped else ""
    page = _PAGE.format(title=html.escape(url_path), rows="\n".join(rows), note=note)
    return page.encode("utf-8", "replace")
