"""``sdcpp serve``: the real server in a child process, talked to over HTTP as front ends do.

One server (random-weight SD1.5 on the CPU, an API key, small limits) serves the whole file; the
generation tests ask for 64x64 images with one or two steps. The jobs that must still be running
when they are interrupted or abandoned ask for the most steps the limits allow.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Callable

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install '.[server]'")
import httpx  # noqa: E402
from PIL import Image  # noqa: E402

from sdcpp._malloc import fix_mmap_threshold  # noqa: E402

from .server_process import ServerProcess  # noqa: E402

KEY = "test-key-1234"
SMALL = {"width": 64, "height": 64, "steps": 1}
LONG_STEPS = 150  # the server's default --max-steps: long enough to be caught mid-job
_TXT, _IMG, _GEN, _EDIT = "/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/v1/images/generations", "/v1/images/edits"


@pytest.fixture(scope="module")
def server(sd15_file: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    # Started as a shell's background job is (SIGINT ignored): Ctrl-C must still stop it with 130.
    process = ServerProcess(sd15_file, log, "--max-body-mb", "1", "--max-queued", "2", api_key=KEY, background=True)
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess):
    with server.client() as c:
        yield c


def wait_until(condition: Callable[[], object], timeout: float, what: str, server: ServerProcess) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s; server log:\n{server.log()}")
        time.sleep(0.05)


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decode_png(text: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(text)))
    assert image.format == "PNG"
    image.load()
    return image


def test_serve_listens_on_loopback_and_names_its_model(server: ServerProcess, client: httpx.Client) -> None:
    assert re.search(r"serving .*sd15\.safetensors \(SD 1\.x, CPU\) on http://127\.0\.0\.1:\d+/", server.log())
    assert client.get("/sdapi/v1/sd-models").json()[0]["title"] == "sd15.safetensors"
    assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "sd15.safetensors"
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["sd15.safetensors"]
    samplers = {s["name"]: s["aliases"] for s in client.get("/sdapi/v1/samplers").json()}
    assert samplers["Euler a"][0] == "euler_a" and samplers["DPM++ 2M"][0] == "dpm++2m"
    schedulers = {s["label"] for s in client.get("/sdapi/v1/schedulers").json()}
    assert {"Automatic", "Karras", "Align Your Steps"} <= schedulers


@pytest.mark.parametrize("method, path", [
    ("GET", "/"), ("GET", "/sdapi/v1/progress"), ("POST", "/sdapi/v1/txt2img"), ("POST", "/sdapi/v1/interrupt"),
    ("GET", "/v1/models"), ("POST", "/v1/images/generations"), ("GET", "/openapi.json"), ("GET", "/no-such-route"),
])
def test_every_route_needs_the_api_key(server: ServerProcess, method: str, path: str) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!"}):
            response = anonymous.request(method, path, headers=headers, json={"prompt": "x", **SMALL})
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        body = response.json()
        message = body["error"]["message"] if path.startswith("/v1/") else body["error"]
        assert "API key" in message


def test_the_key_is_accepted_as_bearer_or_basic_auth(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/sdapi/v1/progress", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert c.get("/sdapi/v1/progress", auth=("anyone", KEY)).status_code == 200
        assert c.get("/", auth=("user", KEY)).headers["content-type"].startswith("text/html")


def test_txt2img_returns_pngs_with_their_parameters_and_a1111_info(client: httpx.Client) -> None:
    response = client.post("/sdapi/v1/txt2img", json={
        "prompt": "a lighthouse", "negative_prompt": "fog", **SMALL, "steps": 2, "seed": 11, "batch_size": 2,
        "sampler_name": "DPM++ 2M Karras", "cfg_scale": 5,
        "override_settings": {"CLIP_stop_at_last_layers": 2},
        # what A1111 clients also send, which sdcpp ignores as A1111 ignores unknown fields
        "enable_hr": False, "styles": [], "restore_faces": False, "alwayson_scripts": {}, "send_images": True,
    })
    assert response.status_code == 200, response.text
    data = response.json()
    info = json.loads(data["info"])
    assert info["all_seeds"] == [11, 12] and info["seed"] == 11
    assert (info["sampler_name"], info["scheduler"], info["clip_skip"]) == ("DPM++ 2M", "karras", 2)
    assert info["negative_prompt"] == "fog" and info["interrupted"] is False
    assert data["parameters"]["batch_size"] == 2
    images = [decode_png(text) for text in data["images"]]
    assert [im.size for im in images] == [(64, 64)] * 2
    for image, seed, text in zip(images, (11, 12), info["infotexts"]):
        assert image.info["parameters"] == text  # the PNG keeps what A1111 would write
        assert f"Seed: {seed}" in text and "Negative prompt: fog" in text
        assert json.loads(image.info["sdcpp"])["clip_skip"] == 2
    assert images[0].tobytes() != images[1].tobytes()  # (one Karras step is all white: two are needed)


def test_img2img_inpaints_with_a_mask(client: httpx.Client) -> None:
    init = Image.new("RGB", (64, 64), (200, 40, 40))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    response = client.post("/sdapi/v1/img2img", json={
        "prompt": "a window", **SMALL, "steps": 2, "seed": 3, "denoising_strength": 0.5,
        "init_images": ["data:image/png;base64," + png_base64(init)], "mask": png_base64(mask),
        "resize_mode": 0, "inpainting_fill": 1,
    })
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["parameters"]["init_images"] is None and data["parameters"]["mask"] is None
    assert json.loads(data["info"])["denoising_strength"] == 0.5
    parameters = json.loads(decode_png(data["images"][0]).info["sdcpp"])
    assert parameters["strength"] == 0.5 and parameters["inputs"] == ["init_image", "mask_image"]


def test_openai_generation_returns_b64_json_pngs(client: httpx.Client) -> None:
    response = client.post("/v1/images/generations", json={
        "model": "dall-e-3", "prompt": "a lighthouse", "n": 1, "size": "64x64", "response_format": "b64_json",
        "quality": "standard", "steps": 1, "seed": 5,
    })
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data["created"], int) and len(data["data"]) == 1
    image = decode_png(data["data"][0]["b64_json"])
    assert image.size == (64, 64) and "Seed: 5" in image.info["parameters"]


def test_openai_edit_repaints_where_the_mask_is_transparent(client: httpx.Client) -> None:
    image = Image.new("RGB", (64, 64), (30, 90, 200))
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    files = {"image": ("in.png", base64.b64decode(png_base64(image)), "image/png"),
             "mask": ("mask.png", base64.b64decode(png_base64(mask)), "image/png")}
    response = client.post("/v1/images/edits", files=files, data={"prompt": "a door", "size": "64x64", "steps": "1"})
    assert response.status_code == 200, response.text
    result = decode_png(response.json()["data"][0]["b64_json"])
    parameters = json.loads(result.info["sdcpp"])
    assert result.size == (64, 64) and parameters["inputs"] == ["init_image", "mask_image"] and parameters["strength"] == 1.0


def _post_in_thread(server: ServerProcess, path: str, body: dict, results: dict, key: str) -> threading.Thread:
    def post() -> None:
        with server.client() as c:
            response = c.post(path, json=body)
            results[key] = (time.monotonic(), response)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def _queued_jobs(server: ServerProcess) -> list[int]:
    return [int(n) for n in re.findall(r"job (\d+) queued", server.log())]


def test_concurrent_requests_run_one_at_a_time_in_arrival_order(server: ServerProcess, client: httpx.Client) -> None:
    results: dict = {}
    threads, ids = [], []
    bodies = [("/sdapi/v1/txt2img", {"prompt": "one", **SMALL, "steps": 4}),
              ("/v1/images/generations", {"prompt": "two", "size": "64x64", "steps": 1}),
              ("/sdapi/v1/txt2img", {"prompt": "three", **SMALL})]
    for i, (path, body) in enumerate(bodies):
        before = len(_queued_jobs(server))
        threads.append(_post_in_thread(server, path, body, results, str(i)))
        wait_until(lambda: len(_queued_jobs(server)) > before, 30, f"request {i} queued", server)
        ids.append(_queued_jobs(server)[-1])
    state = client.get("/sdapi/v1/progress").json()["state"]
    assert state["queued"] >= 1, state  # the later requests wait while the first runs
    for thread in threads:
        thread.join(120)
    assert [results[str(i)][1].status_code for i in range(3)] == [200] * 3
    finished = [results[str(i)][0] for i in range(3)]
    assert finished == sorted(finished), "answered out of order"
    log = server.log()
    events = [(m[2], int(m[1])) for m in re.finditer(r"job (\d+) (started|finished)", log) if int(m[1]) in ids]
    assert events == [(e, i) for i in ids for e in ("started", "finished")], log  # never two at once


def _progress(client: httpx.Client) -> dict:
    return client.get("/sdapi/v1/progress").json()


def test_interrupt_stops_the_running_job_and_returns_the_images_it_finished(
    server: ServerProcess, client: httpx.Client
) -> None:
    results: dict = {}
    body = {"prompt": "two rounds", **SMALL, "steps": 12, "n_iter": 2, "seed": 21}
    thread = _post_in_thread(server, _TXT, body, results, "r")

    def in_second_round() -> bool:
        state = _progress(client)["state"]
        return state["job_no"] == 1 and state["sampling_step"] >= 1

    wait_until(in_second_round, 120, "the second round's first step", server)
    start = time.monotonic()
    progress = _progress(client)
    assert time.monotonic() - start < 2, "the event loop is blocked while a job runs"
    assert 0.5 < progress["progress"] < 1 and progress["eta_relative"] > 0
    preview = decode_png(progress["current_image"])  # the running job's latest preview, from its latent
    assert (preview.mode, preview.size) == ("RGB", (SMALL["width"] // 8, SMALL["height"] // 8))
    assert (progress["state"]["job_count"], progress["state"]["sampling_steps"]) == (2, 12)
    assert client.post("/sdapi/v1/interrupt").status_code == 200
    thread.join(60)
    _, response = results["r"]
    assert response.status_code == 200, response.text
    data = response.json()
    info = json.loads(data["info"])
    assert len(data["images"]) == 1 and info["interrupted"] is True  # the first round's image
    assert "Seed: 21" in decode_png(data["images"][0]).info["parameters"]
    assert re.search(r"job \d+ cancelled \(interrupted\)", server.log())
    assert _progress(client)["state"]["job"] == ""


def _raw_request(server: ServerProcess, path: str, body: dict) -> socket.socket:
    """Send a request on a socket of our own, so that the test can hang up on it."""
    host, port = server.url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
    )
    return sock


def test_a_client_that_hangs_up_cancels_its_job_queued_or_running(server: ServerProcess, client: httpx.Client) -> None:
    running = _raw_request(server, "/sdapi/v1/txt2img", {"prompt": "a", **SMALL, "steps": LONG_STEPS})
    wait_until(lambda: _progress(client)["state"]["sampling_step"] >= 1, 60, "the first step", server)
    waiting = [_raw_request(server, "/v1/images/generations", {"prompt": "b", "size": "64x64", "steps": 1})
               for _ in range(2)]
    wait_until(lambda: _progress(client)["state"]["queued"] == 2, 30, "two queued", server)
    full = client.post("/sdapi/v1/txt2img", json={"prompt": "c", **SMALL})
    assert full.status_code == 503 and "already waiting" in full.json()["error"]  # --max-queued 2
    dropped = _queued_jobs(server)[-2:]
    for sock in waiting:
        sock.close()
    for job in dropped:
        server.wait_for_log(rf"job {job} dropped from the queue: client disconnected", 10)
    running.close()
    server.wait_for_log(r"job \d+ cancelled \(client disconnected\)", 30)
    state = _progress(client)["state"]
    assert (state["job"], state["queued"]) == ("", 0)
    for job in dropped:
        assert f"job {job} started" not in server.log()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


_GOOD = png_base64(Image.new("RGB", (64, 64)))

# (path, request keyword arguments, status, the field the error must name)
HOSTILE = [
    (_TXT, {"content": b"{not json"}, 422, "body"),
    (_TXT, {"content": b"[" * 100_000}, 422, "body"),
    (_TXT, {"json": [1, 2]}, 422, "body"),
    (_TXT, {"json": {"prompt": 5}}, 422, "prompt"),
    (_TXT, {"json": {"prompt": "a" * 20_000, **SMALL}}, 422, "prompt"),
    (_TXT, {"content": b'{"prompt": "\\ud800", "width": 64, "height": 64, "steps": 1}'}, 422, "prompt"),
    (_TXT, {"json": {"steps": "many"}}, 422, "steps"),
    (_TXT, {"json": {"steps": 10**6}}, 422, "steps"),
    (_TXT, {"content": b'{"steps": ' + b"9" * 5000 + b"}"}, 422, "body"),  # past Python's int parsing limit
    (_TXT, {"json": {"width": 10**12}}, 422, "width"),
    (_TXT, {"json": {"width": 65}}, 422, "width"),
    (_TXT, {"json": {"batch_size": 1000}}, 422, "batch_size"),
    (_TXT, {"json": {"n_iter": 0}}, 422, "n_iter"),
    (_TXT, {"content": b'{"cfg_scale": NaN}'}, 422, "cfg_scale"),
    (_TXT, {"json": {"sampler_name": "Restart"}}, 422, "sampler_name"),
    (_TXT, {"json": {"scheduler": "beta"}}, 422, "scheduler"),
    (_TXT, {"json": {"seed": 2**70, **SMALL}}, 422, "seed"),
    (_TXT, {"json": {"override_settings": "x"}}, 422, "override_settings"),
    (_TXT, {"json": {"override_settings": {"CLIP_stop_at_last_layers": "x"}}}, 422,
     "override_settings.CLIP_stop_at_last_layers"),
    (_IMG, {"json": {"init_images": []}}, 422, "init_images"),
    (_IMG, {"json": {"init_images": ["!!!"], **SMALL}}, 422, "init_images"),
    (_IMG, {"json": {"init_images": [base64.b64encode(b"not an image").decode()], **SMALL}}, 422, "init_images"),
    (_IMG, {"json": {"init_images": [base64.b64encode(_bomb_png(100_000, 100_000)).decode()], **SMALL}}, 422,
     "init_images"),
    (_IMG, {"json": {"init_images": [_GOOD], "mask": "@@", **SMALL}}, 422, "mask"),
    (_IMG, {"json": {"init_images": [_GOOD], "denoising_strength": 2, **SMALL}}, 422, "denoising_strength"),
    (_IMG, {"json": {"init_images": ["A" * 900_000], **SMALL}}, 422, "init_images"),
    ("/sdapi/v1/options", {"json": {"sd_model_checkpoint": "other.safetensors"}}, 422, "sd_model_checkpoint"),
    ("/sdapi/v1/options", {"json": {"CLIP_stop_at_last_layers": 99}}, 422, "CLIP_stop_at_last_layers"),
    ("/sdapi/v1/options", {"json": [1]}, 422, "body"),
    (_GEN, {"json": {}}, 400, "prompt"),
    (_GEN, {"json": {"prompt": "x", "response_format": "url"}}, 400, "response_format"),
    (_GEN, {"json": {"prompt": "x", "size": "huge"}}, 400, "size"),
    (_GEN, {"json": {"prompt": "x", "size": "99999x99999"}}, 400, "size"),
    (_GEN, {"json": {"prompt": "x", "n": 0}}, 400, "n"),
    (_GEN, {"json": {"prompt": "x", "n": 100}}, 400, "n"),
    (_EDIT, {"data": {"prompt": "x"}}, 400, "image"),
    (_EDIT, {"data": {"prompt": "x", "image": "abc"}}, 400, "image"),
    (_EDIT, {"data": {"prompt": "x"}, "files": {"image": ("a.png", b"\x89PNG garbage")}}, 400, "image"),
    (_EDIT, {"data": {"prompt": "x", "steps": "ten"}, "files": {"image": ("a.png", b"")}}, 400, "steps"),
    (_EDIT, {"content": b"--x\r\ngarbage", "headers": {"Content-Type": "multipart/form-data"}}, 400, "body"),
    (_TXT, {"content": b"x" * (2 * 2**20)}, 413, "body"),
    (_TXT, {"content": [b"x" * 2**16] * 32}, 413, "body"),  # an iterable: chunked, no Content-Length
]


def _field(response: httpx.Response) -> str:
    body = response.json()
    return body["error"]["param"] if isinstance(body["error"], dict) else body["field"]


@pytest.mark.parametrize("path, request_args, status, field", HOSTILE,
                         ids=[f"{h[3]}-{i}" for i, h in enumerate(HOSTILE)])
def test_hostile_requests_get_a_json_error_naming_the_field(
    client: httpx.Client, path: str, request_args: dict, status: int, field: str
) -> None:
    response = client.post(path, **request_args)
    assert (response.status_code, _field(response)) == (status, field), response.text


def test_wrong_routes_and_methods_get_json_errors(client: httpx.Client) -> None:
    assert client.get("/sdapi/v1/nothing").status_code == 404
    assert client.get("/sdapi/v1/txt2img").status_code == 405
    assert "error" in client.get("/v1/nothing").json()


def test_memory_stays_flat_over_50_hostile_requests_and_20_generations(
    server: ServerProcess, client: httpx.Client
) -> None:
    def hostile(count: int) -> None:
        for i in range(count):
            path, request_args, status, _ = HOSTILE[i % len(HOSTILE)]
            assert client.post(path, **request_args).status_code == status

    def generate(count: int) -> None:
        for i in range(count):  # both APIs, each image decoded, encoded as PNG and sent
            if i % 2:
                response = client.post(_GEN, json={"prompt": f"still here {i}", "size": "64x64", "steps": 1, "seed": i})
                assert response.status_code == 200 and len(response.json()["data"]) == 1, response.text
            else:
                response = client.post(_TXT, json={"prompt": f"still here {i}", **SMALL, "seed": i})
                assert response.status_code == 200 and len(response.json()["images"]) == 1, response.text

    # Warm up: the first of each kind fills caches and pools, the first generations the engine's buffers.
    hostile(len(HOSTILE))
    generate(4)
    before = server.rss_kib()
    hostile(50)
    refused = (server.rss_kib() - before) / 1024
    assert refused < 10, f"the server grew {refused:.1f} MiB over 50 refused requests"
    generate(20)
    grown = (server.rss_kib() - before) / 1024
    # Measured: +0.1 MiB after the refused requests, +0.4 MiB after the generations (of about 2.2 GiB). The
    # bound is 0.4 MiB a generation: a job that leaks that much (a 64x64 job's PNG is 12 KB) fails it.
    assert grown < 8, f"the server grew {grown:.1f} MiB over 50 refused requests and 20 generations"


def test_serve_fixes_glibcs_mmap_threshold_unless_the_user_set_one() -> None:
    # What keeps the test above within its bound: with glibc's threshold left to rise, the server
    # grew 14-19 MiB over 10 further generations in 3 runs of 5.
    assert not fix_mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert fix_mmap_threshold({}) == (sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc")


def test_serve_names_the_extra_to_install_when_it_is_missing(tmp_path: Path, sd15_file: Path) -> None:
    # A fastapi that fails to import stands in for an environment without the extra.
    (tmp_path / "fastapi").mkdir()
    (tmp_path / "fastapi" / "__init__.py").write_text("raise ImportError('no fastapi here', name='fastapi')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "sdcpp", "serve", str(sd15_file)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "(fastapi is missing): pip install 'fastapi>=" in result.stderr, result.stderr


def test_serve_refuses_a_port_in_use(server: ServerProcess, sd15_file: Path) -> None:
    port = server.url.rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "sdcpp", "serve", str(sd15_file), "--port", port],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in result.stderr, result.stderr


def test_ctrl_c_stops_a_server_started_from_a_terminal_with_130(sd15_file: Path, tmp_path: Path) -> None:
    # The module's server starts with SIGINT ignored; from a terminal, uvicorn re-raises the Ctrl-C itself.
    terminal = ServerProcess(sd15_file, tmp_path / "server.log")
    try:
        assert terminal.interrupt(timeout=60) == 130, terminal.log()
    finally:
        terminal.stop()


def test_ctrl_c_stops_the_running_job_and_the_server(server: ServerProcess, client: httpx.Client) -> None:
    """Last in this file: it stops the shared server."""
    results: dict = {}
    thread = _post_in_thread(server, _TXT, {"prompt": "long", **SMALL, "steps": LONG_STEPS}, results, "r")
    wait_until(lambda: _progress(client)["state"]["sampling_step"] >= 1, 60, "the first step", server)
    start = time.monotonic()
    assert server.interrupt(timeout=60) == 130
    assert time.monotonic() - start < 15, "the shutdown waited for the job instead of stopping it"
    thread.join(30)
    _, response = results["r"]
    assert response.status_code == 503 and "server stopping" in response.json()["error"]
    assert re.search(r"job \d+ cancelled \(server stopping\)", server.log()), server.log()
    assert "Traceback" not in server.log(), server.log()
