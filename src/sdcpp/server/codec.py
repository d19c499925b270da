"""Images in and out of requests: base64 or uploaded bytes to PIL, generated images to PNG bytes.

Uploaded images are untrusted: the size in the header is checked before any pixel is decoded (a
small PNG can claim 100,000 x 100,000 pixels), and every failure of the decoder becomes a 4xx
naming the field.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Optional

from PIL import Image, ImageOps

from ..images import GeneratedImage
from .errors import FieldError

__all__ = ["decode_base64_image", "decode_image", "png_bytes", "png_base64", "to_mask", "to_rgb", "transparency"]

_DATA_URL = re.compile(r"^data:[\w/.+-]*;base64,")


def decode_base64_image(text: object, field: str, max_pixels: int) -> Image.Image:
    """A base64 image as A1111 sends it (a data: URL prefix is allowed)."""
    if not isinstance(text, str):
        raise FieldError(field, f"must be a base64 string, not {type(text).__name__}")
    try:
        data = base64.b64decode(_DATA_URL.sub("", text, count=1), validate=True)
    except (binascii.Error, ValueError) as e:
        raise FieldError(field, f"is not valid base64 ({e})") from None
    return decode_image(data, field, max_pixels)


def decode_image(data: bytes, field: str, max_pixels: int) -> Image.Image:
    """Decode an uploaded image file (PNG, JPEG, WebP, ...) into memory."""
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        width, height = image.size
        if width * height > max_pixels:
            raise FieldError(field, f"is {width}x{height} pixels, over this server's limit of {max_pixels} pixels")
        image.load()
    except FieldError:
        raise
    except Exception as e:  # PIL raises many kinds for malformed files; none may escape as a 500
        raise FieldError(field, f"is not an image PIL can read ({type(e).__name__}: {e})") from None
    return image


def png_bytes(image: Image.Image) -> bytes:
    """The PNG file sdcpp writes for ``image``, with its ``parameters`` text chunk if it is a GeneratedImage."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_base64(image: Image.Image) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")


def to_rgb(image: Image.Image, field: str, size: tuple[int, int]) -> Image.Image:
    """An init image as the Generator takes it: RGB at the output size (A1111's "just resize")."""
    try:
        rgb = image.convert("RGB")
    except Exception as e:
        raise FieldError(field, f"has pixel mode {image.mode!r}, which cannot be converted to RGB ({e})") from None
    return rgb if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS)


def transparency(image: Image.Image) -> Optional[Image.Image]:
    """The alpha channel (mode L) of an image with any pixel not fully opaque, else None."""
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        return None
    alpha = image.convert("RGBA").getchannel("A")
    return None if alpha.getextrema() == (255, 255) else alpha


def to_mask(image: Image.Image, field: str, size: tuple[int, int], *, transparent_is_edit: bool) -> Image.Image:
    """A mask as the Generator takes it: mode L at the output size, white where to repaint.

    A mask with transparency is read from its alpha channel: opaque marks the area to repaint in
    A1111 (``transparent_is_edit=False``), transparent in OpenAI's edits. Without transparency,
    white marks it.
    """
    try:
        alpha = transparency(image)
        if alpha is None:
            mask = image.convert("L")
        else:
            mask = ImageOps.invert(alpha) if transparent_is_edit else alpha
    except Exception as e:
        raise FieldError(field, f"has pixel mode {image.mode!r}, which cannot be read as a mask ({e})") from None
    return mask if mask.size == size else mask.resize(size, Image.Resampling.BILINEAR)
