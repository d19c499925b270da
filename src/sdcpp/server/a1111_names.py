"""A1111's sampler and scheduler names, and the engine's samplers and schedulers they stand for.

A1111 clients send display names ("Euler a", "DPM++ 2M"), older ones with the schedule folded in
("DPM++ 2M Karras"), and scheduler names or labels ("karras", "Align Your Steps"). The engine's
own names ("euler_a", "dpm++2m") are accepted too, so every sampler of the build can be asked for.
"""

from __future__ import annotations

from typing import Optional

from ..names import samplers, schedulers
from .errors import FieldError

__all__ = ["a1111_sampler", "sampler_list", "scheduler_list", "resolve_sampler", "resolve_scheduler"]

# A1111's display name -> the engine's sampler. "DDIM" is the engine's DDIM (trailing timesteps).
_SAMPLERS = {
    "Euler a": "euler_a",
    "Euler": "euler",
    "Heun": "heun",
    "DPM2": "dpm2",
    "DPM++ 2S a": "dpm++2s_a",
    "DPM++ 2M": "dpm++2m",
    "LCM": "lcm",
    "DDIM": "ddim_trailing",
    "TCD": "tcd",
}

# A1111's scheduler name -> (its label, the engine's scheduler; None: the sampler's default).
_SCHEDULERS = {
    "automatic": ("Automatic", None),
    "uniform": ("Uniform", "discrete"),
    "karras": ("Karras", "karras"),
    "exponential": ("Exponential", "exponential"),
    "sgm_uniform": ("SGM Uniform", "sgm_uniform"),
    "kl_optimal": ("KL Optimal", "kl_optimal"),
    "align_your_steps": ("Align Your Steps", "ays"),
    "simple": ("Simple", "simple"),
}


def a1111_sampler(engine_name: str) -> str:
    """A1111's name of an engine sampler, or the engine's name where A1111 has none."""
    return next((a for a, e in _SAMPLERS.items() if e == engine_name), engine_name)


def sampler_list() -> list[dict]:
    """``/sdapi/v1/samplers``: every sampler of this build, under A1111's name where it has one."""
    return [
        {"name": a1111_sampler(s), "aliases": [s, f"k_{s}"], "options": {}}
        for s in samplers()
    ]


def scheduler_list() -> list[dict]:
    """``/sdapi/v1/schedulers``: A1111's schedulers the engine has, then the engine's others."""
    mapped = {engine for _, engine in _SCHEDULERS.values()}
    entries = [(name, label) for name, (label, engine) in _SCHEDULERS.items()
               if engine is None or engine in schedulers()]
    entries += [(s, s) for s in schedulers() if s not in mapped]
    return [
        {"name": name, "label": label, "aliases": None, "default_rho": -1, "need_inner_model": False}
        for name, label in entries
    ]


def resolve_scheduler(name: Optional[str], field: str = "scheduler") -> Optional[str]:
    """The engine's scheduler for an A1111 scheduler name or label, or an engine name."""
    if name is None or name == "":
        return None
    wanted = name.strip().lower()
    for key, (label, engine) in _SCHEDULERS.items():
        if wanted in (key, label.lower()):
            return engine
    if wanted in schedulers():
        return wanted
    known = [label for label, engine in _SCHEDULERS.values() if engine is None or engine in schedulers()]
    raise FieldError(field, f"unknown scheduler {name!r}; one of {', '.join(known + schedulers())}")


def resolve_sampler(name: Optional[str], field: str = "sampler_name") -> tuple[Optional[str], Optional[str]]:
    """The engine's (sampler, scheduler) for an A1111 sampler name; the scheduler is not None
    only for names with the schedule folded in ("DPM++ 2M Karras")."""
    if name is None or name == "":
        return None, None
    wanted = name.strip().lower()
    for display, engine in _SAMPLERS.items():
        if engine in samplers() and wanted == display.lower():
            return engine, None
    for engine in samplers():
        if wanted in (engine, f"k_{engine}"):
            return engine, None
    for key, (label, _) in _SCHEDULERS.items():
        if key != "automatic" and wanted.endswith(" " + label.lower()):
            sampler, _ = resolve_sampler(name.strip()[: -len(label) - 1], field)
            return sampler, resolve_scheduler(key, field)
    names = [a1111_sampler(s) for s in samplers()]
    raise FieldError(field, f"unknown sampler {name!r}; one of {', '.join(names)} (see /sdapi/v1/samplers)")
