"""Validators and conditional requests (RFC 9110 §8.8, §13).

A file's validators are a strong ``ETag`` made from its inode, size and modification
time in nanoseconds (any write changes one of them), and ``Last-Modified``, its
modification time to the second. :class:`Conditions` collects, in one pass over the
request's field lines, every field this module and :mod:`reactor.handlers.ranges`
and :mod:`reactor.handlers.compress` look at; most requests carry none of them, and
then :data:`NO_CONDITIONS` stands in so the fast path tests one identity.

:func:`evaluate` applies the preconditions in the order of RFC 9110 §13.2.2:

1. ``If-Match`` (strong comparison, ``*``) false → 412;
2. else ``If-Unmodified-Since`` earlier than Last-Modified → 412;
3. ``If-None-Match`` (weak comparison, ``*``) false → 304 for GET/HEAD, else 412;
4. else ``If-Modified-Since`` (GET/HEAD) not earlier than Last-Modified → 304.

``If-Range`` (§13.1.5) is step 5 and lives in :func:`if_range_passes`: it decides
whether a Range is honoured or the whole representation is sent.

Everything here is pure string work, cheap enough for the loop thread.
"""

from __future__ import annotations

import calendar
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

# entity-tag = [ weak ] opaque-tag; weak = %s"W/"; opaque-tag = DQUOTE *etagc DQUOTE;
# etagc = %x21 / %x23-7E / obs-text                                      (RFC 9110 §8.8.3)
_ENTITY_TAG = r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"'
ENTITY_TAG = re.compile(_ENTITY_TAG)
# One element of #entity-tag, with its OWS and the comma after it (RFC 9110 §5.6.1
# allows empty elements: "a, , b").
_ENTITY_TAG_ELEMENT = re.compile(r"[ \t]*(?:" + _ENTITY_TAG + r")?[ \t]*(?:,|\Z)")

# HTTP-date = IMF-fixdate / obs-date; obs-date = rfc850-date / asctime-date (§5.6.7)
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_DAY_L = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
IMF_FIXDATE = re.compile(_DAY + r", ([0-9]{2}) " + _MONTH + r" ([0-9]{4}) " + _TIME + r" GMT")
RFC850_DATE = re.compile(_DAY_L + r", ([0-9]{2})-" + _MONTH + r"-([0-9]{2}) " + _TIME + r" GMT")
ASCTIME_DATE = re.compile(_DAY + r" " + _MONTH + r" ([0-9 ][0-9]) " + _TIME + r" ([0-9]{4})")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}

#: Request fields read by the static handler, lower-case as the parser gives them.
FIELD_NAMES = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range", "range", "accept-encoding"}
)


def make_etag(inode: int, size: int, mtime_ns: int, suffix: str = "") -> str:
    """A strong entity-tag (quotes included) from a file's inode, size and mtime in ns.

    ``suffix`` marks another representation of the same file, such as ``"gz"`` for its
    gzip-encoded form, which must carry a distinct ETag (RFC 9110 §8.8.3).
    """
    tag = "%x-%x-%x" % (inode, size, mtime_ns)
    if suffix:
        tag += "-" + suffix
    return '"%s"' % tag


def parse_entity_tags(value: str) -> Optional[List[Tuple[bool, str]]]:
    """``#entity-tag`` → ``[(weak, opaque_tag_with_quotes), ...]``, or None if malformed."""
    tags = []
    position = 0
    end = len(value)
    while position < end:
        match = _ENTITY_TAG_ELEMENT.match(value, position)
        if match is None or match.end() == position:
            return None
        if match.group(2) is not None:
            tags.append((match.group(1) is not None, '"%s"' % match.group(2)))
        position = match.end()
    return tags


def parse_http_date(value: str) -> Optional[int]:
    """An HTTP-date (IMF-fixdate, rfc850-date or asctime-date) → POSIX seconds, or None.

    Exactly one date: a list, another zone or trailing text is invalid (RFC 9110 §5.6.7).
    """
    value = value.strip()
    match = IMF_FIXDATE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second = match.groups()
    else:
        match = RFC850_DATE.fullmatch(value)
        if match is not None:
            day, month, short_year, hour, minute, second = match.groups()
            # A two-digit year more than 50 years ahead is in the past century (§5.6.7).
            this_year = _current_year()
            year_number = this_year - this_year % 100 + int(short_year)
            if year_number > this_year + 50:
                year_number -= 100
            year = str(year_number)
        else:
            match = ASCTIME_DATE.fullmatch(value)
            if match is None:
                return None
            month, day, hour, minute, second, year = match.groups()
    fields = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
    if not (1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] <= 60):
        return None
    return calendar.timegm(fields + (0, 0, 0))


