"""Generated images, which carry their generation parameters into the PNG files they are saved to."""

from __future__ import annotations

import json
import os
from typing import IO, TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image, PngImagePlugin

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .params import GenerationParams

__all__ = [
    "GeneratedImage", "PARAMETERS_KEY", "SDCPP_KEY", "ImageInput", "input_pixels", "read_metadata", "reference_pixels",
]

#: An input image: a PIL image, or a uint8 array of shape (height, width, 3) — (height, width) for masks.
ImageInput = Union[Image.Image, np.ndarray]

# "parameters" is the text chunk that Stable Diffusion web UIs and image viewers read;
# "sdcpp" holds the same facts as JSON, for programs.
PARAMETERS_KEY = "parameters"
SDCPP_KEY = "sdcpp"


class GeneratedImage(Image.Image):
    """A PIL image that remembers how it was made.

    ``image.params`` is the :class:`sdcpp.GenerationParams` that makes this image again (its own
    seed, a batch of 1, the sampler and scheduler used); ``image.parameters`` is the same as a dict
    (:meth:`GenerationParams.to_dict`) with the model's file name and family and the sdcpp version
    added, and ``inputs``: the input images given. Saving as PNG writes that dict as text chunks
    (``parameters`` as web UIs write it, ``sdcpp`` as JSON) unless ``pnginfo=`` is given;
    :meth:`read_parameters` reads the parameters back from a saved file.
    """

    params: GenerationParams
    parameters: dict[str, Any]

    @classmethod
    def from_array(cls, pixels: np.ndarray, params: GenerationParams, info: Mapping[str, Any]) -> GeneratedImage:
        base = Image.fromarray(pixels)
        image = cls()
        image.__dict__.update(base.__dict__)
        image.params = params
        image.parameters = {**params.to_dict(), **info}
        image.info[PARAMETERS_KEY] = _a1111_text(image.parameters)
        image.info[SDCPP_KEY] = json.dumps(image.parameters)
        return image

    def save(self, fp: str | bytes | Any | IO[bytes], format: str | None = None, **params: Any) -> None:
        if "pnginfo" not in params:
            info = PngImagePlugin.PngInfo()
            info.add_text(PARAMETERS_KEY, self.info[PARAMETERS_KEY])
            info.add_text(SDCPP_KEY, self.info[SDCPP_KEY])
            params["pnginfo"] = info
        super().save(fp, format, **params)

    @staticmethod
    def read_parameters(path: str | Any) -> GenerationParams:
        """The generation parameters stored in a PNG saved by sdcpp: ``generate(params)`` remakes it.

        The whole JSON record, model name included, is the PNG text chunk ``sdcpp`` (``SDCPP_KEY``):
        :func:`read_metadata`.
        """
        from .params import GenerationParams  # params imports this module for its image checks

        return GenerationParams.from_dict(read_metadata(path))


def read_metadata(path: str | Any) -> dict[str, Any]:
    """The record a PNG saved by sdcpp holds: the settings (``GenerationParams.to_dict()``) and the
    model's name and family, the sdcpp version and which input images were given.

    Raises:
        sdcpp.InvalidArgumentError: the image holds no sdcpp record (not a PNG that sdcpp saved).
    """
    with Image.open(path) as im:
        text = im.info.get(SDCPP_KEY)
        kind = im.format
    if not isinstance(text, str):
        hint = "only PNG files keep it" if kind != "PNG" else "it was not saved by sdcpp, or its metadata was removed"
        raise InvalidArgumentError(f"{path}: holds no sdcpp parameters (the PNG text chunk '{SDCPP_KEY}'); {hint}")
    try:
        record = json.loads(text)
    except ValueError as e:
        raise InvalidArgumentError(f"{path}: its '{SDCPP_KEY}' text chunk is not JSON ({e})") from None
    if not isinstance(record, dict):
        raise InvalidArgumentError(f"{path}: its '{SDCPP_KEY}' text chunk is not a JSON object")
    return record


