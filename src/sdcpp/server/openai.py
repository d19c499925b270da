"""OpenAI's images API (``/v1/images/generations``, ``/v1/images/edits``, ``/v1/models``).

Images come back as ``b64_json`` only: the server keeps no files to link to, so
``response_format: "url"`` is refused by name. The ``model`` a client names is ignored (clients
send "dall-e-3" or "gpt-image-1"): the loaded model answers. Besides OpenAI's fields, requests may
carry sdcpp's: ``negative_prompt``, ``steps``, ``cfg_scale``, ``seed``, ``sampler``,
``scheduler`` and, for edits, ``strength``.
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response

from .a1111_names import resolve_sampler, resolve_scheduler
from .codec import decode_image, png_base64, to_mask, to_rgb, transparency
from .errors import FieldError
from .generation import Result, Server, Task, check_limits, submit
from .parsing import json_body, validate

__all__ = ["router"]

router = APIRouter(prefix="/v1")

# The Generator's argument names -> OpenAI's field names, for error messages.
_FIELDS = {"batch": "n", "width": "size", "height": "size", "init_image": "image", "mask_image": "mask"}
_SIZE = re.compile(r"^(\d{1,6})x(\d{1,6})$")


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str
    model: Optional[str] = None
    n: int = 1
    size: Optional[str] = None
    response_format: Optional[str] = None
    output_format: Optional[str] = None
    # sdcpp's own fields
    negative_prompt: str = ""
    steps: int = 20
    cfg_scale: float = Field(7.0, allow_inf_nan=False)
    seed: int = -1
    sampler: Optional[str] = None
    scheduler: Optional[str] = None


class EditRequest(ImageRequest):
    strength: Optional[float] = Field(None, allow_inf_nan=False)


def _server(request: Request) -> Server:
    return request.app.state.sdcpp


def _size(server: Server, body: ImageRequest, image_size: Optional[tuple[int, int]] = None) -> tuple[int, int]:
    """``size`` as (width, height); when absent, the model's native size, or the image's scaled to
    the limits and rounded down to the model's multiple."""
    if body.size not in (None, "", "auto"):
        match = _SIZE.match(body.size)
        if not match:
            raise FieldError("size", f"must be WIDTHxHEIGHT such as '512x512', or 'auto', not {body.size!r}")
        return int(match[1]), int(match[2])
    multiple, limits = server.generator.size_multiple, server.limits
    if image_size is None:
        side = 1024 if "XL" in server.generator.family else 512
        return side, side
    w, h = image_size
    scale = min(1.0, math.sqrt(limits.max_pixels / (w * h)), limits.max_side / max(w, h))
    return (max(multiple, int(w * scale) // multiple * multiple), max(multiple, int(h * scale) // multiple * multiple))


def _task(server: Server, body: ImageRequest, size: tuple[int, int], **images: Any) -> Task:
    if body.response_format not in (None, "b64_json"):
        raise FieldError("response_format", f"{body.response_format!r} is not supported; use 'b64_json'")
    if body.output_format not in (None, "png"):
        raise FieldError("output_format", f"{body.output_format!r} is not supported; use 'png'")
    sampler, folded = resolve_sampler(body.sampler, "sampler")
    settings = dict(
        width=size[0], height=size[1], steps=body.steps, cfg_scale=body.cfg_scale, sampler=sampler,
        scheduler=resolve_scheduler(body.scheduler) or folded, **images,
    )
    task = Task(body.prompt, body.negative_prompt, settings, seed=body.seed, batch=body.n)
    check_limits(server, task, _FIELDS)
    return task


async def _answer(server: Server, request: Request, task: Task) -> Any:
    result = await submit(server, request, task, _FIELDS)
    if result is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    if result.interrupted:
        raise FieldError(None, "the job was interrupted (POST /sdapi/v1/interrupt)", status=409)
    return await run_in_threadpool(_response, result)


def _response(result: Result) -> dict:
    return {
        "created": int(time.time()),
        "data": [{"b64_json": png_base64(image), "revised_prompt": None} for image, _ in result.images],
        "output_format": "png",
    }


@router.post("/images/generations")
async def generations(request: Request, body: ImageRequest = Depends(json_body(ImageRequest))) -> Any:
    server = _server(request)
    return await _answer(server, request, _task(server, body, _size(server, body)))


async def _upload(form: Any, names: tuple[str, ...]) -> Optional[bytes]:
    for name in names:
        value = form.get(name)
        if isinstance(value, UploadFile):
            return await value.read()
        if value is not None:
            raise FieldError(name, "must be an uploaded file (multipart/form-data), not a text field")
    return None


@router.post("/images/edits")
async def edits(request: Request) -> Any:
    """Multipart ``image`` (or ``image[]``), optional ``mask`` (transparent where to repaint), ``prompt``."""
    server = _server(request)
    limit = server.limits.max_body_bytes
    async with request.form(max_files=4, max_fields=64, max_part_size=limit) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        body = validate(EditRequest, fields)
        image_bytes = await _upload(form, ("image", "image[]"))
        mask_bytes = await _upload(form, ("mask",))
    if image_bytes is None:
        raise FieldError("image", "required: upload the image to edit as a multipart file field 'image'")
    pixels = server.limits.max_input_pixels
    image = await run_in_threadpool(decode_image, image_bytes, "image", pixels)
    size = _size(server, body, image.size)
    _task(server, body, size)  # checks the fields and limits before the images are converted
    images = await run_in_threadpool(_edit_inputs, image, mask_bytes, size, pixels)
    strength = body.strength if body.strength is not None else (1.0 if "mask_image" in images else 0.75)
    return await _answer(server, request, _task(server, body, size, strength=strength, **images))


def _edit_inputs(image: Any, mask_bytes: Optional[bytes], size: tuple[int, int], pixels: int) -> dict[str, Any]:
    """The init image, and the mask: the uploaded one, else the image's own transparency."""
    inputs: dict[str, Any] = {"init_image": to_rgb(image, "image", size)}
    if mask_bytes is not None:
        inputs["mask_image"] = to_mask(decode_image(mask_bytes, "mask", pixels), "mask", size, transparent_is_edit=True)
    elif transparency(image) is not None:  # OpenAI: the image's own transparent pixels mark the area
        inputs["mask_image"] = to_mask(image, "image", size, transparent_is_edit=True)
    return inputs


@router.get("/models")
async def models(request: Request) -> dict:
    server = _server(request)
    created = int(os.path.getmtime(server.generator.model))
    model = {"id": server.model_name, "object": "model", "created": created, "owned_by": "sdcpp"}
    return {"object": "list", "data": [model]}
