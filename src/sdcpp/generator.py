"""The Generator: one loaded model, text in, images out."""

from __future__ import annotations

import logging
import math
import os
import secrets
from typing import Callable, NamedTuple, Optional, Union

import numpy as np

from . import _core
from ._logs import logger, sync_level
from .devices import devices, resolve_device, warn_skipped
from .errors import DeviceError, InvalidArgumentError
from .files import check_model_path
from .images import GeneratedImage, ImageInput, input_pixels
from .names import Sampler, Scheduler

__all__ = ["Generator", "ProgressCallback", "Tokens"]

PathLike = Union[str, "os.PathLike[str]"]
#: ``progress(step, steps, seconds_per_step)``, called on the generating thread (step 0 at the start).
ProgressCallback = Callable[[int, int, float], object]

_MAX_STEPS = 10_000
# The engine's prompt parsing and tokenizing slow down sharply past this (a 10k-character prompt
# took 2.5 s to encode, a 100k-character one did not finish in 5 minutes).
_MAX_PROMPT_CHARS = 10_000
_MAX_BATCH = 64
_SEED_LIMIT = 2**63  # the engine's seed is an int64_t, and image i of a batch uses seed + i


class Tokens(NamedTuple):
    """What the text encoder gets for a prompt (see :meth:`Generator.tokenize`)."""

    ids: list[int]
    weights: list[float]