def _current_year() -> int:
    return time.gmtime().tm_year


class Conditions:
    """The request fields that can change a static response, raw values or None.

    ``if_match`` ... ``accept_encoding`` hold the field value as received (repeated
    field lines joined with ``", "``); None means the field was absent.
    """

    __slots__ = (
        "if_match",
        "if_none_match",
        "if_modified_since",
        "if_unmodified_since",
        "if_range",
        "range",
        "accept_encoding",
    )

    def __init__(self, values: Optional[Dict[str, str]] = None) -> None:
        get = (values or {}).get
        self.if_match = get("if-match")
        self.if_none_match = get("if-none-match")
        self.if_modified_since = get("if-modified-since")
        self.if_unmodified_since = get("if-unmodified-since")
        self.if_range = get("if-range")
        self.range = get("range")
        self.accept_encoding = get("accept-encoding")

    @property
    def has_preconditions(self) -> bool:
        return not (
            self.if_match is None
            and self.if_none_match is None
            and self.if_modified_since is None
            and self.if_unmodified_since is None
        )


#: The conditions of a request that has none of :data:`FIELD_NAMES`.
NO_CONDITIONS = Conditions()


def conditions_from_fields(fields: Sequence[Tuple[str, str]]) -> Conditions:
    """One pass over ``(lower-case name, value)`` field lines → :class:`Conditions`."""
    found: Optional[Dict[str, str]] = None
    names = FIELD_NAMES
    for name, value in fields:
        if name in names:
            if found is None:
                found = {name: value}
            elif name in found:
                found[name] += ", " + value  # a list split over field lines (§5.3)
            else:
                found[name] = value
    return NO_CONDITIONS if found is None else Conditions(found)


def _matches(value: str, etag: str, weak_comparison: bool) -> Optional[bool]:
    """Whether the field value ``*`` or its list names ``etag``; None if malformed."""
    if value.strip() == "*":
        return True  # the representation exists, or we would not be here
    tags = parse_entity_tags(value)
    if tags is None:
        return None
    for weak, tag in tags:
        # Strong comparison: both strong and identical; weak: identical opaque-tags.
        if tag == etag and (weak_comparison or not weak):
            return True
    return False


def evaluate(conditions: Conditions, etag: str, last_modified_s: int, method: str, now_s: float) -> Optional[int]:
    """The status a failed precondition calls for (304 or 412), or None to go on.

    ``etag`` is the selected representation's strong entity-tag (with quotes) and
    ``last_modified_s`` its Last-Modified in whole POSIX seconds. Follows RFC 9110
    §13.2.2 steps 1-4; dates that are malformed, lists or in the future are ignored
    (§13.1.3, §13.1.4).
    """
    if conditions.if_match is not None:
        if _matches(conditions.if_match, etag, weak_comparison=False) is not True:
            return 412  # a malformed If-Match cannot be shown true either
    elif conditions.if_unmodified_since is not None:
        date = parse_http_date(conditions.if_unmodified_since)
        if date is not None and last_modified_s > date:
            return 412
    get_or_head = method == "GET" or method == "HEAD"
    if conditions.if_none_match is not None:
        if _matches(conditions.if_none_match, etag, weak_comparison=True):
            return 304 if get_or_head else 412
    elif conditions.if_modified_since is not None and get_or_head:
        date = parse_http_date(conditions.if_modified_since)
        if date is not None and date <= now_s and last_modified_s <= date:
            return 304
    return None


def if_range_passes(value: str, etag: str, last_modified_s: int, now_s: float) -> bool:
    """RFC 9110 §13.1.5: True if the Range may be honoured, False to send everything.

    An entity-tag must match ``etag`` by strong comparison (a weak one never does); a
    date must equal Last-Modified exactly and be a strong validator, that is at
    least one second in the past, so the file cannot have changed twice within it.
    """
    value = value.strip()
    if value.startswith('"') or value.startswith("W/"):
        match = ENTITY_TAG.fullmatch(value)
        return match is not None and match.group(1) is None and '"%s"' % match.group(2) == etag
    date = parse_http_date(value)
    return date is not None and date == last_modified_s and last_modified_s <= now_s - 1
