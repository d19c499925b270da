"""
Private binding of stable-diffusion.cpp; use the `sdcpp` package instead.
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Context', 'ImageBatch', 'probe_device', 'rng_types', 'sample_methods', 'schedulers', 'set_log_level', 'shutdown', 'system_info', 'weight_types']
class Context:
    """
    An engine context holding one loaded model.
    """
    def __init__(self, *, model: str = '', diffusion_model: str = '', vae: str = '', clip_l: str = '', clip_g: str = '', t5xxl: str = '', taesd: str = '', weight_type: str = '', device: str = '', rng: str = '', threads: typing.SupportsInt | typing.SupportsIndex = 0, flash_attn: bool = False, keep_clip_on_cpu: bool = False, keep_vae_on_cpu: bool = False, vae_decode_only: bool = False, mmap: bool = False) -> None:
        """
        Loads a model. Paths that are empty are not used; `device` is a ggml device name ("" = the
        engine's default); `threads` <= 0 means one per physical core.
        
        Raises:
            sdcpp.ModelLoadError: the engine refused the files; the message carries its log.
        """
    def close(self) -> None:
        """
        Frees the model; waits for a generation in progress to finish.
        """
    def default_sample_method(self) -> str:
        ...
    def default_scheduler(self, sample_method: str) -> str:
        ...
    def generate(self, *, prompt: str, negative_prompt: str = '', width: typing.SupportsInt | typing.SupportsIndex = 512, height: typing.SupportsInt | typing.SupportsIndex = 512, steps: typing.SupportsInt | typing.SupportsIndex = 20, cfg_scale: typing.SupportsFloat | typing.SupportsIndex = 7.0, sample_method: str = '', scheduler: str = '', seed: typing.SupportsInt | typing.SupportsIndex, batch_count: typing.SupportsInt | typing.SupportsIndex = 1, clip_skip: typing.SupportsInt | typing.SupportsIndex = -1, progress: typing.Any = None) -> list[numpy.typing.NDArray[numpy.uint8]]:
        """
        Text to image. Returns one (height, width, 3) uint8 array per image, viewing the engine's memory.
        `progress(step, steps, seconds)` is called on this thread; an exception it raises is re-raised here.
        
        Raises:
            sdcpp.GenerationError: the engine produced no image; the message carries its log.
        """
    @property
    def closed(self) -> bool:
        ...
    @property
    def device(self) -> str:
        ...
    @property
    def model_version(self) -> str:
        ...
    @property
    def spatial_multiple(self) -> int:
        ...
    @property
    def weight_types(self) -> str:
        ...
class ImageBatch:
    """
    Engine-owned pixels of one generation; the base of the arrays it returns.
    """
    def __len__(self) -> int:
        ...
def probe_device(name: str) -> str | None:
    """
    Checks that a ggml device can run the engine: it initialises, supports the operations of an SD
    UNet, and computes a small graph of them as the CPU does (well under a second).
    
    Arguments:
        name: a ggml device name, as in ``system_info()["devices"]`` ("MTL0", "CUDA0", "CPU").
    
    Returns:
        None when the device works, else why it cannot be used (for a warning).
    """
def rng_types() -> list[str]:
    """
    Random number generator names.
    """
def sample_methods() -> list[str]:
    """
    Sampler names, in the engine's order.
    """
def schedulers() -> list[str]:
    """
    Scheduler names, in the engine's order.
    """
def set_log_level(python_level: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Lowest `logging` level forwarded from the engine to the `sdcpp` logger.
    """
def shutdown() -> None:
    """
    Stops forwarding engine callbacks to Python (called at interpreter exit).
    """
def system_info() -> dict[str, typing.Any]:
    """
    Versions, compiled backends, devices and CPU features of this build, as plain data.
    """
def weight_types() -> list[str]:
    """
    Weight types (ggml type names) the engine can convert weights to at load time.
    """
__version__: str = '0.1.0'
