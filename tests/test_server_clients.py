"""``sdcpp serve`` with Generator options (``--lora-dir``, component files), talked to by OpenAI's own
Python client and by an A1111 client's ``<lora:NAME:WEIGHT>`` tags.

One server (random-weight SD1.5 on the CPU, the test LoRAs, an API key) serves most of the file, a
random-weight Flux.1 from its component files one test; 64x64 images with one or two steps.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed: pip install '.[server]'")
openai = pytest.importorskip("openai", reason="the test extra is not installed: pip install '.[test]'")
from PIL import Image  # noqa: E402

from .server_process import ServerProcess  # noqa: E402

KEY = "clients-key-5678"


@pytest.fixture(scope="module")
def server(sd15_file: Path, lora_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("server") / "server.log"
    process = ServerProcess(sd15_file, log, "--lora-dir", str(lora_dir), "--threads", "2", api_key=KEY)
    yield process
    process.stop()


@pytest.fixture
def client(server: ServerProcess):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=120) as c:
        yield c


def png(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.format == "PNG"
    image.load()
    return image


def test_openai_client_generates(client: "openai.OpenAI") -> None:
    result = client.images.generate(model="sd15.safetensors", prompt="a lighthouse", n=2, size="64x64",
                                    response_format="b64_json", extra_body={"steps": 1, "seed": 9})
    images = [png(item.b64_json) for item in result.data]
    assert [image.size for image in images] == [(64, 64)] * 2
    assert [json.loads(image.info["sdcpp"])["seed"] for image in images] == [9, 10]
    assert isinstance(result.created, int)
    assert [m.id for m in client.models.list()] == ["sd15.safetensors"]


def test_openai_client_edits_where_the_mask_is_transparent(client: "openai.OpenAI") -> None:
    def file(image: Image.Image) -> tuple[str, bytes, str]:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return ("image.png", buffer.getvalue(), "image/png")

    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    result = client.images.edit(image=file(Image.new("RGB", (64, 64), (30, 90, 200))), mask=file(mask),
                                prompt="a door", size="64x64", response_format="b64_json", extra_body={"steps": 1})
    parameters = json.loads(png(result.data[0].b64_json).info["sdcpp"])
    assert (parameters["prompt"], parameters["inputs"]) == ("a door", ["init_image", "mask_image"])


def test_openai_client_gets_the_servers_errors(client: "openai.OpenAI") -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(prompt="x", size="huge")
    assert refused.value.body["param"] == "size"
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="wrong").images.generate(prompt="x", size="64x64")


def test_a_lora_tag_in_an_a1111_prompt_finds_its_file_in_lora_dir(server: ServerProcess) -> None:
    def txt2img(prompt: str) -> tuple[np.ndarray, dict]:
        with server.client() as c:
            response = c.post("/sdapi/v1/txt2img", json={"prompt": prompt, "width": 64, "height": 64, "steps": 2,
                                                          "seed": 5})
        assert response.status_code == 200, response.text
        image = png(response.json()["images"][0])
        return np.asarray(image, dtype=np.int16), json.loads(image.info["sdcpp"])

    plain, _ = txt2img("a lighthouse")
    tagged, record = txt2img("a lighthouse <lora:kohya:1>")
    assert np.abs(tagged - plain).mean() > 2, "the LoRA at weight 1 must change the image"
    assert record["prompt"] == "a lighthouse <lora:kohya:1>"
    # The next request without it runs without it (the LoRA was merged into float16 weights and subtracted
    # again: rounding remains, 2 of 255 at most as in tests/test_lora.py).
    again, _ = txt2img("a lighthouse")
    assert np.abs(again - plain).max() <= 3


def test_a_model_of_component_files_is_served_without_model(flux_files: dict[str, Path], tmp_path: Path) -> None:
    parts = [arg for name, path in flux_files.items() for arg in (f"--{name.replace('_', '-')}", str(path))]
    flux = ServerProcess(None, tmp_path / "server.log", *parts)
    try:
        with flux.client() as c:
            response = c.post("/v1/images/generations", json={"prompt": "a lighthouse", "size": "64x64", "steps": 1})
            models = [m["id"] for m in c.get("/v1/models").json()["data"]]
    finally:
        flux.stop()
    assert response.status_code == 200, response.text
    record = json.loads(png(response.json()["data"][0]["b64_json"]).info["sdcpp"])
    assert record["family"] == "Flux" and record["model"] == models[0] == "flux1-dev.safetensors", record


def test_serve_needs_a_model_or_the_component_files() -> None:
    result = subprocess.run([sys.executable, "-m", "sdcpp", "serve", "--vae", "vae.safetensors"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "give MODEL (a model file or diffusers folder), or --diffusion-model PATH" \
        in result.stderr, result.stderr
