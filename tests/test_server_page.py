"""The web page of ``sdcpp serve`` in a real headless Chromium: fill the form, generate, download.

Its own server, without an API key (the default), so the page is used as a person would open it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install '.[server]'")
import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from .browser import Browser, find_chromium  # noqa: E402
from .server_process import ServerProcess  # noqa: E402


@pytest.fixture(scope="module")
def server(sd15_file: Path, tmp_path_factory: pytest.TempPathFactory):
    process = ServerProcess(sd15_file, tmp_path_factory.mktemp("page-server") / "server.log")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def chromium() -> str:
    """Found before the server starts, so that a missing browser costs no model load."""
    return find_chromium()


@pytest.fixture
def browser(chromium: str):
    b = Browser(chromium)
    yield b
    b.close()


def test_the_page_is_self_contained(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/")  # no key needed: the server was started without one
    assert response.status_code == 200 and "<form" in response.text
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]  # no CDN, nothing fetched elsewhere
    assert "http" not in response.text.replace(server.url, "")


_FILL = """(() => {
  const set = (id, value) => { const e = document.getElementById(id); e.value = value;
                               e.dispatchEvent(new Event('input', {bubbles: true})); };
  set('prompt', 'a red lighthouse'); set('negative_prompt', 'fog');
  set('width', 64); set('height', 64); set('steps', 6); set('seed', 5);
  document.getElementById('generate').click();
  return true;
})()"""

_STATE = """[document.getElementById('status').textContent, document.getElementById('progress').value,
 (() => { const i = document.getElementById('result'); return i.complete ? i.naturalWidth : 0; })(),
 (() => { const i = document.getElementById('preview'); return !i.hidden && i.complete ? i.naturalWidth : 0; })()]"""

def test_the_page_generates_with_live_progress_and_downloads_the_png_with_its_metadata(
    chromium: str, server: ServerProcess, browser: Browser, tmp_path: Path
) -> None:
    browser.navigate(server.url + "/")
    browser.wait_for("document.getElementById('model').textContent === 'sd15.safetensors'", 15)
    assert browser.evaluate(_FILL)
    seen, previews, deadline = [], set(), time.monotonic() + 180
    while True:
        status, progress, width, preview_width = browser.evaluate(_STATE)
        seen.append((status, progress))
        previews.add(preview_width)
        if width:
            break
        assert time.monotonic() < deadline, f"no image after 180 s; the page showed {seen[-5:]}\n{server.log()}"
        time.sleep(0.1)
    browser.screenshot(tmp_path / "page.png")
    assert width == 64 and status == "Done: seed 5."
    assert any(s.startswith("Step ") and s.endswith("/6") or "/6," in s for s, _ in seen), f"no step shown: {seen}"
    assert any(0 < p < 1 for _, p in seen), f"the progress bar never moved: {seen}"
    assert 8 in previews, f"no preview shown while it ran (the latent's 8x8 projection): {previews}"
    assert browser.evaluate("document.getElementById('preview').hidden")  # hidden again once done
    downloads = tmp_path / "downloads"
    browser.send("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
    browser.evaluate("document.getElementById('download').click()")
    saved = downloads / "sdcpp-5.png"  # the link's name: the seed
    deadline = time.monotonic() + 30
    while not (saved.exists() and not list(downloads.glob("*.crdownload"))):
        assert time.monotonic() < deadline, f"nothing downloaded: {list(downloads.glob('*'))}"
        time.sleep(0.1)
    with Image.open(saved) as image:
        assert image.size == (64, 64)
        assert image.info["parameters"].startswith("a red lighthouse\nNegative prompt: fog\nSteps: 6,")
        assert json.loads(image.info["sdcpp"])["seed"] == 5
    assert browser.errors() == []
