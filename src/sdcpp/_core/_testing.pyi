"""
For sdcpp's own tests only: the engine's stages one by one, its name tables and detection.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import sdcpp._core
import typing
__all__: list[str] = ['conv_2d_work_bytes', 'count_cores_in', 'cpu_batched_products_count', 'cpu_parallel_scale_count', 'cpu_shared_panels_count', 'cpu_typed_strided_copy_count', 'cpu_winograd_count', 'cuda_fusion_count', 'decode_latent', 'detect_family', 'diffusion_model', 'encode_tokens', 'encode_vector', 'generation_params_fields', 'hires_upscalers', 'last_op_seconds', 'live_image_batches', 'lora_apply_modes', 'op_geglu', 'op_scale', 'op_transpose', 'refuse_op', 'sample_methods', 'schedulers', 'set_conv_2d_max_cols_bytes', 'set_cpu_op_threads', 'set_op_warmups']
def conv_2d_work_bytes(x: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], w: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], stride: typing.SupportsInt | typing.SupportsIndex, padding: typing.SupportsInt | typing.SupportsIndex, device: str) -> int:
    ...
def count_cores_in(cpu_dir: str, cpus: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> int:
    """
    The cores of the CPUs listed, by their thread siblings under cpu_dir, laid out as /sys/devices/system/cpu is: what physical_cores counts (engine patch 0078).
    """
def cpu_batched_products_count() -> int | None:
    """
    How many batched packed CPU products (attention's, one per head) ran each batch's product on one thread (engine patch 0080); None where the CPU backend has no such count.
    """
def cpu_parallel_scale_count() -> int | None:
    """
    How many SCALE nodes the CPU ran on more than one thread (engine patch 0079); None where the CPU backend has no such count.
    """
def cpu_shared_panels_count() -> int | None:
    """
    How many packed CPU products (MUL_MAT, CONV_2D) packed their A panels once for all threads in the node's work buffer (engine patch 0077); None where the CPU backend has no such count.
    """
def cpu_typed_strided_copy_count() -> int | None:
    """
    How many CPU copies from a source strided in its first dimension (a transpose) copied 2- or 4-byte elements as such (engine patch 0081); None where the CPU backend has no such count.
    """
def cpu_winograd_count() -> int | None:
    """
    How many CONV_2D nodes the CPU ran as Winograd's F(2x2, 3x3) (engine patch 0066); None where the CPU backend has no such count (a build without llamafile).
    """
def cuda_fusion_count(kind: str) -> int | None:
    """
    How often CUDA ran an engine patch's path: 'linear' (0063), 'layer_norm' (0064) or 'flash_attn_pipelined' (0065); -1 for another kind, None without CUDA.
    """
def decode_latent(context: sdcpp._core.Context, latent: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    The image (3, H, W) in [0, 1] a final latent (C, h, w) decodes to, before 8-bit rounding.
    """
def detect_family(files: collections.abc.Sequence[tuple[str, str]]) -> typing.Any:
    """
    The family the engine detects in (path, name prefix) files loaded in order, or None; reads headers only.
    """
def diffusion_model(context: sdcpp._core.Context, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], timestep: typing.SupportsFloat | typing.SupportsIndex, conditioning: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    One diffusion-model output for latent x (C, H, W), a timestep and a conditioning (n, dim).
    """
def encode_tokens(context: sdcpp._core.Context, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], *, clip_skip: typing.SupportsInt | typing.SupportsIndex = -1) -> numpy.typing.NDArray[numpy.float32]:
    """
    The conditioning (n_tokens, hidden) of ids and weights as Context.tokenize() gives them.
    """
def encode_vector(context: sdcpp._core.Context, ids: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], *, clip_skip: typing.SupportsInt | typing.SupportsIndex = -1, width: typing.SupportsInt | typing.SupportsIndex = 1024, height: typing.SupportsInt | typing.SupportsIndex = 1024) -> numpy.typing.NDArray[numpy.float32]:
    """
    SDXL's vector conditioning y (pooled text embedding, then size embeddings) of ids and weights.
    """
def generation_params_fields() -> list[str]:
    """
    The field names of GenerationParams, in order.
    """
def hires_upscalers() -> list[str]:
    """
    Hires fix upscaler names: how the first pass's image is enlarged.
    """
def last_op_seconds() -> float:
    """
    Seconds the last sdcpp.ops call spent in its graph on the device, without copying in and out.
    """
def live_image_batches() -> int:
    """
    Batches whose engine memory is still allocated in this process.
    """
def lora_apply_modes() -> list[str]:
    """
    LoRA apply modes: when a LoRA is merged into the weights.
    """
def op_geglu(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    x[..., :d] * gelu(x[..., d:]) for x (..., 2d), as the engine's GEGLU runs it (one GEGLU node, the gate in the second half: ggml_geglu_swapped).
    """
def op_scale(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], factor: typing.SupportsFloat | typing.SupportsIndex, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    x * factor as one SCALE node.
    """
def op_transpose(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], f16: bool, device: str) -> numpy.typing.NDArray[numpy.float32]:
    """
    x with its last two axes swapped, as one CONT of a transposed view (of x stored as float16 when f16).
    """
def refuse_op(op: str | None) -> None:
    """
    Makes every backend refuse this ggml op (by ggml_op_desc name) in model graphs; None undoes it.
    """
def sample_methods() -> list[str]:
    """
    Sampler names, in the engine's order.
    """
def schedulers() -> list[str]:
    """
    Scheduler names, in the engine's order.
    """
def set_conv_2d_max_cols_bytes(bytes: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Bound on the im2col matrix ggml_conv_2d makes at once for one image (engine patch 0059); returns the previous bound.
    """
def set_cpu_op_threads(threads: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Threads of the CPU backend sdcpp.ops runs on (0: its default, 4); returns the previous setting.
    """
def set_op_warmups(runs: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Untimed runs of each sdcpp.ops graph before the timed one, on the same backend, so that its work buffer is already touched as in a Generator (for ops that do not write their inputs); returns the previous setting.
    """
