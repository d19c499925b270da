"""Exceptions raised by sdcpp.

Every failure of the engine is an :class:`SdcppError`. Bad arguments are also ``ValueError`` and
missing files also ``FileNotFoundError``, so code that catches the built-in kinds keeps working.
"""

from __future__ import annotations

__all__ = [
    "SdcppError",
    "InvalidArgumentError",
    "ModelLoadError",
    "ModelNotFoundError",
    "DeviceError",
    "GenerationError",
    "Cancelled",
    "UnsupportedOperation",
]


class SdcppError(Exception):
    """Base class of every sdcpp error."""


class InvalidArgumentError(SdcppError, ValueError):
    """An argument is out of range or of the wrong kind; the message names it and a valid value."""


class ModelLoadError(SdcppError):
    """The model files are missing parts, malformed, or were refused by the engine."""


class ModelNotFoundError(ModelLoadError, FileNotFoundError):
    """A model path does not exist."""


class DeviceError(SdcppError, ValueError):
    """The requested device is not in this build or not on this machine."""


class GenerationError(SdcppError):
    """The engine failed while generating; the message carries its log."""


class Cancelled(SdcppError):
    """The generation was stopped by :meth:`Generator.cancel` from another thread."""


class UnsupportedOperation(GenerationError):
    """A device lacks a kernel the model needs (once: "unsupported op 'TIMESTEP_EMBEDDING'" on Metal).

    ``op`` is ggml's name of the operation, ``device`` the ggml device that refused it.
    """

    def __init__(self, op: str, device: str) -> None:
        self.op = op
        self.device = device
        super().__init__(
            f"the {device} device has no kernel for ggml op '{op}', which this model needs. "
            "Run on the CPU instead: Generator(..., device='cpu'), or check the device with `sdcpp doctor`."
        )
