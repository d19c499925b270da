"""AUTOMATIC1111's web UI API (``/sdapi/v1/...``), the one most Stable Diffusion front ends speak.

Requests carry the fields common clients send; unknown fields are ignored, as A1111 ignores them
(hires fix, face restoration, scripts and other A1111 extensions have no effect here: docs/server.md
lists what is used). Images travel as base64 PNG; ``info`` is a JSON string as A1111 returns it.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

from fastapi import APIRouter, Depends, Request
from PIL import ImageFilter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .. import __version__
from .a1111_names import a1111_sampler, resolve_sampler, resolve_scheduler, sampler_list, scheduler_list
from .codec import decode_base64_image, png_base64, to_mask, to_rgb
from .errors import FieldError
from .generation import Result, Server, Task, check_limits, submit
from .parsing import json_body, read_json

__all__ = ["router"]

router = APIRouter(prefix="/sdapi/v1")

# The Generator's argument names -> A1111's field names, for error messages.
_FIELDS = {
    "batch": "batch_size", "iterations": "n_iter", "sampler": "sampler_name", "strength": "denoising_strength",
    "init_image": "init_images", "mask_image": "mask",
}
_CLIP_SKIP_OPTION = "CLIP_stop_at_last_layers"


class Txt2ImgRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    prompt: str = ""
    negative_prompt: str = ""
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = Field(7.0, allow_inf_nan=False)
    sampler_name: Optional[str] = None
    sampler_index: Optional[str] = None  # older clients send the sampler's name here
    scheduler: Optional[str] = None
    seed: int = -1
    batch_size: int = 1
    n_iter: int = 1
    clip_skip: Optional[int] = None  # Forge and SD.Next send it here, A1111 in override_settings
    override_settings: dict[str, Any] = Field(default_factory=dict)


class Img2ImgRequest(Txt2ImgRequest):
    init_images: list[str] = Field(min_length=1)
    mask: Optional[str] = None
    denoising_strength: float = Field(0.75, allow_inf_nan=False)
    inpainting_mask_invert: int = 0
    mask_blur: int = Field(4, ge=0, le=64)


def _server(request: Request) -> Server:
    return request.app.state.sdcpp


def _clip_skip(server: Server, body: Txt2ImgRequest) -> Optional[int]:
    if body.clip_skip is not None:
        return body.clip_skip
    value = body.override_settings.get(_CLIP_SKIP_OPTION, server.options.get(_CLIP_SKIP_OPTION))
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise FieldError(f"override_settings.{_CLIP_SKIP_OPTION}", f"must be an integer, not {value!r}")
    return value


def _task(server: Server, body: Txt2ImgRequest, **images: Any) -> Task:
    sampler, folded_scheduler = resolve_sampler(body.sampler_name or body.sampler_index)
    scheduler = resolve_scheduler(body.scheduler) or folded_scheduler
    settings = dict(
        width=body.width, height=body.height, steps=body.steps, cfg_scale=body.cfg_scale, sampler=sampler,
        scheduler=scheduler, clip_skip=_clip_skip(server, body), **images,
    )
    task = Task(body.prompt, body.negative_prompt, settings, seed=body.seed, batch=body.batch_size,
                iterations=body.n_iter)
    check_limits(server, task, _FIELDS)
    return task


def _response(server: Server, body: BaseModel, task: Task, result: Result, **hidden: None) -> dict:
    images = [image for image, _ in result.images]
    used = images[0].parameters if images else {}
    count = len(task.seeds)
    info = {
        "prompt": task.prompt,
        "all_prompts": [task.prompt] * count,
        "negative_prompt": task.negative_prompt,
        "all_negative_prompts": [task.negative_prompt] * count,
        "seed": task.seed,
        "all_seeds": task.seeds,
        "subseed": -1,
        "all_subseeds": [-1] * count,
        "subseed_strength": 0,
        "width": task.settings["width"],
        "height": task.settings["height"],
        "sampler_name": a1111_sampler(used.get("sampler") or task.settings["sampler"]),
        "scheduler": used.get("scheduler") or task.settings["scheduler"],
        "cfg_scale": task.settings["cfg_scale"],
        "steps": task.settings["steps"],
        "batch_size": task.batch,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": os.path.splitext(server.model_name)[0],
        "sd_model_hash": None,
        "sd_vae_name": None,
        "sd_vae_hash": None,
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": task.settings.get("strength"),
        "extra_generation_params": {"Schedule type": used.get("scheduler")},
        "index_of_first_image": 0,
        "infotexts": [image.info["parameters"] for image in images],
        "styles": [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": task.settings["clip_skip"] or 1,
        "is_using_inpainting_conditioning": False,
        "version": f"sdcpp {__version__}",
        "interrupted": result.interrupted,  # sdcpp's: the images are those finished before the interrupt
    }
    return {
        "images": [png_base64(image) for image in images],
        "parameters": {**body.model_dump(), **hidden},
        "info": json.dumps(info),
    }


@router.post("/txt2img")
async def txt2img(request: Request, body: Txt2ImgRequest = Depends(json_body(Txt2ImgRequest))) -> Any:
    server = _server(request)
    task = _task(server, body)
    result = await submit(server, request, task, _FIELDS)
    if result is None:
        return Response(status_code=499)  # the client is gone; nobody reads this
    return await run_in_threadpool(_response, server, body, task, result)


def _img2img_inputs(server: Server, body: Img2ImgRequest) -> dict[str, Any]:
    """Decode, convert and resize the init image and mask (on a worker thread: it takes a while)."""
    limit, size = server.limits.max_input_pixels, (body.width, body.height)
    init = to_rgb(decode_base64_image(body.init_images[0], "init_images", limit), "init_images", size)
    inputs: dict[str, Any] = {"init_image": init, "strength": body.denoising_strength}
    if body.mask:
        mask = to_mask(decode_base64_image(body.mask, "mask", limit), "mask", size, transparent_is_edit=False)
        if body.inpainting_mask_invert:
            mask = mask.point(lambda v: 255 - v)
        if body.mask_blur:
            mask = mask.filter(ImageFilter.GaussianBlur(body.mask_blur))
        inputs["mask_image"] = mask
    return inputs


@router.post("/img2img")
async def img2img(request: Request, body: Img2ImgRequest = Depends(json_body(Img2ImgRequest))) -> Any:
    server = _server(request)
    task = _task(server, body)  # checks the names and limits before the images are decoded
    task.settings.update(await run_in_threadpool(_img2img_inputs, server, body))
    result = await submit(server, request, task, _FIELDS)
    if result is None:
        return Response(status_code=499)
    return await run_in_threadpool(_response, server, body, task, result, init_images=None, mask=None)


@router.get("/progress")
async def progress(request: Request) -> dict:
    """How far the running job is; ``current_image`` is its latest preview (a base64 PNG at 1/8 of the
    image's size, from the latent), null before the first step."""
    queue = _server(request).queue
    job = queue.current
    preview = job.preview_image if job else None
    state = {
        "skipped": False,
        "interrupted": job is not None and job.cancel_reason == "interrupted",
        "stopping_generation": False,
        "job": f"job {job.id}" if job else "",
        "job_count": job.iterations if job else 0,
        "job_timestamp": "0",
        "job_no": job.iteration if job else 0,
        "sampling_step": job.step if job else 0,
        "sampling_steps": job.steps if job else 0,
        "queued": queue.queued,  # sdcpp's: requests waiting behind this one
    }
    return {
        "progress": job.fraction() if job else 0.0,
        "eta_relative": job.eta() if job else 0.0,
        "state": state,
        "current_image": await run_in_threadpool(png_base64, preview) if preview else None,
        "textinfo": None,
    }


@router.post("/interrupt")
async def interrupt(request: Request) -> dict:
    _server(request).queue.interrupt()
    return {}


@router.get("/samplers")
async def samplers() -> list:
    return sampler_list()


@router.get("/schedulers")
async def schedulers() -> list:
    return scheduler_list()


def _model_entry(server: Server) -> dict:
    name = server.model_name
    return {"title": name, "model_name": os.path.splitext(name)[0], "hash": None, "sha256": None,
            "filename": name, "config": None}


@router.get("/sd-models")
async def sd_models(request: Request) -> list:
    return [_model_entry(_server(request))]


@router.get("/options")
async def get_options(request: Request) -> dict:
    server = _server(request)
    return {
        "sd_model_checkpoint": server.model_name,
        "sd_checkpoint_hash": None,
        _CLIP_SKIP_OPTION: server.options.get(_CLIP_SKIP_OPTION, 1),
        "samples_format": "png",
    }


@router.post("/options")
async def set_options(request: Request) -> None:
    """Only the clip skip is settable; the checkpoint must be the one loaded; others are ignored."""
    server = _server(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise FieldError("body", f"must be a JSON object of option names and values, not {type(body).__name__}")
    checkpoint = body.get("sd_model_checkpoint")
    if checkpoint is not None and checkpoint not in (server.model_name, _model_entry(server)["model_name"]):
        raise FieldError(
            "sd_model_checkpoint",
            f"this server serves one model, {server.model_name!r}; start another `sdcpp serve` for {checkpoint!r}",
        )
    if _CLIP_SKIP_OPTION in body:
        value = body[_CLIP_SKIP_OPTION]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 12:
            raise FieldError(_CLIP_SKIP_OPTION, f"must be an integer from 1 to 12, not {value!r}")
        server.options[_CLIP_SKIP_OPTION] = value


# What front ends list when they connect; sdcpp has none of these (yet).
@router.get("/sd-vae")
@router.get("/loras")
@router.get("/upscalers")
@router.get("/prompt-styles")
async def empty_list() -> list:
    return []


@router.get("/embeddings")
async def embeddings() -> dict:
    return {"loaded": {}, "skipped": {}}
