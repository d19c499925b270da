"""
Private binding of stable-diffusion.cpp; use the `sdcpp` package instead.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
from . import _testing
__all__: list[str] = ['Context', 'GenerationParams', 'HiresFix', 'ImageBatch', 'LoadOptions', 'SkipLayerGuidance', 'Upscaler', 'VaeTiling', 'VideoParams', 'cache_modes', 'component_names', 'convert', 'ggml_types', 'op_arange', 'op_attention', 'op_conv_2d', 'op_group_norm', 'op_layer_norm', 'op_linear', 'op_mul_mat', 'op_timestep_embedding', 'prediction_names', 'preview_modes', 'probe_device', 'rng_types', 'set_log_level', 'shutdown', 'start_op_profile', 'stop_op_profile', 'system_info', 'weight_types']
class Context:
    """
    An engine context holding one loaded model.
    """
    def __init__(self, options: LoadOptions, *, logger: typing.Any = None) -> None:
        """
        Loads a model as `options` (a LoadOptions) says: its `paths`, component name (component_names()) ->
        file, empty paths not used; `prediction` forces the denoiser's prediction (a prediction_names() name;
        "" = the engine decides); `embeddings` are (token, file) pairs; `device` is a ggml device name ("" =
        the engine's default); `threads` <= 0 means one per physical core; `batched_cfg`
        evaluates classifier-free guidance's two predictions as one batch of two where the model allows it;
        `circular_x` / `circular_y` pad convolutions circularly along x / y, so images tile seamlessly.
        Engine log lines of this context's calls go to `logger` (default: the "sdcpp" logger).
        
        Raises:
            sdcpp.ModelLoadError: the engine refused the files; the message carries its log.
        """
    def begin_generation(self) -> int:
        """
        A ticket for generate(): cancel() stops the generations whose ticket was taken before it.
        """
    def cancel(self) -> None:
        """
        Stops the generation running and those that have a ticket (begin_generation) but wait for it.
        """
    def close(self) -> None:
        """
        Frees the model; waits for a generation in progress to finish.
        """
    def default_sample_method(self) -> str:
        ...
    def default_scheduler(self, sample_method: str) -> str:
        ...
    def generate(self, params: GenerationParams, *, init_image: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None = None, mask_image: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None = None, control_image: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None = None, ref_images: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.uint8]] = [], id_images: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.uint8]] = [], progress: typing.Any = None, preview: typing.Any = None, ticket: typing.SupportsInt | typing.SupportsIndex = 0) -> list[numpy.typing.NDArray[numpy.uint8]]:
        """
        Text (and image) to image. Images are (height, width, 3) uint8 arrays, the mask (height, width),
        all of the output size; `ref_images` are (height, width, 3) arrays of any size, encoded as in-context
        references; `id_images` (PhotoMaker's pictures of one person, any size) with params.id_embedding and
        params.style_strength fill the engine's sd_pm_params_t; sdcpp.Generator checks them. Returns one (height, width, 3) uint8 array per
        image, viewing the engine's memory.
        `progress(step, steps, seconds)` is called on this thread; an exception it raises is re-raised here.
        `preview(step, pixels)` likewise, with a (height, width, 3) uint8 copy of the preview image, at every
        params.preview_every-th step, made as params.preview_mode says.
        `ticket` is begin_generation()'s, taken when the caller was entered (0: take one now).
        
        Raises:
            sdcpp.Cancelled: cancel() was called after this generation's ticket was taken.
            RuntimeError: called from a progress callback or log handler of a call on this context.
            KeyboardInterrupt: Ctrl-C, checked at every sampling step.
            sdcpp.GenerationError: the engine produced no image; the message carries its log.
        """
    def generate_video(self, params: GenerationParams, video: VideoParams, *, init_image: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None = None, end_image: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8] | None = None, progress: typing.Any = None, ticket: typing.SupportsInt | typing.SupportsIndex = 0) -> list[numpy.typing.NDArray[numpy.uint8]]:
        """
        Text (and first/last frame) to video, for the models supports_video says. Takes generate()'s settings
        (batch, hires, control and mask are not used) and the video's own; init_image and end_image are
        (height, width, 3) uint8 arrays of the output size. Returns one (height, width, 3) uint8 array per
        frame, viewing the engine's memory; progress and ticket as for generate().
        
        Raises:
            sdcpp.Cancelled: cancel() was called after this generation's ticket was taken.
            RuntimeError: called from a progress callback or log handler of a call on this context.
            sdcpp.GenerationError: the engine produced no video; the message carries its log.
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
    def default_flow_shift(self) -> float:
        ...
    @property
    def device(self) -> str:
        ...
    @property
    def model_version(self) -> str:
        ...
    @property
    def prediction(self) -> str:
        ...
    @property
    def spatial_multiple(self) -> int:
        ...
    @property
    def supports_video(self) -> bool:
        """
        Whether the model makes videos (Wan, SVD) rather than images.
        """
    @property
    def weight_types(self) -> str:
        ...
class GenerationParams:
    """
    The settings of one generation; filled by name from sdcpp.GenerationParams.
    """
    auto_resize_ref_image: bool
    cache_mode: str
    hires: sdcpp._core.HiresFix | None
    id_embedding: str
    increase_ref_index: bool
    negative_prompt: str
    preview_mode: str
    prompt: str
    sampler: str
    scheduler: str
    slg: sdcpp._core.SkipLayerGuidance | None
    vae_tiling: sdcpp._core.VaeTiling | None
    def __init__(self) -> None:
        ...
    @property
    def batch(self) -> int:
        ...
    @batch.setter
    def batch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def cache_threshold(self) -> float:
        ...
    @cache_threshold.setter
    def cache_threshold(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def cfg_scale(self) -> float:
        ...
    @cfg_scale.setter
    def cfg_scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def clip_skip(self) -> int:
        ...
    @clip_skip.setter
    def clip_skip(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def control_strength(self) -> float:
        ...
    @control_strength.setter
    def control_strength(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def custom_sigmas(self) -> list[float]:
        ...
    @custom_sigmas.setter
    def custom_sigmas(self, arg0: collections.abc.Sequence[typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
    @property
    def eta(self) -> float:
        ...
    @eta.setter
    def eta(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def flow_shift(self) -> float:
        ...
    @flow_shift.setter
    def flow_shift(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def guidance(self) -> float:
        ...
    @guidance.setter
    def guidance(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def height(self) -> int:
        ...
    @height.setter
    def height(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def img_cfg_scale(self) -> float:
        ...
    @img_cfg_scale.setter
    def img_cfg_scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def loras(self) -> dict[str, float]:
        ...
    @loras.setter
    def loras(self, arg0: collections.abc.Mapping[str, typing.SupportsFloat | typing.SupportsIndex]) -> None:
        ...
    @property
    def preview_every(self) -> int:
        ...
    @preview_every.setter
    def preview_every(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def seed(self) -> int:
        ...
    @seed.setter
    def seed(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def steps(self) -> int:
        ...
    @steps.setter
    def steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def strength(self) -> float:
        ...
    @strength.setter
    def strength(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def style_strength(self) -> float:
        ...
    @style_strength.setter
    def style_strength(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def width(self) -> int:
        ...
    @width.setter
    def width(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class HiresFix:
    """
    The hires fix's settings; filled by name from sdcpp.HiresFix.
    """
    fields: typing.ClassVar[list] = ['scale', 'width', 'height', 'steps', 'denoising_strength', 'upscaler', 'model', 'tile_size']
    model: str
    upscaler: str
    def __init__(self) -> None:
        ...
    @property
    def denoising_strength(self) -> float:
        ...
    @denoising_strength.setter
    def denoising_strength(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def height(self) -> int:
        ...
    @height.setter
    def height(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def scale(self) -> float:
        ...
    @scale.setter
    def scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def steps(self) -> int:
        ...
    @steps.setter
    def steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def tile_size(self) -> int:
        ...
    @tile_size.setter
    def tile_size(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def width(self) -> int:
        ...
    @width.setter
    def width(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class ImageBatch:
    """
    Engine-owned pixels of one generation; the base of the arrays it returns.
    """
    def __len__(self) -> int:
        ...
class LoadOptions:
    """
    How a Context loads its model (component paths, device, ...); filled by name by sdcpp.Generator.
    """
    fields: typing.ClassVar[list] = ['paths', 'weight_type', 'device', 'rng', 'lora_apply_mode', 'prediction', 'embeddings', 'threads', 'flash_attn', 'keep_clip_on_cpu', 'keep_vae_on_cpu', 'vae_decode_only', 'mmap', 'batched_cfg', 'circular_x', 'circular_y']
    batched_cfg: bool
    circular_x: bool
    circular_y: bool
    device: str
    flash_attn: bool
    keep_clip_on_cpu: bool
    keep_vae_on_cpu: bool
    lora_apply_mode: str
    mmap: bool
    prediction: str
    rng: str
    vae_decode_only: bool
    weight_type: str
    def __init__(self) -> None:
        ...
    @property
    def embeddings(self) -> list[tuple[str, str]]:
        ...
    @embeddings.setter
    def embeddings(self, arg0: collections.abc.Sequence[tuple[str, str]]) -> None:
        ...
    @property
    def paths(self) -> dict[str, str]:
        ...
    @paths.setter
    def paths(self, arg0: collections.abc.Mapping[str, str]) -> None:
        ...
    @property
    def threads(self) -> int:
        ...
    @threads.setter
    def threads(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class SkipLayerGuidance:
    """
    The engine's skip-layer guidance; see sdcpp.SkipLayerGuidance.
    """
    fields: typing.ClassVar[list] = ['layers', 'layer_start', 'layer_end', 'scale']
    def __init__(self) -> None:
        ...
    @property
    def layer_end(self) -> float:
        ...
    @layer_end.setter
    def layer_end(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def layer_start(self) -> float:
        ...
    @layer_start.setter
    def layer_start(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def layers(self) -> list[int]:
        ...
    @layers.setter
    def layers(self, arg0: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        ...
    @property
    def scale(self) -> float:
        ...
    @scale.setter
    def scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
class Upscaler:
    """
    An ESRGAN upscaler model loaded by the engine.
    """
    def __init__(self, path: str, *, device: str = '', threads: typing.SupportsInt | typing.SupportsIndex = 0, tile_size: typing.SupportsInt | typing.SupportsIndex = 128, logger: typing.Any = None) -> None:
        """
        Loads an ESRGAN model. `device` is a ggml device name ("" = the engine's default); `threads` <= 0
        means one per physical core; the model runs on tiles of `tile_size` pixels; engine log lines of
        this upscaler's calls go to `logger` (default: the "sdcpp" logger).
        
        Raises:
            sdcpp.ModelLoadError: the engine refused the file; the message carries its log.
            sdcpp.DeviceError: the named device failed to start.
        """
    def close(self) -> None:
        """
        Frees the model; waits for an upscale in progress to finish.
        """
    def upscale(self, image: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8]) -> numpy.typing.NDArray[numpy.uint8]:
        """
        Upscales (height, width, 3) uint8 pixels by `factor`; returns (height * factor, width * factor, 3)
        uint8 pixels viewing the engine's memory. sdcpp.Upscaler checks the input.
        
        Raises:
            RuntimeError: called from a log handler of a call on this upscaler.
            sdcpp.GenerationError: the engine failed; the message carries its log.
        """
    @property
    def closed(self) -> bool:
        ...
    @property
    def factor(self) -> int:
        """
        How many times larger the model makes an image.
        """
class VaeTiling:
    """
    The engine's VAE tiling settings; see sdcpp.VaeTiling.
    """
    fields: typing.ClassVar[list] = ['tile_size_x', 'tile_size_y', 'target_overlap', 'rel_size_x', 'rel_size_y']
    def __init__(self) -> None:
        ...
    @property
    def rel_size_x(self) -> float:
        ...
    @rel_size_x.setter
    def rel_size_x(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def rel_size_y(self) -> float:
        ...
    @rel_size_y.setter
    def rel_size_y(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def target_overlap(self) -> float:
        ...
    @target_overlap.setter
    def target_overlap(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def tile_size_x(self) -> int:
        ...
    @tile_size_x.setter
    def tile_size_x(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def tile_size_y(self) -> int:
        ...
    @tile_size_y.setter
    def tile_size_y(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class VideoParams:
    """
    A video's own settings; filled by name from sdcpp.VideoParams.
    """
    fields: typing.ClassVar[list] = ['frames', 'high_noise_steps', 'high_noise_cfg_scale', 'high_noise_sampler', 'moe_boundary']
    high_noise_sampler: str
    def __init__(self) -> None:
        ...
    @property
    def frames(self) -> int:
        ...
    @frames.setter
    def frames(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def high_noise_cfg_scale(self) -> float:
        ...
    @high_noise_cfg_scale.setter
    def high_noise_cfg_scale(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
    @property
    def high_noise_steps(self) -> int:
        ...
    @high_noise_steps.setter
    def high_noise_steps(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def moe_boundary(self) -> float:
        ...
    @moe_boundary.setter
    def moe_boundary(self, arg0: typing.SupportsFloat | typing.SupportsIndex) -> None:
        ...
def cache_modes() -> list[str]:
    """
    Step-caching modes, in the engine's sd_cache_mode_t order.
    """
def component_names() -> list[str]:
    """
    The component files a Context reads (the keys of its `paths`), in the engine's field order.
    """
def convert(src: str, vae: str, dst: str, weight_type: str, rules: str, quantize_kernels: bool, progress: typing.Any, logger: typing.Any) -> None:
    """
    Write the model at src (with an optional separate vae) to dst: GGUF, or safetensors when
    dst ends in .safetensors. weight_type is a ggml type name; rules are the engine's "regex=type,..."
    per-tensor overrides. quantize_kernels: quantized types also quantize convolution kernels, stored
    flattened (engine patch 0032). progress(tensors_done, tensors, seconds_per_tensor) is called on this thread.
    
    Raises sdcpp.ModelLoadError when the engine fails, with its log.
    """
def ggml_types() -> list[tuple[int, str, int, int]]:
    """
    ggml's tensor types as (id, name, elements per block, bytes per block), as GGUF files number them.
    """
def op_arange(start: typing.SupportsFloat | typing.SupportsIndex, stop: typing.SupportsFloat | typing.SupportsIndex, step: typing.SupportsFloat | typing.SupportsIndex, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    Needs a non-empty range (sdcpp.ops.arange checks it; ggml aborts otherwise).
    """
def op_attention(q: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], k: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], v: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], flash: bool, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    softmax(q k^T / sqrt(d)) v for (n, d) inputs; ggml's FLASH_ATTN_EXT over float16 k and v when flash.
    """
def op_conv_2d(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], stride: typing.SupportsInt | typing.SupportsIndex, padding: typing.SupportsInt | typing.SupportsIndex, w_f16: bool, direct: bool, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    x (n, c, h, w), weight (out, c, kh, kw); weight stored as float16 when w_f16; ggml's CONV_2D when direct, else IM2COL + MUL_MAT.
    """
def op_group_norm(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], groups: typing.SupportsInt | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    x (n, c, h, w).
    """
def op_layer_norm(inputs: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.float32]], eps: typing.SupportsFloat | typing.SupportsIndex, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    inputs: x (n, c), weight (c), optionally bias (c); checked by sdcpp.ops.layer_norm.
    """
def op_linear(inputs: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.float32]], device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    inputs: x (n, k), weight (m, k) stored as float16, bias (m), optionally residual (n, m); checked by sdcpp.ops.linear.
    """
def op_mul_mat(a: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], b: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], a_f16: bool, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    b @ a.T for a (m, k) and b (n, k); a stored as float16 (the UNet's weights) when a_f16.
    """
def op_timestep_embedding(timesteps: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], dim: typing.SupportsInt | typing.SupportsIndex, max_period: typing.SupportsInt | typing.SupportsIndex, device: str) -> numpy.typing.NDArray[numpy.float32]:
    ...
def prediction_names() -> list[str]:
    """
    Prediction types of the diffusion model's denoiser.
    """
def preview_modes() -> list[str]:
    """
    Preview modes: how a preview image is made from the latent during sampling.
    """
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
def set_log_level(python_level: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Lowest `logging` level forwarded from the engine to the `sdcpp` logger.
    """
def shutdown() -> None:
    """
    Stops forwarding engine callbacks to Python (called at interpreter exit).
    """
def start_op_profile() -> None:
    """
    Run every graph node by node and record each node's time, until stop_op_profile().
    """
def stop_op_profile() -> list:
    """
    Stop recording and return the records: one dict per node run since start_op_profile().
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
