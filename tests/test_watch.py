"""The watcher behind --live-reload: inotify and polling on a real folder, the debounce, what is ignored.

The watcher is driven here as the supervisor drives it (one thread: select on inotify's
descriptor, list new folders, scan when polling, take a batch once due), with bounded
waits. A test that says "one save is one batch" also waits a little past the batch for a
second one that must not come.
"""

from __future__ import annotations

import errno
import os
import selectors
import time
from pathlib import Path
from typing import List, Optional

import pytest

from reactor import watch
from reactor.watch import Batch, Debouncer, IgnoreRules, Watcher

MODES = ["inotify", "poll"] if watch.inotify_available() else ["poll"]
POLL_S = 0.05


def next_batch(watcher: Watcher, timeout_s: float = 5.0) -> Optional[Batch]:
    """Drive ``watcher`` until it has a batch, for at most ``timeout_s``; None if none came."""
    selector = selectors.DefaultSelector()
    registered = -1
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            fd = watcher.fileno()
            if fd != registered:
                if registered >= 0:
                    selector.unregister(registered)
                if fd >= 0:
                    selector.register(fd, selectors.EVENT_READ)
                registered = fd
            now = time.monotonic()
            if now >= deadline:
                return None
            wake = deadline
            for due in (watcher.deadline(), watcher.next_scan_at if watcher.backend == "poll" else None):
                if due is not None:
                    wake = min(wake, due)
            if registered >= 0:
                if selector.select(max(0.0, wake - now)):
                    watcher.read(time.monotonic())
            else:
                time.sleep(max(0.0, wake - now))  # polling: nothing to wait on but the clock
            new_dirs = watcher.take_new_dirs()
            if new_dirs:
                watcher.trees_added(watcher.add_trees(new_dirs), time.monotonic())
            if watcher.backend == "poll" and time.monotonic() >= watcher.next_scan_at:
                watcher.scanned(watch.scan_tree(watcher.root, watcher.rules), time.monotonic())
            batch = watcher.take(time.monotonic())
            if batch is not None:
                return batch
    finally:
        selector.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "uploads").mkdir()
    (root / "index.html").write_text("<html><body>one</body></html>")
    (root / "css" / "site.css").write_text("body { color: black }")
    return root


@pytest.fixture(params=MODES)
def watcher(request: pytest.FixtureRequest, folder: Path) -> Watcher:
    made = Watcher(str(folder), IgnoreRules(("drafts",)), mode=request.param, interval_s=POLL_S)
    assert made.backend == request.param
    yield made
    made.close()


def editor_save(path: Path, text: str) -> None:
    """What vim (with backups) and many editors do: probe, swap file, backup, temp file renamed over."""
    folder = path.parent
    probe = folder / "4913"
    probe.write_text("")
    probe.unlink()
    swap = folder / (".%s.swp" % path.name)
    swap.write_text("swap")
    (folder / (path.name + "~")).write_text(path.read_text())
    temp = folder / ("#%s#" % path.name)
    temp.write_text("autosave")
    temp.unlink()
    fresh = folder / (".%s.tmp" % path.name)
    fresh.write_text(text)
    os.replace(fresh, path)
    swap.unlink()


def test_one_editor_save_is_one_batch_naming_only_the_file(watcher, folder):
    first = watcher.epoch
    editor_save(folder / "index.html", "<html><body>two</body></html>")
    batch = next_batch(watcher)
    assert batch is not None
    assert batch.paths == ("index.html",)
    assert batch.epoch == first + 1 and not batch.overflow
    assert next_batch(watcher, timeout_s=0.3) is None  # nothing left over for a second reload


def test_five_edits_in_50_ms_are_merged_into_one_batch(watcher, folder):
    written = []
    for number in range(5):
        (folder / "css" / "site.css").write_text("body { color: #%06d }" % number)
        (folder / ("page%d.html" % number)).write_text("<p>%d</p>" % number)
        written.append(time.monotonic())
    expected = {"css/site.css", "page0.html", "page1.html", "page2.html", "page3.html", "page4.html"}
    batches = []
    while set().union(*[batch.paths for batch in batches]) != expected:
        batch = next_batch(watcher)
        assert batch is not None, "changes were dropped: %r" % batches
        batches.append(batch)
    assert next_batch(watcher, timeout_s=0.3) is None
    longest_gap = max(later - earlier for earlier, later in zip(written, written[1:]))
    if longest_gap < watch.QUIET_S:  # a machine too busy to write them within the quiet time proves nothing
        assert len(batches) == 1, (batches, written)


def test_new_folders_new_and_deleted_files_are_reported(watcher, folder):
    (folder / "blog" / "2026").mkdir(parents=True)
    (folder / "blog" / "2026" / "post.html").write_text("<p>new</p>")
    (folder / "css" / "site.css").unlink()
    batch = next_batch(watcher)
    assert batch is not None
    files = {path for path in batch.paths if not path.endswith("/")}
    assert files == {"blog/2026/post.html", "css/site.css"}, batch
    # The new folder is watched from now on (or listed, when polling).
    (folder / "blog" / "2026" / "post.html").write_text("<p>edited</p>")
    batch = next_batch(watcher)
    assert batch is not None and batch.paths == ("blog/2026/post.html",)


