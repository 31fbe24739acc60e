"""report.html in headless Chromium: every plot decodes, no console errors, no network, a screenshot.

Chromium comes from Debian (``.ci/install-chromium.sh``); a missing browser fails the test.
"""

from __future__ import annotations

import os
import pathlib
import struct

import pytest

from distdataeval.report import write_report
from tests.report.cdp import Chromium, find_chromium
from tests.report.conftest import copy_store
from tests.report.page import PNG_SIGNATURE
from tests.report.test_report import PLOT_IDS, SECTION_IDS

ARTIFACTS = pathlib.Path(__file__).parent / "artifacts"


def require_chromium() -> str:
    """The Chromium executable; fails (never skips) the calling test when it is missing."""
    exe = find_chromium()
    if exe is None:
        pytest.fail("Chromium is not installed: run .ci/install-chromium.sh (Debian package 'chromium')")
    return exe


@pytest.fixture(scope="module")
def browser():
    with Chromium(require_chromium()) as b:
        yield b


def _offsite(requests: list[str]) -> list[str]:
    return [u for u in requests if not u.startswith(("file://", "data:"))]


def test_report_renders_in_chromium(run_store, browser):
    path = write_report(run_store.path, run_store.x, sample_size=1500, seed=7)
    run = browser.load(path.as_uri())
    assert run.errors == []
    assert _offsite(run.requests) == []
    got = {img["id"]: img for img in run.images}
    assert sorted(got) == sorted(f"plot-{p}" for p in PLOT_IDS)
    for img in run.images:
        assert img["ok"] and img["w"] >= 600 and img["h"] >= 300, img
    assert [s["id"] for s in run.sections] == SECTION_IDS
    for s in run.sections:
        assert s["height"] > 40 and s["title"], s["id"]
        assert "Not computed" not in s["text"], s["id"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.write_bytes(run.screenshot)
    assert run.screenshot[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", run.screenshot[16:24])
    assert width == 1200 and height > 3000  # the whole page, not just the viewport


def test_partial_report_renders_without_errors(run_store, browser, tmp_path):
    store = copy_store(run_store.path, str(tmp_path / "part.zarr"), ("clusters", "k_distances"))
    run = browser.load(write_report(store).as_uri())
    assert run.errors == [] and _offsite(run.requests) == []
    assert [img["id"] for img in run.images] == ["plot-cluster-sizes", "plot-nn-distances"]
    assert all(img["ok"] and img["w"] > 0 for img in run.images)
    texts = {s["id"]: s["text"] for s in run.sections}
    assert "Not computed" in texts["projection"] and "Not computed" in texts["condensed-tree"]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "report-partial.png").write_bytes(run.screenshot)


def test_the_check_catches_a_broken_page(browser, tmp_path):
    """The same checks flag a page with a script error, a console error, a broken image and a
    network reference (so the tests above can fail)."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
        "<img id='bad' src='data:image/png;base64,AAAA'>"
        "<img id='net' src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    run = browser.load(page.as_uri())
    assert any("boom" in e for e in run.errors)
    assert any("undefinedFunction" in e for e in run.errors)
    assert "http://127.0.0.1:9/x.png" in _offsite(run.requests)
    assert [img["ok"] for img in run.images] == [False, False]


def test_missing_browser_is_a_failure(monkeypatch):
    """Without Chromium on PATH the fixture fails the test rather than skipping it."""
    monkeypatch.setenv("PATH", os.devnull)
    assert find_chromium() is None
    with pytest.raises(pytest.fail.Exception, match="Chromium is not installed"):
        require_chromium()