def _a1111_text(p: Mapping[str, Any]) -> str:
    """The "parameters" text in the layout web UIs write: prompt, negative prompt, then settings."""
    lines = [p["prompt"]]
    if p.get("negative_prompt"):
        lines.append(f"Negative prompt: {p['negative_prompt']}")
    settings = {
        "Steps": p["steps"],
        "Sampler": p["sampler"],
        "Schedule type": p["scheduler"],
        "CFG scale": p["cfg_scale"],
        "Seed": p["seed"],
        "Size": f"{p['width']}x{p['height']}",
        "Model": p["model"],
    }
    # Forge's names for these, written only for the families that use them.
    if p.get("guidance") is not None:
        settings["Distilled CFG Scale"] = p["guidance"]
    if p.get("flow_shift") is not None:
        settings["Shift"] = p["flow_shift"]
    hires = p.get("hires")
    if hires and hires["upscaler"] != "None":
        settings["Denoising strength"] = hires["denoising_strength"]
        if hires["width"]:
            settings["Hires resize"] = f"{hires['width']}x{hires['height']}"
        else:
            settings["Hires upscale"] = hires["scale"]
        settings["Hires steps"] = hires["steps"] or p["steps"]
        settings["Hires upscaler"] = os.path.basename(hires["model"]) if hires["model"] else hires["upscaler"]
    lines.append(", ".join(f"{k}: {v}" for k, v in settings.items()))
    return "\n".join(lines)


# PIL modes that convert to RGB (or to a one-channel mask) without losing anything but colour.
_COLOR_MODES = {"RGB", "L", "P"}
_MASK_MODES = {"L", "1"}


def input_pixels(
    image: Optional[ImageInput], argument: str, width: int, height: int, *, mask: bool = False
) -> Optional[np.ndarray]:
    """Check an input image against the output size and return its C-contiguous uint8 pixels."""
    if image is None:
        return None
    channels = 1 if mask else 3
    if isinstance(image, Image.Image):
        allowed = _MASK_MODES if mask else _COLOR_MODES
        if image.mode not in allowed:
            target = "L" if mask else "RGB"
            raise InvalidArgumentError(
                f"{argument}: PIL mode {image.mode!r} is not accepted (use one of "
                f"{', '.join(sorted(allowed))}); convert it with image.convert({target!r})"
            )
        image = np.asarray(image.convert("L" if mask else "RGB"))
    if not isinstance(image, np.ndarray):
        raise InvalidArgumentError(f"{argument}: must be a PIL image or a numpy array, not {type(image).__name__}")
    expected = (height, width) if mask else (height, width, channels)
    if image.dtype != np.uint8 or image.ndim != len(expected):
        raise InvalidArgumentError(
            f"{argument}: must be uint8 pixels of shape {'(height, width)' if mask else '(height, width, 3)'}, "
            f"not {image.dtype} of shape {image.shape}"
        )
    if image.shape != expected:
        raise InvalidArgumentError(
            f"{argument}: is {image.shape[1]}x{image.shape[0]} pixels{'' if mask else f' with {image.shape[2]} channels'}"
            f" but the output is {width}x{height}{'' if mask else ' RGB'}; resize it with "
            f"image.resize(({width}, {height}))"
        )
    return np.ascontiguousarray(image)


def reference_pixels(images: Optional[Sequence[Any]], argument: str) -> Optional[tuple[np.ndarray, ...]]:
    """Check reference images, which may have any size, and return their pixels; None for none."""
    if images is None:
        return None
    if isinstance(images, (Image.Image, np.ndarray, str, bytes, os.PathLike)) or not isinstance(images, Sequence):
        raise InvalidArgumentError(
            f"{argument}: must be a list of images (a list of one for one image), not {type(images).__name__}"
        )
    out = []
    for i, image in enumerate(images):
        name = f"{argument}[{i}]"
        if isinstance(image, (str, os.PathLike)):
            image = _open_rgb(image, name)
        if isinstance(image, Image.Image):
            width, height = image.size
        elif isinstance(image, np.ndarray) and image.ndim == 3:
            height, width = image.shape[:2]
        else:
            width = height = 0  # input_pixels says what is wrong with it
        out.append(input_pixels(image, name, width, height))
    return tuple(out) or None  # no references is the generation without them


def _open_rgb(path: Union[str, "os.PathLike[str]"], argument: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise InvalidArgumentError(f"{argument}: cannot read {os.fspath(path)!r} as an image ({e})") from None