def test_uploads_dotfiles_and_ignored_patterns_never_make_a_batch(watcher, folder):
    (folder / "uploads" / "upload_1.json").write_text("{}")
    (folder / ".env").write_text("SECRET=1")
    (folder / "drafts").mkdir()
    (folder / "drafts" / "a.html").write_text("draft")
    (folder / "notes.txt~").write_text("backup")
    (folder / "index.html").write_text("<html><body>real</body></html>")
    batch = next_batch(watcher)
    assert batch is not None and batch.paths == ("index.html",), batch


def test_watches_running_out_falls_back_to_polling(folder, monkeypatch):
    if not watch.inotify_available():
        pytest.skip("no inotify here")

    def exhausted(self, path):
        raise watch.WatchesExhausted(errno.ENOSPC, "inotify watches exhausted", path)

    with monkeypatch.context() as patch:
        patch.setattr(watch.Inotify, "add", exhausted)
        with pytest.raises(watch.WatchesExhausted):
            Watcher(str(folder), mode="inotify")
        fallen = Watcher(str(folder), mode="auto", interval_s=POLL_S)
    assert fallen.backend == "poll" and "max_user_watches" in fallen.describe()
    (folder / "index.html").write_text("<p>polled</p>")
    batch = next_batch(fallen)
    assert batch is not None and batch.paths == ("index.html",)


def test_watches_running_out_later_falls_back_without_losing_the_new_folder(folder, monkeypatch):
    if not watch.inotify_available():
        pytest.skip("no inotify here")
    watcher = Watcher(str(folder), mode="auto", interval_s=POLL_S)
    assert watcher.backend == "inotify"
    real_add = watch.Inotify.add

    def exhausted_below_root(self, path):
        if path != watcher.root:
            raise watch.WatchesExhausted(errno.ENOSPC, "inotify watches exhausted", path)
        return real_add(self, path)

    monkeypatch.setattr(watch.Inotify, "add", exhausted_below_root)
    (folder / "docs").mkdir()
    (folder / "docs" / "a.html").write_text("a")
    batch = next_batch(watcher)
    assert batch is not None and "docs/" in batch.paths
    assert watcher.backend == "poll" and watcher.fileno() == -1
    (folder / "docs" / "a.html").write_text("changed")
    batch = next_batch(watcher)
    assert batch is not None and batch.paths == ("docs/a.html",)
    watcher.close()


# -- the parts, without a disk ---------------------------------------------------------------


def test_debounce_waits_for_quiet_and_never_longer_than_the_maximum():
    debounce = Debouncer(quiet_s=0.05, max_wait_s=1.0)
    assert debounce.deadline() is None and debounce.take(0.0) is None
    debounce.add("a.html", 10.0)
    debounce.add("b.css", 10.04)
    assert debounce.deadline() == pytest.approx(10.09)
    assert debounce.take(10.08) is None
    assert debounce.take(10.09) == (frozenset({"a.html", "b.css"}), False)
    assert debounce.deadline() is None
    for step in range(40):  # a change every 30 ms for 1.2 s: quiet never comes
        debounce.add("c.js", 20.0 + step * 0.03)
    assert debounce.deadline() == pytest.approx(21.0)


def test_a_file_still_open_for_writing_holds_the_batch_until_it_is_closed():
    debounce = Debouncer(quiet_s=0.05, max_wait_s=1.0)
    debounce.add("big.html", 5.0, watch.WRITING)
    assert debounce.deadline() == pytest.approx(6.0)  # only the maximum: the save is not over
    debounce.add("big.html", 5.3, watch.CLOSED)
    assert debounce.deadline() == pytest.approx(5.35)
    debounce.overflowed(5.31)
    assert debounce.take(5.36) == (frozenset({"big.html"}), True)


def test_ignore_rules():
    rules = IgnoreRules(("*.map", "build", "drafts/*"))
    for rel in ("index.html", "css/site.css", "a/uploads/x.json", "uploads.html", "notes/4913.txt"):
        assert not rules.ignores(rel), rel
    for rel in (".git", "a/.index.html.swp", "index.html~", "#index.html#", "index.html.swp", "4913", "uploads"):
        assert rules.ignores(rel, is_dir=rel in (".git", "uploads")), rel
    assert rules.ignores("js/app.js.map") and rules.ignores("build", is_dir=True) and rules.ignores("drafts/a.html")
    assert rules.ignores("index.html___jb_tmp___")


def test_batches_cross_a_pipe_whole_and_in_pieces():
    batches = [Batch(7, ("index.html", "caf\udce9.html")), Batch(8, (), overflow=True)]
    wire = b"".join(batch.encode() for batch in batches)
    buffer = bytearray()
    received: List[Batch] = []
    for byte in range(len(wire)):
        buffer += wire[byte : byte + 1]
        received.extend(Batch.decode(buffer))
    assert received == batches and not buffer