class Generator:
    """A Stable Diffusion model loaded by stable-diffusion.cpp, ready to generate images.

    Args:
        model: a single-file model (``.safetensors``, ``.gguf``, ``.ckpt``) or a diffusers folder
            (``unet/``, ``vae/``, ``text_encoder/``). May be omitted when the parts are given
            separately through ``diffusion_model`` and the encoders.
        vae, clip_l, clip_g, t5xxl, diffusion_model, taesd: separate component files, which
            replace or complete those inside ``model``.
        control_net: a ControlNet model, used by ``generate(control_image=...)``.
        weight_type: convert weights at load time (``"f16"``, ``"q8_0"``, ... see
            ``sdcpp.names``); ``None`` keeps the file's types.
        device: ``"auto"`` (the first GPU this build supports that starts, else the CPU, with
            a :class:`DeviceFallbackWarning`), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"metal"``,
            or a ggml device name; a device named here runs the model or raises DeviceError.
            ``Generator.device`` says which device was taken.
        threads: CPU threads; ``None`` is one per physical core.
        rng: the engine's noise generator: ``"cuda"`` (the engine's default, the same noise on
            every device), ``"cpu"`` (the noise of torch's CPU generator) or ``"std_default"``.
        flash_attn: flash attention in the diffusion model: less memory; ``None`` turns it on
            where it was measured faster (CUDA: about 7% per image on an H100) and off elsewhere
            (slower on the CPU; not yet measured on Metal). ``Generator.flash_attn`` says which.
        keep_clip_on_cpu, keep_vae_on_cpu: run these parts on the CPU to save GPU memory.
        name: the engine's log lines for this Generator's calls go to the logger
            ``sdcpp.<name>`` (default: the model file's name), so two Generators' logs stay apart.

    Raises:
        sdcpp.ModelNotFoundError: a path does not exist.
        sdcpp.ModelLoadError: a file is malformed, a folder lacks parts, or the engine refused it.
        sdcpp.DeviceError: the device is not in this build, not on this machine, or failed to start.
    """

    def __init__(
        self,
        model: Optional[PathLike] = None,
        *,
        vae: Optional[PathLike] = None,
        clip_l: Optional[PathLike] = None,
        clip_g: Optional[PathLike] = None,
        t5xxl: Optional[PathLike] = None,
        diffusion_model: Optional[PathLike] = None,
        taesd: Optional[PathLike] = None,
        control_net: Optional[PathLike] = None,
        weight_type: Optional[str] = None,
        device: str = "auto",
        threads: Optional[int] = None,
        rng: Optional[str] = None,
        flash_attn: Optional[bool] = None,
        keep_clip_on_cpu: bool = False,
        keep_vae_on_cpu: bool = False,
        name: Optional[str] = None,
    ) -> None:
        paths = {
            "model": model, "vae": vae, "clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl,
            "diffusion_model": diffusion_model, "taesd": taesd, "control_net": control_net,
        }
        if model is None and diffusion_model is None:
            raise InvalidArgumentError("model: give a model file or folder (or diffusion_model=...)")
        checked = {k: str(check_model_path(v, k)) for k, v in paths.items() if v is not None}
        if weight_type is not None and weight_type not in _core.weight_types():
            raise InvalidArgumentError(
                f"weight_type: unknown type {weight_type!r}; one of {', '.join(_core.weight_types())}"
            )
        if rng is not None and rng not in _core.rng_types():
            raise InvalidArgumentError(f"rng: unknown generator {rng!r}; one of {', '.join(_core.rng_types())}")
        if threads is not None and (not _is_int(threads) or threads < 1):
            raise InvalidArgumentError(f"threads: must be a positive integer or None, not {threads!r}")
        self.model = checked.get("model") or checked["diffusion_model"]
        #: Where the engine's log lines for this Generator go: a child of the ``sdcpp`` logger.
        self.logger = logger.getChild((name or os.path.basename(self.model)).replace(".", "_"))
        ggml_device = resolve_device(device)
        self._has_control_net = control_net is not None
        #: Whether the diffusion model runs with flash attention.
        self.flash_attn: bool = False

        def load(on: str) -> _core.Context:
            # benchmarks/RESULTS.md: flash attention is faster on CUDA only
            self.flash_attn = bool(on.startswith("CUDA") if flash_attn is None else flash_attn)
            return _core.Context(
                **checked,
                weight_type=weight_type or "",
                device=on,
                rng=rng or "",
                threads=threads or 0,
                flash_attn=self.flash_attn,
                keep_clip_on_cpu=keep_clip_on_cpu,
                keep_vae_on_cpu=keep_vae_on_cpu,
                logger=self.logger,
            )

        sync_level()
        try:
            self._ctx = load(ggml_device)
        except DeviceError as e:
            if device != "auto" or ggml_device == "CPU":
                raise  # a device the caller named runs the model or fails, never the CPU in its place
            warn_skipped(f"device {ggml_device!r}", str(e).splitlines()[0], "the CPU",
                         stacklevel=2)  # the caller of Generator(...)
            self._ctx = load("CPU")
        #: The model family the engine detected, e.g. ``"SD 1.x"`` or ``"SDXL"``.
        self.family: str = self._ctx.model_version
        #: The ggml device the model runs on, e.g. ``"CPU"``, ``"CUDA0"`` or ``"MTL0"``.
        self.device: str = self._ctx.device
        #: Weight types per component and tensor counts: ``{"diffusion": {"f16": 686}, ...}``.
        self.weight_types: dict[str, dict[str, int]] = _parse_weight_types(self._ctx.weight_types)
        #: Width and height must be multiples of this (64 for the UNet models: SD 1.x/2.x/XL).
        self.size_multiple: int = self._ctx.spatial_multiple
        self.logger.info("loaded %s", self)

    def generate(
        self,
        prompt: str,
        negative_prompt: str = "",
        *,
        width: int = 512,
        height: int = 512,
        steps: int = 20,
        cfg_scale: float = 7.0,
        sampler: Union[Sampler, str, None] = None,
        scheduler: Union[Scheduler, str, None] = None,
        seed: int = -1,
        batch: int = 1,
        clip_skip: Optional[int] = None,
        init_image: Optional[ImageInput] = None,
        mask_image: Optional[ImageInput] = None,
        strength: float = 0.75,
        control_image: Optional[ImageInput] = None,
        control_strength: float = 0.9,
        progress: Optional[ProgressCallback] = None,
    ) -> list[GeneratedImage]:
        """Generate ``batch`` images from a text prompt.

        Args:
            prompt: what to draw; the engine's emphasis syntax ``(word:1.2)`` is understood.
            negative_prompt: what to steer away from.
            width, height: image size in pixels, a multiple of ``Generator.size_multiple``
                (64 for SD 1.x/2.x/XL).
            steps: sampling steps, 1 to 10000.
            cfg_scale: classifier-free guidance scale (finite).
            sampler, scheduler: a :class:`Sampler` / :class:`Scheduler` or its name; ``None``
                takes the model's default (reported in each image's parameters).
            seed: image ``i`` of the batch uses ``seed + i``; ``-1`` draws a random seed.
            batch: number of images, 1 to 64.
            clip_skip: skip the last ``clip_skip - 1`` text-encoder layers; ``None`` is the
                model's default.
            init_image: image-to-image: start from this picture (PIL image in mode RGB/L/P, or a
                uint8 ``(height, width, 3)`` array) of exactly ``width`` x ``height``.
            mask_image: inpainting: repaint where the mask (mode L/1, or ``(height, width)``
                uint8) is white; needs ``init_image``.
            strength: how much of ``init_image`` is repainted, 0 to 1.
            control_image, control_strength: the ControlNet's condition image and weight; needs
                ``Generator(control_net=...)``.
            progress: called as ``progress(0, steps, 0.0)`` when sampling starts, then as
                ``progress(step, steps, seconds_per_step)`` after each step, on this thread; an
                exception it raises is raised here once the generation returns.

        Returns:
            ``batch`` :class:`GeneratedImage` objects (PIL images, RGB) whose ``parameters``
            hold the settings used, the seed of each image included.
        """
        ticket = self._ctx.begin_generation()  # from here on, cancel() stops this call
        for name, text in (("prompt", prompt), ("negative_prompt", negative_prompt)):
            if not isinstance(text, str):
                raise InvalidArgumentError(f"{name}: must be a str, not {type(text).__name__}")
            if len(text) > _MAX_PROMPT_CHARS:
                raise InvalidArgumentError(
                    f"{name}: {len(text)} characters is more than the {_MAX_PROMPT_CHARS} allowed; "
                    "the text encoder only sees about 75 tokens per chunk anyway"
                )
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise InvalidArgumentError(
                    f"{name}: is not valid Unicode text (unpaired surrogate at index {e.start}); "
                    "decode bytes with errors='replace' first"
                ) from None
        self._check_size(width, height)
        self._check_memory(width, height)
        _check_steps(steps)
        if not _is_number(cfg_scale) or not math.isfinite(cfg_scale):
            raise InvalidArgumentError(f"cfg_scale: must be a finite number, not {cfg_scale!r}")
        if not _is_int(batch) or not 1 <= batch <= _MAX_BATCH:
            raise InvalidArgumentError(f"batch: must be an integer from 1 to {_MAX_BATCH}, not {batch!r}")
        _check_seed(seed, batch)
        if clip_skip is not None and (not _is_int(clip_skip) or clip_skip < 1):
            raise InvalidArgumentError(f"clip_skip: must be a positive integer or None, not {clip_skip!r}")
        for name, value in (("strength", strength), ("control_strength", control_strength)):
            if not _is_number(value) or not 0 <= value <= (1 if name == "strength" else 10):
                limit = 1 if name == "strength" else 10
                raise InvalidArgumentError(f"{name}: must be a number from 0 to {limit}, not {value!r}")
        if mask_image is not None and init_image is None:
            raise InvalidArgumentError("mask_image: inpainting needs init_image as well")
        if control_image is not None and not self._has_control_net:
            raise InvalidArgumentError("control_image: needs a ControlNet: Generator(..., control_net=PATH)")
        init = input_pixels(init_image, "init_image", width, height)
        mask = input_pixels(mask_image, "mask_image", width, height, mask=True)
        control = input_pixels(control_image, "control_image", width, height)
        if progress is not None and not callable(progress):
            raise InvalidArgumentError(f"progress: must be callable or None, not {type(progress).__name__}")
        sampler_name, scheduler_name = self._sampler_and_scheduler(sampler, scheduler)
        if seed == -1:
            seed = secrets.randbelow(_SEED_LIMIT - batch + 1)
            logger.info("seed %d", seed)

        sync_level()
        arrays = self._ctx.generate(
            prompt=prompt,
            negative_prompt=negative_prompt,
            width=width,
            height=height,
            steps=steps,
            cfg_scale=float(cfg_scale),
            sample_method=sampler_name,
            scheduler=scheduler_name,
            seed=seed,
            batch_count=batch,
            clip_skip=-1 if clip_skip is None else clip_skip,
            init_image=init,
            mask_image=mask,
            strength=float(strength),
            control_image=control,
            control_strength=float(control_strength),
            progress=progress,
            ticket=ticket,
        )
        common = {
            "prompt": prompt, "negative_prompt": negative_prompt, "width": width, "height": height,
            "steps": steps, "cfg_scale": float(cfg_scale), "sampler": sampler_name,
            "scheduler": scheduler_name, "clip_skip": clip_skip, "model": os.path.basename(self.model),
            "family": self.family, "sdcpp_version": _core.__version__,
        }
        if init is not None:
            common.update(strength=float(strength), inpainting=mask is not None)
        if control is not None:
            common.update(control_strength=float(control_strength))
        return [GeneratedImage.from_array(a, {**common, "seed": seed + i}) for i, a in enumerate(arrays)]

    def cancel(self) -> None:
        """Stop every :meth:`generate` call that has begun on this Generator.

        The one running stops at its next sampling step (on the CPU, within the step; see
        ``docs/reliability-runtime.md``); calls that are still checking their arguments or waiting
        for it stop before they start. Each raises :class:`sdcpp.Cancelled`, and the Generator
        stays usable: calls begun after ``cancel()`` returns are not affected, so a call made while
        nothing runs has no effect on later generations. Safe to call from any thread, including
        from a progress callback.
        """
        self._ctx.cancel()

    def _check_memory(self, width: int, height: int) -> None:
        """Refuse sizes whose attention alone needs more memory than the device has free.

        The engine allocates the whole compute graph at once and aborts when that fails. Without
        flash attention a UNet's self-attention at its finest level holds an N x N score matrix per
        head (N latent tokens: 8 heads at 1/8 scale for SD 1.x/2.x, 10 at 1/16 for SDXL), which
        dominates at large sizes; flash attention does not materialise it.
        """
        if self.flash_attn or self.size_multiple != 64:
            return
        xl = "XL" in self.family
        tokens = (width // (16 if xl else 8)) * (height // (16 if xl else 8))
        need = tokens * tokens * (10 if xl else 8) * 4
        free = next((d["memory_free"] for d in devices() if d["name"] == self.device), 0)
        if free and need > free:
            raise InvalidArgumentError(
                f"width, height: {width}x{height} needs about {need / 2**30:.0f} GiB for attention on "
                f"{self.device}, which has {free / 2**30:.0f} GiB free; use a smaller size or "
                "Generator(..., flash_attn=True)"
            )

    def tokenize(self, prompt: str) -> Tokens:
        """The token ids the text encoder gets for ``prompt``, with their emphasis weights.

        Prompts are cut into chunks of 75 tokens, each given to the text encoder as 77 ids: the
        start token, the chunk, the end token, then padding. Emphasis such as ``(word:1.2)`` is
        removed from the text and becomes the weight of its tokens. ``len(tokens.ids) // 77`` is
        the number of chunks a prompt takes.
        """
        if not isinstance(prompt, str):
            raise InvalidArgumentError(f"prompt: must be a str, not {type(prompt).__name__}")
        sync_level()
        ids, weights = self._ctx.tokenize(prompt)
        return Tokens(ids.tolist(), weights.tolist())

    def noise(self, seed: int, *, width: int = 512, height: int = 512) -> np.ndarray:
        """The initial latent noise of a ``width`` x ``height`` generation with ``seed``.

        A float32 array of shape ``(1, channels, height / f, width / f)`` (``(1, 4, 64, 64)`` for
        SD 1.x at 512 x 512), drawn as :meth:`generate` draws it, before it is scaled by the first
        noise level. With ``rng="cpu"`` it is the noise of ``torch.randn`` on a CPU generator
        seeded with ``seed``, so other pipelines can start from the same noise.
        """
        self._check_size(width, height)
        _check_seed(seed, 1, random=False)
        sync_level()
        return self._ctx.initial_noise(seed=seed, width=width, height=height)

    def sigmas(
        self,
        steps: int,
        *,
        sampler: Union[Sampler, str, None] = None,
        scheduler: Union[Scheduler, str, None] = None,
        width: int = 512,
        height: int = 512,
    ) -> np.ndarray:
        """The ``steps + 1`` noise levels (sigmas) a generation steps through, ending at 0.

        ``sampler`` and ``scheduler`` default as in :meth:`generate`; the size matters only to
        models whose schedule depends on it.
        """
        _check_steps(steps)
        self._check_size(width, height)
        sampler_name, scheduler_name = self._sampler_and_scheduler(sampler, scheduler)
        sync_level()
        return self._ctx.sigmas(
            steps=steps, sample_method=sampler_name, scheduler=scheduler_name, width=width, height=height
        )

    def _check_size(self, width: object, height: object) -> None:
        multiple = self.size_multiple
        for name, value in (("width", width), ("height", height)):
            if not _is_int(value) or value < multiple or value % multiple:
                nearest = max(multiple, round(value / multiple) * multiple) if _is_number(value) else 512
                raise InvalidArgumentError(
                    f"{name}: must be a positive multiple of {multiple} for {self.family} models, "
                    f"not {value!r}; try {nearest}"
                )

    def _sampler_and_scheduler(self, sampler: object, scheduler: object) -> tuple[str, str]:
        sampler_name = _choice(sampler, Sampler, "sampler") or self._ctx.default_sample_method()
        scheduler_name = _choice(scheduler, Scheduler, "scheduler") or self._ctx.default_scheduler(sampler_name)
        return sampler_name, scheduler_name

    @property
    def closed(self) -> bool:
        return self._ctx.closed

    def close(self) -> None:
        """Free the model's memory now (waits for a generation running in another thread)."""
        self._ctx.close()

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<Generator {self.model!r} (closed)>"
        weights = {part: max(types, key=types.get) for part, types in self.weight_types.items() if types}
        return f"Generator({self.model!r}, family={self.family!r}, device={self.device!r}, weights={weights})"


def _check_steps(steps: object) -> None:
    if not _is_int(steps) or not 1 <= steps <= _MAX_STEPS:
        raise InvalidArgumentError(f"steps: must be an integer from 1 to {_MAX_STEPS}, not {steps!r}")


def _check_seed(seed: object, batch: int, random: bool = True) -> None:
    lowest = -1 if random else 0
    if not _is_int(seed) or not lowest <= seed <= _SEED_LIMIT - batch:
        raise InvalidArgumentError(
            f"seed: must be {'-1 (random) or ' if random else ''}an integer from 0 to 2**63 - {batch}, not {seed!r}"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _choice(value: object, names: type, argument: str) -> Optional[str]:
    if value is None:
        return None
    allowed = [m.value for m in names]  # type: ignore[attr-defined]
    if value not in allowed:
        raise InvalidArgumentError(f"{argument}: unknown {argument} {value!r}; one of {', '.join(allowed)}")
    return str(names(value).value)


def _parse_weight_types(text: str) -> dict[str, dict[str, int]]:
    """Parse the engine's "conditioner=f16:196,f32:1;diffusion=...;vae=..." summary."""
    out: dict[str, dict[str, int]] = {}
    for part in text.split(";"):
        component, _, stats = part.partition("=")
        out[component] = {t: int(n) for t, _, n in (s.partition(":") for s in stats.split(",") if s)}
    return out
