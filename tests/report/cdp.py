"""A small DevTools-protocol driver for headless Chromium (test support, not package code).

Launches Debian's ``chromium`` with a fresh profile and ``--remote-debugging-port=0``, reads the
port from the profile's ``DevToolsActivePort`` file, and talks to one page over a flattened
target session (``websocket-client``). Records console errors, uncaught exceptions, log errors
and every network request the page makes.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    """Path of the Chromium executable, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageRun:
    """What one page load produced."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    sections: list[dict] = field(default_factory=list)
    screenshot: bytes = b""


class Chromium:
    """A headless Chromium process driven over the DevTools protocol (use as a context manager)."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.executable = executable
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="distdataeval-chromium-")
        self.proc: subprocess.Popen | None = None
        self.ws = None
        self._next_id = 0
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        import websocket

        self.proc = subprocess.Popen(
            [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while not os.path.exists(port_file) or len(open(port_file).read().split()) < 2:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port, path = open(port_file).read().split()[:2]
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=self.timeout, suppress_origin=True)
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.ws is not None:
                try:
                    self.send("Browser.close")
                except Exception:  # noqa: BLE001 - the browser may already be gone
                    pass
                self.ws.close()
        finally:
            if self.proc is not None:
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
                self.proc.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its reply (events meanwhile are kept in ``events``)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float) -> dict:
        """Wait for an event of the session (already received ones count)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return ev
            seen = len(self.events)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout} s")
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            self.events.append(json.loads(self.ws.recv()))

    def load(self, url: str, width: int = 1200, height: int = 900) -> PageRun:
        """Open ``url`` in a new tab; return its errors, requests, images, sections and a screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        start = len(self.events)
        nav = self.send("Page.navigate", {"url": url}, session=session)
        if nav.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {nav['errorText']}")
        self.wait_event("Page.loadEventFired", session, self.timeout)
        run = PageRun()
        decode = (
            "Promise.all(Array.from(document.images).map(i => i.decode()"
            ".then(() => ({id: i.id, ok: i.complete, w: i.naturalWidth, h: i.naturalHeight}),"
            " e => ({id: i.id, ok: false, w: 0, h: 0, error: String(e)}))))"
        )
        run.images = self._value(decode, session)
        sections = (
            "Array.from(document.querySelectorAll('section')).map(s => ({id: s.id, "
            "title: s.querySelector('h2') ? s.querySelector('h2').textContent : '', "
            "height: s.getBoundingClientRect().height, text: s.innerText}))"
        )
        run.sections = self._value(sections, session)
        metrics = self.send("Page.getLayoutMetrics", session=session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.send(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            },
            session=session,
        )
        run.screenshot = base64.b64decode(shot["data"])
        self._drain(0.3)
        for ev in self.events[start:]:
            if ev.get("sessionId") != session:
                continue
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                run.errors.append(f"exception: {details.get('exception', {}).get('description', details.get('text'))}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                run.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                run.errors.append(f"log ({params['entry'].get('source')}): {params['entry'].get('text')}")
            elif method == "Network.requestWillBeSent":
                run.requests.append(params["request"]["url"])
        self.send("Target.closeTarget", {"targetId": target})
        return run

    def _value(self, expression: str, session: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}, session=session
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def _drain(self, seconds: float) -> None:
        """Collect events that arrive within ``seconds``."""
        import websocket

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                self.events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                break
        self.ws.settimeout(self.timeout)
