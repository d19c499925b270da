"""PhotoMaker's checks: its model file, v2's ID embeddings and the prompt's trigger word.

PhotoMaker (``Generator(photo_maker=PATH)``, ``generate(id_images=[...])``) encodes pictures of one
person with a CLIP vision tower and merges the result into the text embedding of the class word
that precedes the trigger word ``img`` ("a photo of a man img"). The engine aborts the process, or
reads out of bounds, on several inputs these functions refuse first: a prompt without the trigger
word after a class word, a malformed ID-embedding file, a model family whose text embedding is not
SDXL's 2048 values wide. See docs/photomaker.md.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

from ._headers import read_header
from .errors import InvalidArgumentError, ModelLoadError

__all__ = ["TRIGGER_WORD", "check_id_embedding", "check_trigger", "model_version"]

#: The word after the class word that the ID pictures stand for (the engine's, fixed).
TRIGGER_WORD = "img"
_FACE_WIDTH = 512  # InsightFace's embedding of one face, what v2's ID-embedding file holds per picture

# The CLIP tokenizer lower-cases and splits the text into runs of letters (conditioner.hpp splits
# the prompt at emphasis brackets first): "img" is the trigger where it is a whole run of letters.
_TRIGGER = re.compile(r"(?<![^\W\d_])img(?![^\W\d_])", re.IGNORECASE)


def model_version(path: str) -> int:
    """PhotoMaker's version (1 or 2) from the file's tensors, checked against the engine's reading.

    Raises:
        sdcpp.ModelLoadError: the file is not a PhotoMaker model, or its name would make the engine
            read it as the other version (the engine takes a file for v2 when its path contains "v2").
    """
    names = {t.name.removeprefix("pmid.") for t in read_header(Path(path), "photo_maker").tensors}
    if "fuse_module.mlp1.fc1.weight" not in names:
        raise ModelLoadError(
            f"photo_maker: '{path}' is not a PhotoMaker model the engine reads (no fuse_module tensors); "
            "use the safetensors conversion of photomaker-v1 or -v2, not the original .bin"
        )
    version = 2 if any(n.startswith("qformer_perceiver.") for n in names) else 1
    if (version == 2) != ("v2" in path):
        raise ModelLoadError(
            f"photo_maker: '{path}' holds PhotoMaker v{version}, but the engine picks the version by the "
            f"file's path, which {'lacks' if version == 2 else 'contains'} 'v2'; rename the file "
            f"(e.g. photomaker-v{version}.safetensors)"
        )
    return version


def check_trigger(prompt: str) -> None:
    """Refuse a prompt the engine cannot stack ID pictures into: exactly one trigger word, after a word.

    The engine expands the token before the trigger (the class word) into one token per picture; with
    no trigger it reads past an empty list, with the trigger first in its part of the prompt it reads
    the token before the first.
    """
    found = list(_TRIGGER.finditer(prompt))
    example = "e.g. 'a photo of a man img, in a garden'"
    if len(found) != 1:
        raise InvalidArgumentError(
            f"prompt: with id_images, the prompt must hold the trigger word '{TRIGGER_WORD}' once, right after "
            f"the class word of the person ({example}); it holds it {len(found)} times"
        )
    before = prompt[: found[0].start()].rstrip()
    if not before or not before[-1].isalnum() or re.search(r"(?<!\w)BREAK$", before):
        raise InvalidArgumentError(
            f"prompt: the trigger word '{TRIGGER_WORD}' must follow its class word in the same part of the "
            f"prompt ({example}), not start it"
        )


def check_id_embedding(path: str, pictures: int) -> None:
    """Check PhotoMaker v2's ID-embedding file before the engine reads it (which it does unchecked).

    The file (``id_embeds.bin`` of PhotoMaker's ``face_detect.py``) holds int32 dimension count, name
    length and ggml type (0: float32), the dimensions innermost first, the name, then the values:
    512 per picture, as many pictures as ``id_images``.
    """
    if not os.path.isfile(path):
        raise InvalidArgumentError(f"id_embedding: no such file: '{path}'")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12:
            raise InvalidArgumentError(f"id_embedding: '{path}' is {size} bytes, too short for an ID-embedding file")
        n_dims, name_length, ggml_type = struct.unpack("<3i", head)
        if not 2 <= n_dims <= 4 or ggml_type != 0 or not 0 <= name_length <= 1024:
            raise InvalidArgumentError(
                f"id_embedding: '{path}' is not a float32 ID-embedding file of 2 to 4 dimensions "
                f"(dimensions {n_dims}, type {ggml_type}); make it with PhotoMaker's face_detect.py"
            )
        dims = struct.unpack(f"<{n_dims}i", f.read(4 * n_dims).ljust(4 * n_dims, b"\0"))
    expected = 12 + 4 * n_dims + name_length + 4 * int(np.prod(dims, dtype=np.int64))
    if min(dims) < 1 or size != expected:
        raise InvalidArgumentError(f"id_embedding: '{path}' is damaged: dimensions {dims}, {size} bytes")
    if dims[0] != _FACE_WIDTH or any(d != 1 for d in dims[2:]):
        raise InvalidArgumentError(
            f"id_embedding: '{path}' holds {dims[0]} values per picture; PhotoMaker v2 takes InsightFace's "
            f"{_FACE_WIDTH}"
        )
    if dims[1] != pictures:
        raise InvalidArgumentError(
            f"id_embedding: '{path}' holds the embeddings of {dims[1]} pictures, but id_images has {pictures}; "
            "make it from the same pictures, in the same order"
        )
