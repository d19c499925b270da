"""The Generator: one loaded model, text in, images out."""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union, overload

import numpy as np
from PIL import Image

from . import _core, photomaker
from ._logs import logger, sync_level
from .devices import devices, resolve_device, warn_skipped
from .errors import DeviceError, InvalidArgumentError, ModelLoadError, ModelNotFoundError
from .files import check_model_path
from .images import GeneratedImage, ImageInput, input_pixels
from .loras import find_embeddings, resolve_loras, split_prompt, unknown_embedding_references
from .components import COMPONENTS, check_complete
from .defaults import family_defaults, resolved
from .names import (
    DIT_CACHE_MODES,
    UNET_CACHE_MODES,
    HiresUpscaler,
    LoraApplyMode,
    PreviewMode,
    Prediction,
    Sampler,
    Scheduler,
)
from .params import (
    SEED_LIMIT,
    GenerationParams,
    VideoParams,
    ProgressCallback,
    check_field,
    check_seed,
    is_int,
    is_number,
    params_signature,
    to_core,
)
from .upscaler import check_upscaler_path
from .video import Video

__all__ = ["Generator", "ProgressCallback", "Tokens"]

PathLike = Union[str, "os.PathLike[str]"]


class Tokens(NamedTuple):
    """What the text encoder gets for a prompt (see :meth:`Generator.tokenize`)."""

    ids: list[int]
    weights: list[float]


def load_options(**values: Any) -> _core.LoadOptions:
    """The engine's load settings, every field given by name: a field left out is an error here, so a field
    added in C++ cannot silently keep its zero (a name that is no field is pybind11's AttributeError)."""
    missing = set(_core.LoadOptions.fields) - set(values)
    if missing:
        raise TypeError(f"load_options: missing {', '.join(sorted(missing))}")
    options = _core.LoadOptions()
    for name, value in values.items():
        setattr(options, name, value)
    return options


