"""Drive headless Chromium over the DevTools protocol, with the standard library only.

Chromium started with ``--remote-debugging-port=0`` prints
``DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID`` on stderr. This module
speaks just enough WebSocket (RFC 6455: client handshake, masked text frames out,
fragmented text frames in, ping, close) to send DevTools commands to that endpoint and
read their results and events. Every wait is bounded: socket timeouts plus a deadline.

Used by tests/test_browser.py::

    with Browser(binary, profile_dir) as browser:
        page = browser.new_page()
        page.navigate("http://127.0.0.1:8080/")
        page.evaluate("document.title")
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional

from conftest import stop_process

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")

#: Flags for a quiet, self-contained headless run as root (no sandbox, no network of its own).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class DevToolsError(Exception):
    """Chromium answered a command with an error, closed, or did not answer in time."""


class WebSocket:
    """A client WebSocket over a plain socket; text messages only."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % ((parts.path or "/").encode(), host.encode(), port, key)
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            raise DevToolsError("WebSocket handshake refused: %r" % head[:200])

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise DevToolsError("DevTools connection closed")
        self.buf += chunk

    def _take(self, size: int) -> bytes:
        while len(self.buf) < size:
            self._fill()
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
        elif size < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
        mask = os.urandom(4)  # clients must mask every frame (RFC 6455 §5.3)
        repeated = (mask * (size // 4 + 1))[:size]
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
        self.sock.sendall(header + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode("utf-8"))

    def recv(self) -> str:
        """The next whole text message (fragments joined); answers pings on the way."""
        parts: List[bytes] = []
        while True:
            first, second = self._take(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", self._take(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", self._take(8))
            mask = self._take(4) if second & 0x80 else b""
            payload = self._take(size)
            if mask:
                repeated = (mask * (size // 4 + 1))[:size]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(size, "big")
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:
                continue
            if opcode == 0x8:
                raise DevToolsError("DevTools closed the WebSocket")
            parts.append(payload)
            if first & 0x80:
                return b"".join(parts).decode("utf-8")

    def close(self) -> None:
        try:
            self._send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    """A headless Chromium process and one DevTools connection to it."""

    def __init__(self, binary: str, profile_dir: Path, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            [binary, *FLAGS, "--user-data-dir=%s" % profile_dir, "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.stderr = b""
        self._endpoint: Optional[str] = None
        self._ready = threading.Event()
        # Drain stderr for the whole run: a full pipe would block Chromium.
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.ws: Optional[WebSocket] = None
        self._next_id = 0
        self._events: List[Dict[str, Any]] = []
        try:
            if not self._ready.wait(timeout_s) or self._endpoint is None:
                raise DevToolsError(
                    "Chromium did not open DevTools within %.0f s: %s"
                    % (timeout_s, self.stderr[-2000:].decode("replace"))
                )
            self.ws = WebSocket(self._endpoint, timeout_s)
        except BaseException:
            self.close()
            raise

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr += line
            match = _LISTENING.search(line)
            if match and self._endpoint is None:
                self._endpoint = match.group(1).decode()
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(
        self, method: str, params: Optional[Dict[str, Any]] = None, session: Optional[str] = None
    ) -> Dict[str, Any]:
        """Send one command; return its ``result``. Events read meanwhile are kept for :meth:`wait_event`."""
        assert self.ws is not None
        self._next_id += 1
        message: Dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            answer = json.loads(self.ws.recv())
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise DevToolsError("%s: %s" % (method, answer["error"]))
                return answer.get("result", {})
            if "method" in answer:
                self._events.append(answer)
        raise DevToolsError("no answer to %s within %.0f s" % (method, self.timeout_s))

    def wait_event(self, method: str, session: Optional[str] = None) -> Dict[str, Any]:
        """The params of the first (kept or next) event ``method`` for ``session``."""
        assert self.ws is not None
        deadline = time.monotonic() + self.timeout_s
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method and event.get("sessionId") == session:
                    del self._events[index]
                    return event.get("params", {})
            if time.monotonic() >= deadline:
                raise DevToolsError("no %s event within %.0f s" % (method, self.timeout_s))
            self._events.append(json.loads(self.ws.recv()))

    def new_page(self, width: int = 960, height: int = 1200) -> "Page":
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.call("Page.enable")
        page.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        return page

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        stop_process(self.proc)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class Page:
    """One tab, attached in flat mode (commands carry its ``sessionId``)."""

    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def call(self, method: str, params: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        return self.browser.call(method, params, self.session)

    def navigate(self, url: str) -> None:
        """Load ``url`` and wait for its load event (images included)."""
        answer = self.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise DevToolsError("navigation to %s failed: %s" % (url, answer["errorText"]))
        self.browser.wait_event("Page.loadEventFired", self.session)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (promises awaited), returned by value."""
        answer = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in answer:
            raise DevToolsError("JavaScript failed: %s" % answer["exceptionDetails"])
        return answer["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        box = self.evaluate(
            "(() => { const e = document.querySelector(%s); e.scrollIntoView({block: 'center'});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
            % json.dumps(selector)
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
            )

    def type_into(self, selector: str, text: str) -> None:
        """Replace the value of a text field as typing would (focus, select all, insert)."""
        self.evaluate(
            "(() => { const e = document.querySelector(%s); e.focus(); e.select(); })()" % json.dumps(selector)
        )
        self.call("Input.insertText", {"text": text})

    def screenshot(self) -> bytes:
        """A PNG of the whole page, beyond the viewport."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        answer = self.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
        )
        return base64.b64decode(answer["data"])
