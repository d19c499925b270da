"""Samplers and schedulers, named exactly as the engine names them.

The members are read from the engine's own tables when sdcpp is imported, so a newer engine brings
its new samplers along. Each member is a ``str``: ``Sampler.EULER_A == "euler_a"``.
"""

from __future__ import annotations

import enum

from . import _core

__all__ = ["Sampler", "Scheduler", "samplers", "schedulers"]


def _member_name(engine_name: str) -> str:
    return engine_name.upper().replace("++", "PP")


def _str_enum(name: str, values: list[str], doc: str) -> type[enum.Enum]:
    cls = enum.Enum(name, [(_member_name(v), v) for v in values], type=str, module=__name__)
    cls.__doc__ = doc
    cls.__str__ = str.__str__  # type: ignore[method-assign]  # "euler", not "Sampler.EULER"
    return cls


Sampler = _str_enum("Sampler", _core.sample_methods(), "A sampling method of the engine.")
Scheduler = _str_enum("Scheduler", _core.schedulers(), "A noise schedule of the engine.")


def samplers() -> list[str]:
    """Names of the samplers this build supports."""
    return [s.value for s in Sampler]


def schedulers() -> list[str]:
    """Names of the schedulers this build supports."""
    return [s.value for s in Scheduler]