class Generator:
    """A Stable Diffusion model loaded by stable-diffusion.cpp, ready to generate images.

    Args:
        model: a single-file model (``.safetensors``, ``.gguf``, ``.ckpt``) or a diffusers folder
            (``unet/``, ``vae/``, ``text_encoder/``). May be omitted when the parts are given
            separately through ``diffusion_model`` and the encoders.
        diffusion_model: the diffusion model (UNet or DiT) as a file of its own; with the components
            below, in place of ``model``.
        vae, taesd, clip_l, clip_g, t5xxl, llm, llm_vision, clip_vision, high_noise_diffusion_model:
            separate component files, which replace or complete those inside ``model``
            (``sdcpp.components.COMPONENTS`` says what each holds). A set that lacks a component its
            family needs raises ModelLoadError naming the argument that supplies it.
        control_net: a ControlNet model, used by ``generate(control_image=...)``.
        photo_maker: a PhotoMaker model (v1, or v2 with "v2" in its file name) for SDXL models, used by
            ``generate(id_images=[...])``: the person in the pictures, where the prompt says
            "<class word> img" (docs/photomaker.md).
        prediction: what the diffusion model predicts (a :class:`Prediction` or its name, e.g. ``"v"``
            for an SD 2.x 768-v model the engine takes for eps); ``None``: the engine decides from the
            files. ``Generator.prediction`` says which is used.
        weight_type: convert weights at load time (``"f16"``, ``"q8_0"``, ... see
            ``sdcpp.names``); ``None`` keeps the file's types.
        device: ``"auto"`` (the first GPU this build supports that starts, else the CPU, with
            a :class:`DeviceFallbackWarning`), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"metal"``,
            or a ggml device name; a device named here runs the model or raises DeviceError.
            ``Generator.device`` says which device was taken.
        threads: CPU threads; ``None`` is one per physical core the process may run on (its CPU affinity).
        rng: the engine's noise generator: ``"cuda"`` (the engine's default, the same noise on
            every device), ``"cpu"`` (the noise of torch's CPU generator) or ``"std_default"``.
        flash_attn: flash attention in the diffusion model: less memory; ``None`` turns it on
            where it was measured faster (CUDA: about 7% per image on an H100) and off elsewhere
            (slower on the CPU; not yet measured on Metal). ``Generator.flash_attn`` says which.
        keep_clip_on_cpu, keep_vae_on_cpu: run these parts on the CPU to save GPU memory.
        lora_dir: a folder of LoRA files, named in ``generate(loras={name: weight})`` or in the prompt as
            ``<lora:name:weight>`` (the file name with or without its extension).
        embeddings: textual-inversion embeddings: a folder of them or a list of files (``.safetensors``
            with A1111's ``emb_params``, ``.pt``, ``.gguf``); each file's name without extension, in
            lower case, is the word that stands for it in prompts. Other words stay text.
        lora_apply_mode: when LoRAs are applied (a :class:`LoraApplyMode` or its name); ``None`` is
            ``"auto"``: merged into float weights, computed beside quantized ones.
        batched_cfg: evaluate classifier-free guidance's conditional and unconditional predictions
            as one batch of two per step instead of two runs: the same image, with twice the
            diffusion model's working memory. ``None`` (on) and ``True`` batch where the engine
            can (SD 1.x, 2.x and XL, without a ControlNet or image guidance); ``False`` never
            does. See docs/batched-cfg.md.
        circular_x, circular_y: pad every convolution circularly along x (left-right) or y
            (top-bottom), so that images tile seamlessly in that direction (textures, panoramas);
            the engine's ``circular_x`` / ``circular_y``, set when the model is loaded.
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
        llm: Optional[PathLike] = None,
        llm_vision: Optional[PathLike] = None,
        clip_vision: Optional[PathLike] = None,
        diffusion_model: Optional[PathLike] = None,
        high_noise_diffusion_model: Optional[PathLike] = None,
        taesd: Optional[PathLike] = None,
        control_net: Optional[PathLike] = None,
        photo_maker: Optional[PathLike] = None,
        prediction: Union[Prediction, str, None] = None,
        weight_type: Optional[str] = None,
        device: str = "auto",
        threads: Optional[int] = None,
        rng: Optional[str] = None,
        flash_attn: Optional[bool] = None,
        keep_clip_on_cpu: bool = False,
        keep_vae_on_cpu: bool = False,
        lora_dir: Optional[PathLike] = None,
        embeddings: Union[PathLike, Sequence[PathLike], None] = None,
        lora_apply_mode: Union[LoraApplyMode, str, None] = None,
        batched_cfg: Optional[bool] = None,
        circular_x: bool = False,
        circular_y: bool = False,
        name: Optional[str] = None,
    ) -> None:
        given = locals()
        paths = {k: given[k] for k in COMPONENTS if given[k] is not None}
        if model is None and diffusion_model is None:
            raise InvalidArgumentError("model: give a model file or folder (or diffusion_model=...)")
        checked = {k: str(check_model_path(v, k)) for k, v in paths.items()}
        if prediction is not None and prediction not in [p.value for p in Prediction]:
            raise InvalidArgumentError(
                f"prediction: unknown prediction {prediction!r}; one of {', '.join(p.value for p in Prediction)}"
            )
        frame_inputs = check_complete(checked)
        #: The PhotoMaker model's version (1 or 2), or None without one.
        self.photo_maker_version: Optional[int] = (
            photomaker.model_version(checked["photo_maker"]) if "photo_maker" in checked else None
        )
        if weight_type is not None and weight_type not in _core.weight_types():
            raise InvalidArgumentError(
                f"weight_type: unknown type {weight_type!r}; one of {', '.join(_core.weight_types())}"
            )
        if rng is not None and rng not in _core.rng_types():
            raise InvalidArgumentError(f"rng: unknown generator {rng!r}; one of {', '.join(_core.rng_types())}")
        if lora_apply_mode is not None and lora_apply_mode not in [m.value for m in LoraApplyMode]:
            raise InvalidArgumentError(
                f"lora_apply_mode: unknown mode {lora_apply_mode!r}; one of {', '.join(m.value for m in LoraApplyMode)}"
            )
        if lora_dir is not None and not Path(lora_dir).is_dir():
            raise ModelNotFoundError(f"lora_dir: no such folder: '{lora_dir}'")
        #: Textual-inversion tokens -> their files.
        self.embeddings: dict[str, str] = find_embeddings(embeddings) if embeddings is not None else {}
        #: When LoRAs are applied (``AUTO``: the engine decides by the weight types).
        self.lora_apply_mode = LoraApplyMode(lora_apply_mode or "auto")
        #: The folder LoRAs are looked up in by name, or None.
        self.lora_dir: Optional[Path] = Path(lora_dir).resolve() if lora_dir is not None else None
        if threads is not None and (not is_int(threads) or threads < 1):
            raise InvalidArgumentError(f"threads: must be a positive integer or None, not {threads!r}")
        self.model = checked.get("model") or checked["diffusion_model"]
        #: Where the engine's log lines for this Generator go: a child of the ``sdcpp`` logger.
        self.logger = logger.getChild((name or os.path.basename(self.model)).replace(".", "_"))
        ggml_device = resolve_device(device)
        self._has_control_net = control_net is not None
        self._has_taesd = taesd is not None
        #: Whether images tile seamlessly left-right (x) and top-bottom (y).
        self.circular = (bool(circular_x), bool(circular_y))
        #: Whether the diffusion model runs with flash attention.
        self.flash_attn: bool = False

        def load(on: str) -> _core.Context:
            # benchmarks/RESULTS.md: flash attention is faster on CUDA only
            self.flash_attn = bool(on.startswith("CUDA") if flash_attn is None else flash_attn)
            return _core.Context(load_options(
                paths=checked,
                prediction=Prediction(prediction).value if prediction is not None else "",
                weight_type=weight_type or "",
                device=on,
                rng=rng or "",
                lora_apply_mode=self.lora_apply_mode.value,
                embeddings=list(self.embeddings.items()),
                threads=threads or 0,
                flash_attn=self.flash_attn,
                keep_clip_on_cpu=keep_clip_on_cpu,
                keep_vae_on_cpu=keep_vae_on_cpu,
                vae_decode_only=False,
                mmap=False,
                batched_cfg=batched_cfg is None or bool(batched_cfg),
                circular_x=bool(circular_x),
                circular_y=bool(circular_y),
            ), logger=self.logger)

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
        #: Whether the model makes videos (Wan): use :meth:`generate_video`, not :meth:`generate`.
        self.makes_video: bool = self._ctx.supports_video
        self._frame_inputs = frame_inputs  # the frames generate_video uses; the engine ignores the others
        #: What the diffusion model predicts: the ``prediction`` asked for, or the engine's choice.
        self.prediction = Prediction(self._ctx.prediction)
        sampler = Sampler(self._ctx.default_sample_method())
        #: The settings a generation leaves None take: the family's recommended size, steps, CFG scale and
        #: distilled guidance (sdcpp.defaults), the engine's sampler, scheduler and flow shift for this model.
        self.defaults: Mapping[str, Any] = MappingProxyType(resolved(
            family_defaults(self.family, self.prediction.value), sampler,
            Scheduler(self._ctx.default_scheduler(sampler.value)), self._ctx.default_flow_shift,
        ))
        if self.photo_maker_version is not None and "SDXL" not in self.family:
            self._ctx.close()
            raise ModelLoadError(
                f"photo_maker: PhotoMaker merges its ID into SDXL's text embedding; {self.family} models have "
                "another, so use an SDXL model"
            )
        self.logger.info("loaded %s", self)
        if self.embeddings:
            # The engine leaves any other word as text without a word in its log: say which are tokens.
            self.logger.info("embeddings (words in prompts that stand for them): %s", ", ".join(self.embeddings))

    @overload
    def generate(self, params: GenerationParams, /) -> list[GeneratedImage]: ...

    @overload
    @params_signature(GenerationParams)
    def generate(self, *args: Any, **kwargs: Any) -> list[GeneratedImage]: ...

    def generate(self, *args: Any, **kwargs: Any) -> list[GeneratedImage]:
        """Generate ``batch`` images from a text prompt (and input images).

        Takes a :class:`GenerationParams`, or its fields as arguments:
        ``generate("a lighthouse", "blurry", steps=20, seed=42)``. Each field's meaning, default and
        bounds are in :class:`GenerationParams` (``print(GenerationParams.describe())``).

        Returns:
            ``batch`` :class:`GeneratedImage` objects (PIL images, RGB) whose ``params`` hold the
            settings used, each image's own seed included.

        Raises:
            sdcpp.InvalidArgumentError: a setting or input is out of bounds; the message names it.
            sdcpp.Cancelled: :meth:`cancel` was called from another thread.
            sdcpp.GenerationError: the engine produced no image; the message carries its log.
        """
        ticket = self._ctx.begin_generation()  # from here on, cancel() stops this call
        if self.makes_video:
            raise InvalidArgumentError(
                f"Generator.generate: {self.family} makes videos, not images; call generate_video() "
                "(a one-frame video is generate_video(..., frames=1))"
            )
        params = self._params(args, kwargs)
        hires = params.hires
        if hires is not None and hires.upscaler is not HiresUpscaler.NONE:
            target = hires.size(params.width, params.height)
            self._check_size(*target, names=("hires.width", "hires.height"))
            self._check_memory(*target)
            if hires.model is not None:  # the engine reads it on every hires generation
                check_upscaler_path(hires.model, "hires.model")
        if params.control_image is not None and not self._has_control_net and self.family not in _CONTROL_FAMILIES:
            raise InvalidArgumentError(
                "control_image: needs a ControlNet: Generator(..., control_net=PATH), or a model that reads "
                "one itself (Flux Control, Flex.2)"
            )
        self._check_applies(params)
        self._check_photomaker(params)
        params, core = self._for_engine(params)
        arrays = self._ctx.generate(
            core,
            init_image=params.init_image,
            mask_image=params.mask_image,
            control_image=params.control_image,
            ref_images=list(params.ref_images or ()),
            id_images=list(params.id_images or ()),
            progress=params.progress,
            preview=_preview_images(params.preview),
            ticket=ticket,
        )
        info = self._info({n: getattr(params, n)
                           for n in ("init_image", "mask_image", "control_image", "ref_images", "id_images")})
        return [
            GeneratedImage.from_array(a, replace(params, seed=params.seed + i, batch=1), info) for i, a in enumerate(arrays)
        ]

    def _params(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> GenerationParams:
        """generate()'s arguments (a GenerationParams or its fields) with the defaults, size checked."""
        given = args[0] if len(args) == 1 and not kwargs and isinstance(args[0], GenerationParams) else None
        params = self.with_defaults(given or GenerationParams(*args, **kwargs))
        self._check_size(params.width, params.height)
        self._check_memory(params.width, params.height)
        return params

    def generate_video(
        self, *args: Any, video: Union[VideoParams, Mapping[str, Any], None] = None,
        end_image: Optional[ImageInput] = None, **kwargs: Any,
    ) -> Video:
        """Generate a video (Wan 2.x) from a text prompt, optionally from a first and a last frame.

        Takes :meth:`generate`'s arguments for what a video shares with an image (prompt, negative
        prompt, size, steps, cfg_scale, sampler, flow_shift, seed, LoRAs, ``init_image`` as the first
        frame, ``progress``) and the video's own (:class:`VideoParams`: ``frames``, Wan 2.2's
        high-noise settings) as keywords or as ``video=``. ``end_image`` is the last frame
        (first-last-frame models). ``batch``, ``hires``, masks, ControlNet and previews are image-only.

        Returns:
            A :class:`Video` of ``frames`` :class:`GeneratedImage` frames.

        Raises:
            sdcpp.InvalidArgumentError: a setting is out of bounds, or the model makes images, not videos.
            sdcpp.Cancelled: :meth:`cancel` was called from another thread.
            sdcpp.GenerationError: the engine produced no video; the message carries its log.
        """
        ticket = self._ctx.begin_generation()
        if not self.makes_video:
            raise InvalidArgumentError(
                f"Generator.generate_video: {self.family} makes images, not videos; call generate(), or load a "
                "video model (Wan 2.x: docs/video.md)"
            )
        own = {k: kwargs.pop(k) for k in [f.name for f in fields(VideoParams)] if k in kwargs}
        if video is not None and own:
            raise InvalidArgumentError(f"{', '.join(own)}: give the video's settings as video= or as keywords, not both")
        if isinstance(video, Mapping):
            video = VideoParams(**video)
        elif video is None:
            video = VideoParams(**own)
        elif not isinstance(video, VideoParams):
            raise InvalidArgumentError(f"video: must be a VideoParams or a dict of its fields, not {type(video).__name__}")
        params = self._params(args, kwargs)
        for name, unused in (("batch", params.batch != 1), ("hires", params.hires is not None),
                             ("mask_image", params.mask_image is not None),
                             ("control_image", params.control_image is not None), ("preview", params.preview is not None),
                             ("id_images", params.id_images is not None)):
            if unused:
                raise InvalidArgumentError(f"{name}: not used by generate_video (image generation only)")
        self._check_applies(params)
        end = input_pixels(end_image, "end_image", params.width, params.height)
        for name, frame in (("init_image", params.init_image), ("end_image", end)):
            if frame is not None and name not in self._frame_inputs:
                takes = " and ".join(self._frame_inputs) or "no input frames (text to video)"
                raise InvalidArgumentError(
                    f"{name}: this {self.family} model takes {takes}; the engine would ignore it (docs/video.md)"
                )
        params, core = self._for_engine(params)
        arrays = self._ctx.generate_video(core, to_core(video), init_image=params.init_image, end_image=end,
                                          progress=params.progress, ticket=ticket)
        info = {**self._info({"init_image": params.init_image, "end_image": end}), **video.to_dict()}
        return Video(tuple(GeneratedImage.from_array(a, params, info) for a in arrays), params, video)

    def _for_engine(self, params: GenerationParams) -> tuple[GenerationParams, Any]:
        """``params`` with a seed drawn for -1, and the engine's struct of it, with the LoRAs named in the
        prompt taken out of the prompt and resolved to files; ``embedding:NAME`` words naming no loaded
        embedding are logged. Syncs the engine's log level for the call."""
        seed = params.seed
        if seed == -1:
            seed = secrets.randbelow(SEED_LIMIT - params.batch + 1)
            logger.info("seed %d", seed)
        params = replace(params, seed=seed)
        prompt, tagged = split_prompt(params.prompt)
        loras = resolve_loras([*params.loras.items(), *tagged.items()], self.lora_dir)
        for word in unknown_embedding_references(f"{prompt} {params.negative_prompt}", self.embeddings):
            loaded = ", ".join(self.embeddings) or "none; give them with Generator(embeddings=...)"
            self.logger.info("%r names no embedding of this Generator (it has: %s); it stays text", word, loaded)
        sync_level()
        return params, to_core(replace(params, prompt=prompt, loras=loras))

    def _info(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """What a result records beside its parameters: the model, the version, the input images given."""
        return {
            "model": os.path.basename(self.model), "family": self.family, "sdcpp_version": _core.__version__,
            **({"circular": list(self.circular)} if any(self.circular) else {}),
            "inputs": [n for n, v in inputs.items() if v is not None],
        }

    def with_defaults(self, params: GenerationParams) -> GenerationParams:
        """``params`` with each setting left None replaced by this model's default (:attr:`defaults`);
        the scheduler's default follows the sampler chosen."""
        sampler, scheduler = self._sampler_and_scheduler(params.sampler, params.scheduler)
        unset = {k: v for k, v in self.defaults.items() if getattr(params, k) is None and k not in ("sampler", "scheduler")}
        return replace(params, **unset, sampler=sampler, scheduler=scheduler)

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
        if self.flash_attn or not self._is_unet:
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

    @property
    def _is_unet(self) -> bool:
        # VAE scale 8 x the UNet's 3 halvings: 64 for SD 1.x/2.x/XL; DiT models patch to 16.
        return self.size_multiple == 64

    def _check_applies(self, params: GenerationParams) -> None:
        """Refuse settings the engine would ignore for this model (with at most a log line)."""
        kind = "a UNet model" if self._is_unet else "a DiT model"
        cache = params.cache_mode
        usable = UNET_CACHE_MODES if self._is_unet else DIT_CACHE_MODES
        if cache not in usable:
            names = ", ".join(sorted(m.value for m in usable))
            raise InvalidArgumentError(f"cache_mode: {cache.value} does not apply to {self.family} ({kind}); use one of {names}")
        for name in ("flow_shift", "slg"):
            if self._is_unet and getattr(params, name) is not None:
                raise InvalidArgumentError(
                    f"{name}: applies to DiT models (SD3, Flux, ...); {self.family} is a UNet model, which the "
                    "engine would run without it: leave it None"
                )
        # The engine's sd_version_is_inpaint_or_unet_edit, by the family names it gives those versions.
        image_guided = ("Inpaint", "Pix2Pix", "Fill", "Flux Control", "Flex.2")
        if params.img_cfg_scale is not None and not any(k in self.family for k in image_guided):
            raise InvalidArgumentError(
                f"img_cfg_scale: applies to inpainting, instruct-pix2pix and Flux Fill/Control models, not to "
                f"{self.family}: leave it None"
            )
        if params.ref_images is not None:
            self._check_references(params)
        if params.preview is not None and params.preview_mode is PreviewMode.NONE:
            raise InvalidArgumentError("preview_mode: none gives the preview callback nothing; use proj, tae or vae")
        if params.preview is not None and params.preview_mode is PreviewMode.TAE and not self._has_taesd:
            raise InvalidArgumentError("preview_mode: tae needs a TAESD decoder: Generator(..., taesd=PATH)")

    def _check_photomaker(self, params: GenerationParams) -> None:
        if params.id_images is None:
            return  # a PhotoMaker Generator also draws without ID pictures (0045-photomaker-per-call.patch)
        if self.photo_maker_version is None:
            raise InvalidArgumentError("id_images: needs a PhotoMaker model: Generator(..., photo_maker=PATH)")
        if self.photo_maker_version == 2 and params.id_embedding is None:
            raise InvalidArgumentError(
                "id_embedding: PhotoMaker v2 needs the pictures' InsightFace embeddings (id_embeds.bin of "
                "PhotoMaker's face_detect.py) beside id_images"
            )
        if self.photo_maker_version == 1 and params.id_embedding is not None:
            raise InvalidArgumentError("id_embedding: only PhotoMaker v2 reads ID embeddings; this model is v1")

    def _check_references(self, params: GenerationParams) -> None:
        """Refuse references the engine would ignore, or whose encoding size it cannot handle."""
        refs = params.ref_images or ()
        if self.family not in _REFERENCE_FAMILIES | _PIX2PIX:
            raise InvalidArgumentError(
                f"ref_images: {self.family} does not use reference images (the engine would run without them); "
                "they are for Flux Kontext, Flux.2, Qwen-Image Edit, Z-Image and instruct-pix2pix models: leave it None"
            )
        if self.family in _PIX2PIX and len(refs) > 1:
            raise InvalidArgumentError(
                f"ref_images: {self.family} edits one image, the first reference; the engine ignores the other "
                f"{len(refs) - 1}: give one"
            )
        factor = 32 if self.family == "Qwen Image" else 16  # the engine's auto-resize rounding
        for i, ref in enumerate(refs):
            height, width = ref.shape[:2]
            if params.auto_resize_ref_image:
                resized = _resized_reference(width, height, params.width * params.height, factor)
                if min(resized) < factor:
                    raise InvalidArgumentError(
                        f"ref_images[{i}]: {width}x{height} pixels is too narrow to scale to the output's area "
                        f"(it would be {resized[0]}x{resized[1]}); crop it closer to the output's aspect ratio"
                    )
            elif width % self.size_multiple or height % self.size_multiple or not width or not height:
                raise InvalidArgumentError(
                    f"ref_images[{i}]: {width}x{height} pixels; without auto_resize_ref_image each reference must be a "
                    f"positive multiple of {self.size_multiple} on both sides for {self.family}: resize it, or leave "
                    "auto_resize_ref_image on"
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
        check_seed(seed, 1, random=False)
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
        check_field("steps", steps)
        self._check_size(width, height)
        sampler_name, scheduler_name = self._sampler_and_scheduler(sampler, scheduler)
        sync_level()
        return self._ctx.sigmas(
            steps=steps, sample_method=sampler_name.value, scheduler=scheduler_name.value, width=width, height=height
        )

    def _check_size(self, width: object, height: object, names: tuple[str, str] = ("width", "height")) -> None:
        multiple = self.size_multiple
        for name, value in zip(names, (width, height)):
            if not is_int(value) or value < multiple or value % multiple:
                nearest = max(multiple, round(value / multiple) * multiple) if is_number(value) else 512
                raise InvalidArgumentError(
                    f"{name}: must be a positive multiple of {multiple} for {self.family} models, "
                    f"not {value!r}; try {nearest}"
                )

    def _sampler_and_scheduler(self, sampler: object, scheduler: object) -> tuple[Sampler, Scheduler]:
        """The sampler and scheduler named, or the model's defaults for None."""
        chosen = check_field("sampler", sampler) or Sampler(self.defaults["sampler"])
        return chosen, check_field("scheduler", scheduler) or Scheduler(self._ctx.default_scheduler(chosen.value))

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
        # Biases and norm scales are f32 in every file and can outnumber the weight matrices (a q4_0
        # GGUF DiT): a part's type is its most common other type.
        weights = {part: max(types, key=lambda t: (t != "f32", types[t]))
                   for part, types in self.weight_types.items() if types}
        return f"Generator({self.model!r}, family={self.family!r}, device={self.device!r}, weights={weights})"


# The families whose diffusion model reads reference latents (the engine's FluxModel but Chroma Radiance,
# QwenImageModel and ZImageModel, src/diffusion_model.hpp), and the UNet editors that take the first
# reference as the image to edit (sd_version_is_unet_edit).
_REFERENCE_FAMILIES = frozenset(
    {"Flux", "Flux Fill", "Flux Control", "Flex.2", "Ovis Image", "Flux.2", "Flux.2 klein", "Qwen Image", "Z-Image"}
)
_PIX2PIX = frozenset({"Instruct-Pix2Pix", "SDXL Instruct-Pix2Pix"})
# The families whose transformer takes the control image's latent beside its own (the engine's
# sd_version_is_control): depth or canny maps for Flux Control, Flex.2's control input.
_CONTROL_FAMILIES = frozenset({"Flux Control", "Flex.2"})


def _resized_reference(width: int, height: int, area: int, factor: int) -> tuple[int, int]:
    """The size the engine scales a reference to with auto_resize_ref_image (generate_image_internal)."""
    if not width or not height:
        return 0, 0
    side = math.sqrt(min(1024 * 1024, area) * width // height)  # the engine divides in integers here
    return (math.floor(side / factor + 0.5) * factor, math.floor(side * height / width / factor + 0.5) * factor)


def _preview_images(preview: Optional[Any]) -> Optional[Any]:
    """The engine's ``preview(step, pixels)`` for a ``preview(step, PIL image)`` callback."""
    if preview is None:
        return None
    return lambda step, pixels: preview(step, Image.fromarray(pixels))


def _parse_weight_types(text: str) -> dict[str, dict[str, int]]:
    """Parse the engine's "conditioner=f16:196,f32:1;diffusion=...;vae=..." summary."""
    out: dict[str, dict[str, int]] = {}
    for part in text.split(";"):
        component, _, stats = part.partition("=")
        out[component] = {t: int(n) for t, _, n in (s.partition(":") for s in stats.split(",") if s)}
    return out
