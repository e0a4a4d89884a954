"""A short soak in the normal test run: mixed load, then no leaked descriptor, no lost upload.

The same load as ``tests/benchmarks/soak.py`` (``tox -e soak -- --minutes 10``), for 10
seconds and four client threads. It asserts what must hold however fast the machine is:
descriptors back to the baseline, every ``201`` upload on disk byte for byte, no
traceback in the server's log, no wrong answer. It does not judge speed or RSS.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
import soak  # noqa: E402

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")


@linux_only
def test_short_soak_leaks_no_descriptor_and_loses_no_upload() -> None:
    out = io.StringIO()
    report = soak.run(seconds=10, interval_s=5, clients=4, out=out)
    summary = out.getvalue()
    assert report.requests > 0 and report.uploads > 0, summary
    assert report.fds_returned, summary
    assert not report.lost_uploads, summary
    assert not report.log_problems, summary
    assert not report.unexpected, summary
    assert set(report.counts) == {
        "get small",
        "get 1 MiB",
        "range",
        "304",
        "gzip",
        "upload",
        "malformed",
        "abandoned request",
        "abandoned response",
    }, summary
