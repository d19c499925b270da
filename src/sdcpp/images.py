"""Generated images, which carry their generation parameters into the PNG files they are saved to."""

from __future__ import annotations

import json
from typing import IO, Any, Mapping

import numpy as np
from PIL import Image, PngImagePlugin

__all__ = ["GeneratedImage", "PARAMETERS_KEY", "SDCPP_KEY"]

# "parameters" is the text chunk that Stable Diffusion web UIs and image viewers read;
# "sdcpp" holds the same facts as JSON, for programs.
PARAMETERS_KEY = "parameters"
SDCPP_KEY = "sdcpp"


class GeneratedImage(Image.Image):
    """A PIL image that remembers how it was made.

    ``image.parameters`` is a dict of the generation settings (prompt, seed, sampler, ...). Saving
    as PNG writes them as text chunks (``parameters`` and ``sdcpp``) unless ``pnginfo=`` is
    given; :meth:`read_parameters` reads them back from a saved file.
    """

    parameters: dict[str, Any]

    @classmethod
    def from_array(cls, pixels: np.ndarray, parameters: Mapping[str, Any]) -> GeneratedImage:
        base = Image.fromarray(pixels)
        image = cls()
        image.__dict__.update(base.__dict__)
        image.parameters = dict(parameters)
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
    def read_parameters(path: str | Any) -> dict[str, Any]:
        """The generation parameters stored in a PNG saved by sdcpp."""
        with Image.open(path) as im:
            return json.loads(im.info[SDCPP_KEY])


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
    lines.append(", ".join(f"{k}: {v}" for k, v in settings.items()))
    return "\n".join(lines)
