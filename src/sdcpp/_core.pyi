"""
Private binding of stable-diffusion.cpp; use the `sdcpp` package instead.
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Context', 'ImageBatch', 'rng_types', 'sample_methods', 'schedulers', 'set_log_level', 'shutdown', 'system_info', 'weight_types']
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
    def decode_latent(self, latent: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
        """
        For tests: the image (3, H, W) in [0, 1] a final latent (C, h, w) decodes to, before 8-bit rounding.
        """
    def default_sample_method(self) -> str:
        ...
    def default_scheduler(self, sample_method: str) -> str:
        ...
    def diffusion_model(self, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], timestep: typing.SupportsFloat | typing.SupportsIndex, context: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
        """
        For tests: one diffusion-model output for latent x (C, H, W), a timestep and a context (n, dim).
        """
    def encode_tokens(self, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], *, clip_skip: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
        """
        For tests: the conditioning (n_tokens, hidden) of ids and weights as tokenize() gives them.
        """
    def generate(self, *, prompt: str, negative_prompt: str = '', width: typing.SupportsInt | typing.SupportsIndex = 512, height: typing.SupportsInt | typing.SupportsIndex = 512, steps: typing.SupportsInt | typing.SupportsIndex = 20, cfg_scale: typing.SupportsFloat | typing.SupportsIndex = 7.0, sample_method: str = '', scheduler: str = '', seed: typing.SupportsInt | typing.SupportsIndex, batch_count: typing.SupportsInt | typing.SupportsIndex = 1, clip_skip: typing.SupportsInt | typing.SupportsIndex = -1, progress: typing.Any = None) -> list[numpy.typing.NDArray[numpy.uint8]]:
        """
        Text to image. Returns one (height, width, 3) uint8 array per image, viewing the engine's memory.
        `progress(step, steps, seconds)` is called on this thread; an exception it raises is re-raised here.
        
        Raises:
            sdcpp.GenerationError: the engine produced no image; the message carries its log.
        """
    def initial_noise(self, *, seed: typing.SupportsInt | typing.SupportsIndex, width: typing.SupportsInt | typing.SupportsIndex, height: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        """
        The initial latent noise (1, channels, height / f, width / f) of a generation with `seed`.
        """
    def sigmas(self, *, steps: typing.SupportsInt | typing.SupportsIndex, sample_method: str = '', scheduler: str = '', width: typing.SupportsInt | typing.SupportsIndex = 512, height: typing.SupportsInt | typing.SupportsIndex = 512) -> numpy.typing.NDArray[numpy.float32]:
        """
        The steps + 1 noise levels of a generation, ending at 0 ("" = the defaults).
        """
    def tokenize(self, prompt: str) -> tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.float32]]:
        """
        (ids, weights): the token ids and emphasis weights the text encoder gets, in chunks of 77.
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
