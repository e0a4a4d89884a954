"""The sample site's markup and style, checked without a browser (tests/test_browser.py drives one)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from conftest import RESOURCES


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: "list[tuple[str, dict]]" = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(name: str) -> "list[tuple[str, dict]]":
    parser = _Elements()
    parser.feed((RESOURCES / name).read_text(encoding="utf-8"))
    return parser.found


def test_the_upload_form_cannot_be_submitted_without_script():
    """A plain form POST would send form-urlencoded data and land on a bare 415 page."""
    found = elements("index.html")
    form = next(attrs for tag, attrs in found if tag == "form" and attrs.get("id") == "upload-form")
    assert "action" not in form and "method" not in form
    button = next(attrs for tag, attrs in found if tag == "button" and attrs.get("id") == "upload-button")
    assert "disabled" in button  # the script enables it
    assert any(tag == "noscript" for tag, _ in found)


def test_every_page_reserves_the_scrollbar_gutter():
    css = (RESOURCES / "style.css").read_text(encoding="utf-8")
    assert re.search(r"(^|\n)html\s*\{[^}]*scrollbar-gutter:\s*stable", css)
    for page in ("index.html", "about.html", "contact.html"):
        assert ("link", {"rel": "stylesheet", "href": "style.css"}) in elements(page), page
