"""A generated video: its frames as PIL images, the settings that made it, and saving as an animation."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Any, Iterator, Union, overload

from .errors import InvalidArgumentError
from .images import GeneratedImage
from .params import GenerationParams, VideoParams

__all__ = ["Video"]


@dataclass(frozen=True)
class Video:
    """The frames of one :meth:`Generator.generate_video` call, in order.

    A sequence of :class:`GeneratedImage` (``video[0]``, ``len(video)``, ``for frame in video``), each
    carrying ``params``: the :class:`GenerationParams` used (the model's defaults resolved, the seed
    drawn); ``video`` holds the video's own settings.
    """

    frames: tuple[GeneratedImage, ...]
    params: GenerationParams
    video: VideoParams

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[GeneratedImage]:
        return iter(self.frames)

    @overload
    def __getitem__(self, index: int) -> GeneratedImage: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[GeneratedImage, ...]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[GeneratedImage, tuple[GeneratedImage, ...]]:
        return self.frames[index]

    def save(self, fp: Union[str, "os.PathLike[str]", IO[bytes]], *, fps: float = 16, format: str | None = None,
             **options: Any) -> None:
        """Save as an animation that loops: animated WebP (lossless unless ``quality=`` is given) or GIF,
        by the file name's extension or ``format``. Wan 2.1 is made for 16 frames per second, Wan 2.2's
        TI2V 5B for 24. ``options`` go to Pillow's writer."""
        if not fps > 0:
            raise InvalidArgumentError(f"fps: must be a number > 0, not {fps!r}")
        name = os.fspath(fp) if isinstance(fp, (str, os.PathLike)) else ""
        kind = (format or os.path.splitext(name)[1].lstrip(".") or "webp").upper()
        if kind not in ("WEBP", "GIF"):
            raise InvalidArgumentError(f"format: a video is saved as WebP or GIF, not {kind!r}")
        defaults: dict[str, Any] = {"lossless": "quality" not in options} if kind == "WEBP" else {}
        first, *rest = self.frames
        # Pillow writes the base image's info (the PNG text chunks) into neither format: nothing to strip.
        first.save(fp, format=kind, save_all=True, append_images=rest, duration=round(1000 / fps), loop=0,
                   **{**defaults, **options})
