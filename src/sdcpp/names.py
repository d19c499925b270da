"""Samplers and schedulers, named exactly as the engine names them.

The members are written out here so that IDEs and type checkers see them (``Sampler.EULER_A``);
tests/test_params.py checks that they equal the engine's own name tables. Each member is a ``str``:
``Sampler.EULER_A == "euler_a"``.
"""

from __future__ import annotations

import enum

__all__ = ["Sampler", "Scheduler", "samplers", "schedulers"]


class _EngineName(str, enum.Enum):
    def __str__(self) -> str:  # "euler", not "Sampler.EULER"
        return str(self.value)


class Sampler(_EngineName):
    """A sampling method of the engine."""

    EULER = "euler"
    EULER_A = "euler_a"
    HEUN = "heun"
    DPM2 = "dpm2"
    DPMPP2S_A = "dpm++2s_a"
    DPMPP2M = "dpm++2m"
    DPMPP2MV2 = "dpm++2mv2"
    IPNDM = "ipndm"
    IPNDM_V = "ipndm_v"
    LCM = "lcm"
    DDIM_TRAILING = "ddim_trailing"
    TCD = "tcd"
    RES_MULTISTEP = "res_multistep"
    RES_2S = "res_2s"
    ER_SDE = "er_sde"


class Scheduler(_EngineName):
    """A noise schedule of the engine."""

    DISCRETE = "discrete"
    KARRAS = "karras"
    EXPONENTIAL = "exponential"
    AYS = "ays"
    GITS = "gits"
    SGM_UNIFORM = "sgm_uniform"
    SIMPLE = "simple"
    SMOOTHSTEP = "smoothstep"
    KL_OPTIMAL = "kl_optimal"
    LCM = "lcm"
    BONG_TANGENT = "bong_tangent"


def samplers() -> list[str]:
    """Names of the samplers this build supports."""
    return [s.value for s in Sampler]


def schedulers() -> list[str]:
    """Names of the schedulers this build supports."""
    return [s.value for s in Scheduler]
