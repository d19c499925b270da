"""LoRA and textual-inversion files: found by path or by name in a folder.

LoRAs come from ``loras=`` and ``<lora:name:weight>`` in prompts; embeddings from
``Generator(embeddings=...)``, each the token its file's name (without extension) makes.

The engine's library takes a list of (path, weight); the ``<lora:...>`` prompt syntax is its command
line's (examples/common in stable-diffusion.cpp), done here the same way: the tags are removed from
the prompt, a name is looked up in the LoRA folder with or without its extension, and the weights of
a LoRA named twice add up. Unlike the engine's command line, which logs a warning and goes on
without it, a LoRA that is not found is an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Optional, Union

from .errors import InvalidArgumentError
from .files import check_model_path

__all__ = ["LORA_EXTENSIONS", "find_embeddings", "resolve_loras", "split_prompt", "unknown_embedding_references"]

#: The file types the engine reads LoRAs from, in the order a bare name is tried.
LORA_EXTENSIONS = (".safetensors", ".gguf", ".pt", ".ckpt")
_TAG = re.compile(r"<lora:([^:>]+):([^>]+)>")
# ComfyUI's way to name an embedding in a prompt; the engine knows only the bare word, so the rest stays text.
_EMBEDDING_REFERENCE = re.compile(r"\bembedding:([\w.-]+)", re.IGNORECASE)


def split_prompt(prompt: str) -> tuple[str, dict[str, float]]:
    """``prompt`` without its ``<lora:name:weight>`` tags, and those names -> summed weights."""
    found: dict[str, float] = {}
    for name, weight in _TAG.findall(prompt):
        try:
            found[name] = found.get(name, 0.0) + float(weight)
        except ValueError:
            raise InvalidArgumentError(
                f"prompt: <lora:{name}:{weight}> has no number as its weight; write e.g. <lora:{name}:0.8>"
            ) from None
    return _TAG.sub("", prompt), found


def resolve_loras(loras: Iterable[tuple[str, float]], lora_dir: Optional[Path]) -> dict[str, float]:
    """(name or path, weight) pairs -> the checked absolute paths of their files, weights summed per file."""
    out: dict[str, float] = {}
    for name, weight in loras:
        path = str(_find(name, lora_dir))
        out[path] = out.get(path, 0.0) + weight
    return out


def _find(name: str, lora_dir: Optional[Path]) -> Path:
    given = Path(name).expanduser()
    candidates = [given] if given.is_absolute() or lora_dir is None else [lora_dir / given]
    candidates += [c.with_name(c.name + ext) for c in list(candidates) for ext in LORA_EXTENSIONS]
    for candidate in candidates:
        if candidate.is_file():
            return check_model_path(candidate, f"loras: {name!r}")
    if lora_dir is None:
        raise InvalidArgumentError(
            f"loras: no LoRA file {name!r}; give its path, or a folder of LoRAs with Generator(..., lora_dir=PATH)"
        )
    have = sorted(p.stem for p in lora_dir.iterdir() if p.suffix in LORA_EXTENSIONS)
    raise InvalidArgumentError(
        f"loras: no LoRA {name!r} in {os.fspath(lora_dir)}; it has: {', '.join(have) or 'none'}"
    )


#: The file types the engine's command line takes embeddings from, when given a folder.
EMBEDDING_EXTENSIONS = (".safetensors", ".gguf", ".pt")


def find_embeddings(embeddings: Union[str, os.PathLike[str], Iterable[Union[str, os.PathLike[str]]]]) -> dict[str, str]:
    """A folder of embedding files, or a list of files -> token (the file's stem) -> checked path."""
    if isinstance(embeddings, (str, os.PathLike)):
        folder = Path(embeddings).expanduser()
        if not folder.is_dir():
            raise InvalidArgumentError(f"embeddings: {os.fspath(folder)!r} is not a folder; give a folder or a list of files")
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in EMBEDDING_EXTENSIONS)
    else:
        files = [Path(f) for f in embeddings]
    out: dict[str, str] = {}
    for f in files:
        token = f.stem.lower()  # the engine matches tokens in lower case
        if token in out:
            raise InvalidArgumentError(f"embeddings: two files make the token {token!r}: {out[token]} and {f}")
        out[token] = str(check_model_path(f, f"embeddings: {f.name!r}"))
    return out


def unknown_embedding_references(prompt: str, embeddings: Iterable[str]) -> list[str]:
    """The ``embedding:NAME`` words of ``prompt`` whose NAME (with or without a file extension) is none of
    ``embeddings``' tokens: the engine leaves them as text, which is worth a log line."""
    known = set(embeddings)
    return [
        match.group(0) for match in _EMBEDDING_REFERENCE.finditer(prompt)
        if match.group(1).lower() not in known and Path(match.group(1)).stem.lower() not in known
    ]
