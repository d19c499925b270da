"""Headless Chromium driven through its DevTools protocol, for the web page's test.

Chromium comes from the system's packages (Debian: ``apt-get install chromium``;
.ci/install-test-deps.sh installs it in CI); the protocol's websocket is spoken by websocket-client.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import pytest

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_INSTALL = "install it with `apt-get install chromium` (Debian) or `bash .ci/install-test-deps.sh`"


def find_chromium() -> str:
    """The browser's path; skips the test when there is none, except in CI, where it fails."""
    path = os.environ.get("SDCPP_TEST_CHROMIUM") or next(filter(None, map(shutil.which, _NAMES)), None)
    if path:
        return path
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Chromium is not installed, and CI must run the browser test: {_INSTALL}")
    pytest.skip(f"Chromium is not installed: {_INSTALL}")


class Browser:
    """One headless Chromium with one page, and a minimal DevTools client for that page."""

    def __init__(self, executable: str, width: int = 1000, height: int = 800) -> None:
        import websocket  # websocket-client, from the test extra

        self._profile = tempfile.mkdtemp(prefix="sdcpp-chromium-")
        self._log = Path(self._profile) / "chromium.log"  # a file: a full pipe would stall the browser
        with open(self._log, "wb") as log:
            self.process = subprocess.Popen(
                [executable, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-extensions", "--disable-dev-shm-usage", "--remote-debugging-port=0",
                 f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            port = self._devtools_port()
            self._socket = websocket.create_connection(self._page_socket(port), timeout=60, suppress_origin=True)
        except BaseException:
            self.close()
            raise
        self._ids = 0
        #: Every DevTools event received so far, in order.
        self.events: list[dict] = []

    def _devtools_port(self) -> int:
        marker = Path(self._profile) / "DevToolsActivePort"  # Chromium writes it once it listens
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text().strip():
            if self.process.poll() is not None:
                log = self._log.read_text(errors="replace")
                raise AssertionError(f"Chromium exited ({self.process.returncode}): {log}")
            if time.monotonic() > deadline:
                raise AssertionError("Chromium did not open its DevTools port within 60 s")
            time.sleep(0.05)
        return int(marker.read_text().split()[0])

    @staticmethod
    def _page_socket(port: int) -> str:
        from urllib.request import urlopen

        with urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
            targets = json.load(response)
        return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")

    def send(self, method: str, **params: Any) -> dict:
        """Call a DevTools method and return its result, keeping the events that come meanwhile."""
        self._ids += 1
        self._socket.send(json.dumps({"id": self._ids, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == self._ids:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float, every: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"`{expression}` stayed false for {timeout} s")
            time.sleep(every)

    def navigate(self, url: str) -> None:
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", 30)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def errors(self) -> list[str]:
        """The page's uncaught exceptions and console errors so far."""
        found = []
        for event in self.events:
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(json.dumps(event["params"]["exceptionDetails"])[:500])
            elif event.get("method") == "Runtime.consoleAPICalled" and event["params"]["type"] == "error":
                found.append(json.dumps(event["params"]["args"])[:500])
        return found

    def close(self) -> None:
        socket: Optional[Any] = getattr(self, "_socket", None)
        if socket is not None:
            socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self._profile, ignore_errors=True)
