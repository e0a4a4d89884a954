"""A real browser on the sample site: the page and its images render, the upload form works.

Headless Chromium (Debian's ``chromium`` package; ``.ci/run`` installs it) is driven over
the DevTools protocol by tests/devtools.py. Without Chromium the test is skipped.

The screenshot goes to the test's temporary folder; to refresh the one the docs show::

    REACTOR_SCREENSHOT=docs/img/index.png python3 -m pytest tests/test_browser.py
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Iterator

import pytest

from devtools import Browser
from reactor.handlers.upload import UPLOADS_DIR

BOTH_TRANSPORTS = True  # the site over http:// and over https:// (conftest)

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="Chromium is not installed (%s); `apt-get install chromium` (.ci/run does) to run the browser check"
    % CHROMIUM,
)

PAGE_STATE = """(() => ({
    title: document.title,
    heading: document.querySelector("h1").textContent,
    images: Array.from(document.images).map(i => ({src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth})),
    form: !!document.querySelector("#upload-form #json") && !!document.querySelector("#upload-button"),
}))()"""

# Resolves when the page's script has put an answer in #result (or after 10 s).
UPLOAD_RESULT = """new Promise((resolve) => {
    const result = document.getElementById("result");
    const done = () => result.dataset.status && result.dataset.status !== "pending";
    const answer = () => ({status: result.dataset.status, file: result.dataset.file || null, text: result.textContent});
    if (done()) { resolve(answer()); return; }
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(answer()); } });
    observer.observe(result, {attributes: true, childList: true, subtree: true});
    setTimeout(() => { observer.disconnect(); resolve(answer()); }, 10000);
})"""


@contextlib.contextmanager
def browse(running, profile: Path) -> Iterator[Browser]:
    """Headless Chromium for ``running``; over TLS it accepts the test CA's certificate."""
    with Browser(CHROMIUM, profile) as browser:
        if running.tls is not None:  # the test CA is not in Chromium's store; this browser is ours alone
            browser.call("Security.setIgnoreCertificateErrors", {"ignore": True})
        yield browser


def png_size(data: bytes) -> "tuple[int, int]":
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack("!II", data[16:24])  # the IHDR chunk comes first
    return width, height


def test_index_renders_and_upload_form_stores_a_file(make_server, tmp_path):
    running = make_server()
    with browse(running, tmp_path / "profile") as browser:
        page = browser.new_page()
        page.navigate(running.url)
        assert page.evaluate("location.protocol") == ("https:" if running.tls is not None else "http:")

        state = page.evaluate(PAGE_STATE)
        assert "reactor" in state["title"]
        assert state["heading"] == "It works."
        assert state["form"]
        assert sorted(image["src"] for image in state["images"]) == ["logo.png", "photo.jpg"]
        for image in state["images"]:
            assert image["complete"] and image["width"] > 0, "image did not render: %r" % image

        document = {"message": "typed in headless Chromium", "marker": os.urandom(6).hex()}
        page.type_into("#json", json.dumps(document))
        page.click("#upload-button")
        result = page.evaluate(UPLOAD_RESULT)
        assert result["status"] == "201", result
        assert re.fullmatch(r"upload_\d{8}_\d{6}_[0-9a-f]+\.json", result["file"] or ""), result
        stored = running.root / UPLOADS_DIR / result["file"]
        assert json.loads(stored.read_text(encoding="utf-8")) == document
        assert page.evaluate('document.getElementById("result-link").getAttribute("href")') == (
            "/%s/%s" % (UPLOADS_DIR, result["file"])
        )

        shot = page.screenshot()
    width, height = png_size(shot)
    assert width >= 900 and height >= 600
    (tmp_path / "index.png").write_bytes(shot)
    target = os.environ.get("REACTOR_SCREENSHOT")
    if target and running.tls is None:
        Path(target).write_bytes(shot)


def test_an_upload_error_says_its_status_once(make_server, tmp_path):
    running = make_server()
    with browse(running, tmp_path / "profile") as browser:
        page = browser.new_page()
        page.navigate(running.url)
        page.type_into("#json", '{"unfinished": ')
        page.click("#upload-button")
        result = page.evaluate(UPLOAD_RESULT)
    assert result["status"] == "400", result
    assert result["text"].startswith("Error 400 Bad Request: invalid JSON"), result
    assert result["text"].count("400") == 1, result


def test_every_page_keeps_the_scrollbar_gutter(make_server, tmp_path):
    """A short page (contact) must not shift against a long one when the scrollbar comes and goes."""
    running = make_server()
    with browse(running, tmp_path / "profile") as browser:
        page = browser.new_page(height=700)
        for name in ("index.html", "about.html", "contact.html"):
            page.navigate(running.url + name)
            gutter = page.evaluate("getComputedStyle(document.documentElement).scrollbarGutter")
            assert gutter == "stable", (name, gutter)


def test_without_javascript_the_form_cannot_be_submitted(make_server, tmp_path):
    """No script, no fetch(): the button stays disabled and the page says how to upload instead."""
    running = make_server()
    with browse(running, tmp_path / "profile") as browser:
        page = browser.new_page()
        page.call("Emulation.setScriptExecutionDisabled", {"value": True})
        page.navigate(running.url)
        state = page.evaluate("""(() => ({
            disabled: document.getElementById("upload-button").disabled,
            action: document.getElementById("upload-form").getAttribute("action"),
            method: document.getElementById("upload-form").getAttribute("method"),
            note: Array.from(document.querySelectorAll("noscript")).map(n => n.textContent).join(" "),
        }))()""")
    assert state["disabled"] is True, state
    assert state["action"] is None and state["method"] is None, state  # nothing would POST a form to /upload
    assert "curl" in state["note"], state
