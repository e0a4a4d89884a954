"""HTML listings of directories without ``index.html`` (only with ``--list-directories``).

A worker job: it reads the directory and stats every entry. Names are HTML-escaped in
text and percent-encoded in links (a file called ``<script>.html`` or ``a"b`` is shown,
never run). Directories come first, then files, sorted by name, size or modification
time as the query asks (``?sort=name|size|date&order=asc|desc``, links in the column
heads; no script), with sizes and dates in UTC and a link to the parent folder. The page
carries its own style, the sample site's, since the folder served may have no CSS.
Dotfiles are left out unless ``--dotfiles``; the same rule makes them 404. A directory
with more than :data:`MAX_ENTRIES` entries is cut short with a note.
"""

from __future__ import annotations

import html
import os
import time
import urllib.parse
from typing import Callable, Dict, List, NamedTuple, Tuple

MAX_ENTRIES = 10_000
SORT_KEYS = ("name", "size", "date")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Index of {title}</title>
<style>
:root {{ --bg: #f7f6f2; --fg: #1f2430; --muted: #5b6272; --accent: #1f7a8c; --warm: #e08a2c;
  --card: #ffffff; --line: #dcd9d0; }}
html {{ scrollbar-gutter: stable; }}
body {{ margin: 0; background: var(--bg); color: var(--fg);
  font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }}
header, main, footer {{ max-width: 46rem; margin: 0 auto; padding: 0 1.25rem; }}
header {{ padding-top: 1.25rem; }}
.brand {{ font-weight: 700; font-size: 1.25rem; color: var(--fg); letter-spacing: .02em; }}
.brand span {{ color: var(--warm); }}
h1 {{ font-size: 1.5rem; margin: 1.5rem 0 .75rem; overflow-wrap: anywhere; }}
a {{ color: var(--accent); }}
table {{ width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line);
  border-radius: .6rem; overflow: hidden; }}
th, td {{ padding: .35rem .9rem; text-align: left; border-bottom: 1px solid var(--line); }}
th a {{ color: var(--fg); text-decoration: none; }}
th a:hover {{ text-decoration: underline; }}
td.name {{ overflow-wrap: anywhere; }}
td.size, th.size {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
td.date {{ color: var(--muted); font-variant-numeric: tabular-nums; white-space: nowrap; }}
tr:last-child td {{ border-bottom: 0; }}
footer {{ color: var(--muted); font-size: .85rem; padding-top: 1.5rem; padding-bottom: 2rem; }}
</style>
</head>
<body>
<header><span class="brand">re<span>actor</span></span></header>
<main>
<h1>Index of {title}</h1>
<table>
<thead><tr>{heads}</tr></thead>
<tbody>
{rows}
</tbody>
</table>
{note}</main>
<footer>{count}</footer>
</body>
</html>
"""


class Item(NamedTuple):
    is_dir: bool
    name: str
    size: int  # -1 when unknown (a dangling symlink) or a directory
    mtime: float  # POSIX seconds; -1 when unknown


def parse_sort(query: str) -> Tuple[str, bool]:
    """``"sort=size&order=desc"`` → ``("size", True)``; anything unknown is ``("name", False)``."""
    values = urllib.parse.parse_qs(query, keep_blank_values=True)
    key = (values.get("sort") or ["name"])[-1]
    if key not in SORT_KEYS:
        key = "name"
    return key, (values.get("order") or ["asc"])[-1] == "desc"


_SORTERS: Dict[str, Callable[[Item], Tuple[object, ...]]] = {
    "name": lambda item: (item.name.casefold(), item.name),
    "size": lambda item: (item.size, item.name.casefold(), item.name),
    "date": lambda item: (item.mtime, item.name.casefold(), item.name),
}


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


def render_listing(directory: str, url_path: str, show_dotfiles: bool, query: str = "") -> bytes:
    """Worker: the UTF-8 HTML listing of ``directory``, shown as ``url_path``.

    ``url_path`` is the decoded request path ending in ``/``; ``query`` the request's
    query, for the order (:func:`parse_sort`). Raises OSError if the directory cannot be read.
    """
    items: List[Item] = []
    skipped = 0
    with os.scandir(directory) as scan:
        for entry in scan:
            if not show_dotfiles and entry.name.startswith("."):
                continue
            if len(items) >= MAX_ENTRIES:
                skipped += 1
                continue
            try:
                info = entry.stat()  # follows symlinks, as serving would
                is_dir = entry.is_dir()
            except OSError:
                items.append(Item(False, entry.name, -1, -1))  # e.g. a dangling symlink
                continue
            items.append(Item(is_dir, entry.name, -1 if is_dir else info.st_size, info.st_mtime))
    key, descending = parse_sort(query)
    sorter = _SORTERS[key]
    folders = sorted((item for item in items if item.is_dir), key=sorter, reverse=descending)
    files = sorted((item for item in items if not item.is_dir), key=sorter, reverse=descending)
    heads = []
    for column, label, css in (("name", "Name", "name"), ("size", "Size", "size"), ("date", "Modified (UTC)", "date")):
        order = "desc" if column == key and not descending else "asc"
        arrow = (" \u2193" if descending else " \u2191") if column == key else ""
        link = '<th class="%s"><a href="?sort=%s&amp;order=%s">%s%s</a></th>'
        heads.append(link % (css, column, order, label, arrow))
    rows = []
    if url_path != "/":
        rows.append(
            '<tr><td class="name"><a href="../">../</a> (parent folder)</td>'
            '<td class="size"></td><td class="date"></td></tr>'
        )
    for item in folders + files:
        suffix = "/" if item.is_dir else ""
        raw_name = os.fsencode(item.name)  # the bytes on disk, even if they are not UTF-8
        size = "-" if item.size < 0 else human_size(item.size)
        modified = "-" if item.mtime < 0 else time.strftime("%Y-%m-%d %H:%M", time.gmtime(item.mtime))
        rows.append(
            '<tr><td class="name"><a href="%s%s">%s%s</a></td><td class="size">%s</td><td class="date">%s</td></tr>'
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
    count = "%d folder%s, %d file%s" % (
        len(folders),
        "" if len(folders) == 1 else "s",
        len(files),
        "" if len(files) == 1 else "s",
    )
    page = _PAGE.format(title=html.escape(url_path), heads="".join(heads), rows="\n".join(rows), note=note, count=count)
    return page.encode("utf-8", "replace")
