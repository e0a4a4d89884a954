"""--live-reload in a real browser: an edited page reloads with its new content; an edited stylesheet is swapped in place.

Headless Chromium (tests/devtools.py drives it over the DevTools protocol) loads a page
from a server started with live reload, over http:// and over https:// (then the
script's socket is wss://). A marker set on ``window`` tells a reload (it is gone) from
a stylesheet swap (it stays). A hidden tab closes its socket and, shown again after a
change, reloads. Last, the server restarts while the page is open: the script reconnects
(with back-off) and the later epoch reloads it.
"""

from __future__ import annotations

import os
import time

import pytest
from test_browser import CHROMIUM, browse

from conftest import wait_for
from devtools import DevToolsError

BOTH_TRANSPORTS = True  # over http:// and https:// (conftest)

pytestmark = pytest.mark.skipif(
    not os.access(CHROMIUM, os.X_OK),
    reason="Chromium is not installed; `apt-get install chromium` (.ci/run does) to run the browser check",
)

PAGE = """<!doctype html>
<html><head><title>live</title><link rel="stylesheet" href="/live.css"></head>
<body><h1 id="title">%s</h1></body></html>
"""

STATE = """(() => ({
    title: document.getElementById("title").textContent,
    color: getComputedStyle(document.getElementById("title")).color,
    marker: window.reactorTestMarker || null,
    sheets: document.querySelectorAll('link[rel="stylesheet"]').length,
}))()"""


# Headless Chromium has no tab to hide: the page is told it is hidden (or shown) the way a
# browser tells it, by document.hidden and a visibilitychange event.
VISIBILITY = """(() => {
    Object.defineProperty(document, "hidden", {value: %s, configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
})()"""


def poll(page, predicate, timeout_s: float = 20.0, what: str = "the page"):
    """Evaluate STATE until ``predicate(state)`` holds; the last state, or a failure after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            state = page.evaluate(STATE)
        except DevToolsError:  # between two documents during a reload
            state = None
        if state is not None and predicate(state):
            return state
        assert time.monotonic() < deadline, "timed out waiting for %s: %r" % (what, state)
        time.sleep(0.05)


def test_a_page_reloads_when_edited_and_a_stylesheet_is_swapped_without_a_reload(make_server, site, tmp_path):
    (site / "live.html").write_text(PAGE % "first version")
    (site / "live.css").write_text("h1 { color: rgb(0, 0, 255) }\n")
    running = make_server(live_reload=True)
    live = running.server.live
    sockets = lambda: running.call(lambda: {session.id for session in live.sockets})  # noqa: E731

    with browse(running, tmp_path / "profile") as browser:
        page = browser.new_page()
        page.navigate(running.url + "live.html")
        state = page.evaluate(STATE)
        assert state["title"] == "first version" and state["color"] == "rgb(0, 0, 255)", state
        assert page.evaluate("location.protocol") == ("https:" if running.tls is not None else "http:")
        first = wait_for(lambda: sockets() if len(sockets()) == 1 else None, 20.0, "the page's live-reload socket")
        page.evaluate("window.reactorTestMarker = 'before'")

        # 1. The page itself changes: the browser reloads it and shows the new content.
        (site / "live.html").write_text(PAGE % "second version")
        state = poll(page, lambda s: s["title"] == "second version", what="the reload")
        assert state["marker"] is None, "the page was not reloaded: %r" % state
        # The reloaded page's own socket (not the old one, closing) must be open before the next change.
        wait_for(lambda: len(sockets()) == 1 and sockets() != first, 20.0, "the reloaded page's socket")

        # 2. Only the stylesheet changes: swapped in place, no reload.
        page.evaluate("window.reactorTestMarker = 'kept'")
        (site / "live.css").write_text("h1 { color: rgb(255, 0, 0) }\n")
        state = poll(page, lambda s: s["color"] == "rgb(255, 0, 0)" and s["sheets"] == 1, what="the new style")
        assert state["marker"] == "kept", "a stylesheet change reloaded the page: %r" % state
        assert state["title"] == "second version"

        # 3. The tab is hidden: the script closes its socket and opens none until the tab is
        # shown again; a change made meanwhile reloads the page then (the hello's later epoch).
        epoch = running.call(lambda: live.epoch)
        page.evaluate(VISIBILITY % "true")
        wait_for(lambda: not sockets(), 20.0, "the hidden page to close its socket")
        page.evaluate("window.reactorTestMarker = 'hidden'")
        (site / "live.html").write_text(PAGE % "edited while hidden")
        wait_for(lambda: running.call(lambda: live.epoch) > epoch, 20.0, "the server to see the change")
        assert not sockets(), "a hidden page reconnected"
        assert page.evaluate(STATE)["marker"] == "hidden", "a hidden page was reloaded"
        page.evaluate(VISIBILITY % "false")
        state = poll(page, lambda s: s["title"] == "edited while hidden", what="the reload once shown")
        assert state["marker"] is None, state
        wait_for(lambda: len(sockets()) == 1, 20.0, "the shown page's socket")

        # 4. The server stops (its sockets get Close 1001), the page changes meanwhile, a new
        # server starts on the same port: the page reconnects, hears a later epoch, reloads.
        port = running.port
        running.stop(graceful=True)
        (site / "live.html").write_text(PAGE % "third version")
        make_server(live_reload=True, port=port)
        state = poll(
            page,
            lambda s: s["title"] == "third version" and s["color"] == "rgb(255, 0, 0)",  # its stylesheet loaded too
            what="the reconnect and reload",
        )
        assert state["marker"] is None, state
