"""The Upscaler: an ESRGAN model, a picture in, a picture ``factor`` times larger out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from . import _core
from ._logs import logger, sync_level
from .devices import devices, resolve_device, warn_skipped
from .errors import DeviceError, InvalidArgumentError, ModelLoadError
from .files import check_model_path
from .images import ImageInput, input_pixels
from .params import HiresFix, check_field, is_int

__all__ = ["Upscaler", "check_upscaler_path"]

PathLike = Union[str, "os.PathLike[str]"]

# The engine writes the result through int arithmetic (width * height * channels, tensor_to_sd_image).
_MAX_OUTPUT_BYTES = 2**31 - 1


def check_upscaler_path(path: PathLike, argument: str) -> Path:
    """An ESRGAN model file, checked before the engine opens it."""
    if Path(path).expanduser().is_dir():
        raise ModelLoadError(f"{argument}: '{path}' is a folder; give the ESRGAN model's file (.safetensors, .pth)")
    return check_model_path(path, argument)


class Upscaler:
    """An ESRGAN upscaler loaded by stable-diffusion.cpp.

    The engine reads RRDBNet models: Real-ESRGAN x4plus (and its anime 6-block variant) and ESRGAN
    models in the original ``model.N`` layout at 1x, 2x or 4x; the factor and depth come from the
    file. Real-ESRGAN x2plus (whose input is pixel-unshuffled) and compact (SRVGG) models are not
    supported by the engine and are refused when loading.

    Args:
        model: the model file (``.safetensors``, ``.pth``, ``.gguf``).
        device: as for :class:`Generator`: ``"auto"``, ``"cpu"``, ``"cuda:1"``, ...
        threads: CPU threads; ``None`` is one per physical core the process may run on (its CPU affinity).
        tile_size: the model runs on overlapping tiles of this many pixels of the input (16 to 1024):
            larger tiles need more memory, and the seams between tiles are blended.
        name: the engine's log lines for this Upscaler go to the logger ``sdcpp.<name>`` (default:
            the file's name).

    Raises:
        sdcpp.ModelNotFoundError: the file does not exist.
        sdcpp.ModelLoadError: the file is malformed or not a model the engine can run.
        sdcpp.DeviceError: the device is not in this build, not on this machine, or failed to start.
    """

    def __init__(
        self,
        model: PathLike,
        *,
        device: str = "auto",
        threads: Optional[int] = None,
        tile_size: int = 128,
        name: Optional[str] = None,
    ) -> None:
        path = str(check_upscaler_path(model, "model"))
        if threads is not None and (not is_int(threads) or threads < 1):
            raise InvalidArgumentError(f"threads: must be a positive integer or None, not {threads!r}")
        check_field("tile_size", tile_size, HiresFix)
        self.model = path
        #: Where the engine's log lines for this Upscaler go: a child of the ``sdcpp`` logger.
        self.logger = logger.getChild((name or os.path.basename(path)).replace(".", "_"))
        ggml_device = resolve_device(device)

        def load(on: str) -> _core.Upscaler:
            try:
                return _core.Upscaler(path, device=on, threads=threads or 0, tile_size=tile_size, logger=self.logger)
            except ModelLoadError as e:
                if "'conv_first.weight' has wrong shape" in str(e) and ", 12, " in str(e):
                    raise ModelLoadError(
                        f"{e}\nmodel: this looks like Real-ESRGAN x2plus, whose input is pixel-unshuffled into 12 "
                        "channels; the engine does not run that layout. Use an x4plus model and resize the result."
                    ) from None
                raise

        sync_level()
        try:
            self._ctx = load(ggml_device)
        except DeviceError as e:
            if device != "auto" or ggml_device == "CPU":
                raise
            warn_skipped(f"device {ggml_device!r}", str(e).splitlines()[0], "the CPU", stacklevel=2)
            ggml_device = "CPU"
            self._ctx = load(ggml_device)
        #: The ggml device the model runs on, e.g. ``"CPU"`` or ``"CUDA0"``.
        self.device: str = ggml_device
        self.logger.info("loaded %s", self)

    @property
    def factor(self) -> int:
        """How many times wider and taller the model makes an image (read from the file)."""
        return self._ctx.factor

    def upscale(self, image: ImageInput, factor: Optional[int] = None) -> Image.Image:
        """The image ``factor`` times wider and taller, as an RGB PIL image.

        Args:
            image: a PIL image in mode RGB, L or P, or a uint8 array of shape (height, width, 3).
            factor: the model's own factor, or ``None`` for it: the network upscales by the factor it
                was trained for, so another one is refused (resize the result for other sizes).

        Raises:
            sdcpp.InvalidArgumentError: the image is of the wrong kind, empty, or its result would not
                fit in memory; or the factor is not the model's.
            sdcpp.GenerationError: the engine failed; the message carries its log.
            ValueError: the Upscaler is closed.
        """
        if factor is not None and (not is_int(factor) or factor != self.factor):
            raise InvalidArgumentError(
                f"factor: this model upscales by {self.factor} only, not {factor!r}; resize the result "
                "(image.resize(...)) for other sizes"
            )
        width, height = _size(image)
        self._check_output(width, height)
        pixels = input_pixels(image, "image", width, height)
        sync_level()
        return Image.fromarray(self._ctx.upscale(pixels))

    def _check_output(self, width: int, height: int) -> None:
        if width < 1 or height < 1:
            raise InvalidArgumentError(f"image: is empty ({width}x{height} pixels)")
        out_w, out_h = width * self.factor, height * self.factor
        out_pixels = out_w * out_h
        # float32 input and output tensors, and the uint8 result (the tiles' buffers are small beside them).
        need = width * height * 3 * 4 + out_pixels * 3 * (4 + 1)
        free = next((d["memory_free"] for d in devices() if d["name"] == "CPU"), 0)
        if out_pixels * 3 > _MAX_OUTPUT_BYTES or (free and need > free):
            raise InvalidArgumentError(
                f"image: upscaling {width}x{height} to {out_w}x{out_h} needs about {need / 2**30:.1f} GiB"
                + (f", and {free / 2**30:.1f} GiB is free" if free and need > free else
                   "; the engine handles results of at most 2**31 bytes")
                + ": upscale a smaller image, or the image in parts"
            )

    @property
    def closed(self) -> bool:
        return self._ctx.closed

    def close(self) -> None:
        """Free the model's memory now (waits for an upscale running in another thread)."""
        self._ctx.close()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " (closed)" if self.closed else f", factor={self.factor}, device={self.device!r}"
        return f"Upscaler({self.model!r}{state})"


def _size(image: object) -> tuple[int, int]:
    """(width, height) of an input image, read before its pixels are converted."""
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray) and image.ndim == 3:
        return image.shape[1], image.shape[0]
    kind = f"an array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
    raise InvalidArgumentError(f"image: must be a PIL image or a uint8 array of shape (height, width, 3), not {kind}")
